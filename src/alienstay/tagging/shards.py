"""The writer: tagged batches -> resumable shards, one tag shard and one embeddings shard a group.

Shards live in a folder keyed by the run's :class:`TagIdentity` (model, revision, dtype,
vocabulary hash), so a rerun after a kill reads the shards already there and tags only the
missing photos, and a rerun with other settings never mixes with them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.tagging.reader import DecodeFailure
from alienstay.tagging.scoring import TaggedBatch, tag_rows
from alienstay.tagging.settings import TagIdentity
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace.layout import Workspace, atomic_path, write_parquet

FAILURE_COLUMNS = ["image_id", "path", "reason", "model_id", "vocab_hash"]


def shard_dirs(ws: Workspace, identity: TagIdentity) -> tuple[Path, Path]:
    """Shards of one setting live together, so a rerun with other settings never mixes with them."""
    return ws.tag_shards_dir / identity.key, ws.embeddings_dir / "shards" / identity.key


class ShardWriter:
    """Buffers tagged batches and writes them as one shard every `rows_per_shard` images.

    A shard is a pair: ``<name>.parquet`` (tags) and ``<name>.npz`` (fp16 embeddings), named
    by the catalog positions it covers so shards sort into catalog order. The embeddings go
    first: a tag shard on disk means its photos are done.
    """

    def __init__(self, ws: Workspace, vocab: Vocabulary, identity: TagIdentity, rows_per_shard: int = 512) -> None:
        self.vocab = vocab
        self.identity = identity
        self.rows_per_shard = rows_per_shard
        self.tags_dir, self.embeddings_dir = shard_dirs(ws, identity)
        self.pending: list[TaggedBatch] = []
        self.failures: list[DecodeFailure] = []
        self.shards_written = 0

    def add(self, batch: TaggedBatch | None, failures: Iterable[DecodeFailure] = ()) -> None:
        if batch is not None and batch.ids:
            self.pending.append(batch)
        self.failures.extend(failures)
        if sum(len(b.ids) for b in self.pending) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            write_shard(self.tags_dir, self.embeddings_dir, self.pending, self.vocab, self.identity)
            self.shards_written += 1
        if self.failures:
            write_failure_shard(self.tags_dir, self.failures, self.identity)
        self.pending, self.failures = [], []


def shard_name(positions: list[int]) -> str:
    return f"part-{min(positions):09d}-{max(positions):09d}"


def write_shard(
    tags_dir: Path, embeddings_dir: Path, batches: list[TaggedBatch], vocab: Vocabulary, identity: TagIdentity
) -> str:
    positions = [p for b in batches for p in b.positions]
    name = shard_name(positions)
    with atomic_path(embeddings_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            ids=np.asarray([i for b in batches for i in b.ids], dtype=str),
            embeddings=np.concatenate([b.embeddings for b in batches]).astype(np.float16),
        )
    table = pa.concat_tables([tag_rows(b, vocab, identity) for b in batches])
    with atomic_path(tags_dir / f"{name}.parquet") as tmp:
        pq.write_table(table, tmp)
    return name


def write_failure_shard(tags_dir: Path, failures: list[DecodeFailure], identity: TagIdentity) -> None:
    frame = pd.DataFrame(
        [
            {"image_id": f.image_id, "path": f.path, "reason": f.reason, "model_id": identity.model_id,
             "vocab_hash": identity.vocab_hash}
            for f in failures
        ],
        columns=FAILURE_COLUMNS,
    )
    write_parquet(frame, tags_dir / "failures" / f"failed-{time.time_ns()}-{os.getpid()}.parquet")


def tag_shards(tags_dir: Path) -> list[Path]:
    return sorted(tags_dir.glob("part-*.parquet"))


def tagged_ids(ws: Workspace, identity: TagIdentity) -> set[str]:
    """Photos already tagged under these settings (their tag shard is on disk)."""
    done: set[str] = set()
    for shard in tag_shards(shard_dirs(ws, identity)[0]):
        ids = pq.read_table(shard, columns=["image_id"]).column("image_id")
        done.update(pc.unique(ids).to_pylist())
    return done
