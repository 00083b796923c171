"""Consolidation: the shards of one run (in catalog order) -> tags.parquet + embeddings, all or nothing.

Streaming, so memory stays flat in the number of photos: tag shards are copied table by
table and the embeddings go into a memory-mapped fp16 matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.tagging.scoring import TAG_SCHEMA
from alienstay.tagging.settings import TagIdentity
from alienstay.tagging.shards import FAILURE_COLUMNS, shard_dirs, tag_shards
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace.layout import Workspace, atomic_path, write_json, write_parquet


def consolidate(
    ws: Workspace, vocab: Vocabulary, identity: TagIdentity, keep_ids: set[str] | None = None, load_as: str | None = None
) -> int:
    """Shards (in catalog order) -> a new set of tags.parquet + embeddings + failures, made current at once.

    Only photos in `keep_ids` (the usable catalog) are kept, each once; returns how many.
    `load_as` (recorded in meta.json): what `load_encoder` takes to load the model again, for
    search to embed a phrase with the model that embedded the photos. The
    set is written into a fresh generation folder and published by the workspace's manifest,
    written last: a kill anywhere before it leaves the previous set in place, whole.
    """
    tags_dir, embeddings_dir = shard_dirs(ws, identity)
    plan = consolidation_plan(tags_dir, embeddings_dir, keep_ids)
    kept_ids = [ids[i] for _, ids, keep in plan for i in keep]
    outputs = ws.new_tag_outputs()
    dim = write_embedding_matrix(outputs.embeddings_matrix, embeddings_dir, plan)
    write_tag_table(outputs.tags, plan)
    write_parquet(pd.DataFrame({"image_id": pd.Series(kept_ids, dtype="string")}), outputs.embeddings_ids)
    meta = {**identity.__dict__, "dim": dim, "count": len(kept_ids), "stored_as": "float16"}
    if load_as:
        meta["load_as"] = load_as
    write_json(meta, outputs.embeddings_meta)
    write_failures(outputs.failures, tags_dir, set(kept_ids))
    ws.publish_tag_outputs(outputs, **meta)
    return len(kept_ids)


def with_schema_columns(table: pa.Table) -> pa.Table:
    """A shard written before a column joined TAG_SCHEMA (device, dtype) gets it as nulls."""
    for field in TAG_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return table.select(TAG_SCHEMA.names)


def write_tag_table(target: Path, plan: list) -> None:
    """The kept rows of every tag shard, streamed table by table into one parquet file."""
    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, TAG_SCHEMA) as writer:
        for shard, ids, keep in plan:
            table = with_schema_columns(_with_judged(pq.read_table(shard))).cast(TAG_SCHEMA)
            if len(keep) < len(ids):
                wanted = pa.array([ids[i] for i in keep], pa.string())
                table = table.filter(pc.is_in(table.column("image_id"), value_set=wanted))
            writer.write_table(table)


def _with_judged(table: pa.Table) -> pa.Table:
    """Shards written before encoders declared their evidence judged every word."""
    if "judged" in table.column_names:
        return table
    return table.append_column("judged", pa.array([True] * len(table), pa.bool_()))


def consolidation_plan(
    tags_dir: Path, embeddings_dir: Path, keep_ids: set[str] | None
) -> list[tuple[Path, list[str], list[int]]]:
    """For each tag shard in catalog order: its ids and the row indices to keep (first sighting, still usable)."""
    plan, seen = [], set()
    for shard in tag_shards(tags_dir):
        ids = np.load(embeddings_dir / f"{shard.stem}.npz")["ids"].tolist()
        keep = [i for i, image_id in enumerate(ids) if image_id not in seen and (keep_ids is None or image_id in keep_ids)]
        seen.update(ids[i] for i in keep)
        if keep:
            plan.append((shard, ids, keep))
    return plan


def write_embedding_matrix(target: Path, embeddings_dir: Path, plan: list) -> int:
    """The kept rows of every embeddings shard into one fp16 .npy, written in place (memory map)."""
    total = sum(len(keep) for _, _, keep in plan)
    dim = int(np.load(embeddings_dir / f"{plan[0][0].stem}.npz")["embeddings"].shape[1]) if plan else 0
    with atomic_path(target) as tmp:
        if total == 0:  # a memory map cannot be empty
            with open(tmp, "wb") as handle:
                np.save(handle, np.zeros((0, dim), dtype=np.float16))
            return dim
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, dim))
        row = 0
        for shard, _, keep in plan:
            matrix[row : row + len(keep)] = np.load(embeddings_dir / f"{shard.stem}.npz")["embeddings"][keep]
            row += len(keep)
        matrix.flush()
        del matrix
    return dim


def write_failures(target: Path, tags_dir: Path, tagged: set[str]) -> None:
    parts = sorted((tags_dir / "failures").glob("failed-*.parquet"))
    frames = [pd.read_parquet(p) for p in parts]
    failures = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FAILURE_COLUMNS)
    # A photo that failed once and decoded on a later run is not a failure any more.
    failures = failures[~failures["image_id"].isin(tagged)].drop_duplicates("image_id", keep="last")
    write_parquet(failures.reset_index(drop=True), target)


def read_embeddings(ws: Workspace) -> tuple[list[str], np.ndarray, dict]:
    """(ids, (N, D) float32 L2-normalised embeddings, meta): :meth:`Workspace.read_embeddings`."""
    return ws.read_embeddings()
