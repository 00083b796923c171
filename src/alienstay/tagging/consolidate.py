"""Consolidation: the shards of one run (in catalog order) -> tags.parquet + embeddings/.

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
from alienstay.vocabulary import Vocabulary
from alienstay.workspace import Workspace, atomic_path, write_json, write_parquet


def consolidate(ws: Workspace, vocab: Vocabulary, identity: TagIdentity, keep_ids: set[str] | None = None) -> int:
    """Shards (in catalog order) -> tags.parquet + embeddings/; streaming, so memory stays flat.

    Only photos in `keep_ids` (the usable catalog) are kept, each once; returns how many.
    """
    tags_dir, embeddings_dir = shard_dirs(ws, identity)
    plan = consolidation_plan(tags_dir, embeddings_dir, keep_ids)
    kept_ids = [ids[i] for _, ids, keep in plan for i in keep]
    dim = write_embedding_matrix(ws.embeddings_matrix_path, embeddings_dir, plan)
    with atomic_path(ws.tags_path) as tmp, pq.ParquetWriter(tmp, TAG_SCHEMA) as writer:
        for shard, ids, keep in plan:
            table = pq.read_table(shard).cast(TAG_SCHEMA)
            if len(keep) < len(ids):
                wanted = pa.array([ids[i] for i in keep], pa.string())
                table = table.filter(pc.is_in(table.column("image_id"), value_set=wanted))
            writer.write_table(table)
    write_parquet(pd.DataFrame({"image_id": pd.Series(kept_ids, dtype="string")}), ws.embeddings_ids_path)
    meta = {**identity.__dict__, "dim": dim, "count": len(kept_ids), "stored_as": "float16"}
    write_json(meta, ws.embeddings_meta_path)
    _consolidate_failures(ws, tags_dir, set(kept_ids))
    return len(kept_ids)


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


def _consolidate_failures(ws: Workspace, tags_dir: Path, tagged: set[str]) -> None:
    parts = sorted((tags_dir / "failures").glob("failed-*.parquet"))
    frames = [pd.read_parquet(p) for p in parts]
    failures = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FAILURE_COLUMNS)
    # A photo that failed once and decoded on a later run is not a failure any more.
    failures = failures[~failures["image_id"].isin(tagged)].drop_duplicates("image_id", keep="last")
    write_parquet(failures.reset_index(drop=True), ws.tag_failures_path)


def read_embeddings(ws: Workspace) -> tuple[list[str], np.ndarray, dict]:
    """(ids, (N, D) float32 L2-normalised embeddings, meta: model id, revision, vocab hash...)."""
    import json

    if not ws.embeddings_matrix_path.exists():
        ws.read_table(ws.embeddings_ids_path, "tag")  # raises the error that says which command makes it
    ids = pd.read_parquet(ws.embeddings_ids_path)["image_id"].astype(str).tolist()
    matrix = np.load(ws.embeddings_matrix_path).astype(np.float32)
    # fp16 storage loses a little norm; re-normalise so cosine stays a dot product.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms > 0, norms, 1.0)
    meta = json.loads(ws.embeddings_meta_path.read_text(encoding="utf-8"))
    return ids, matrix, meta
