"""The workspace's file primitives: atomic writes, table reads that name damage, the table list.

Every write goes to a temporary name in the same folder and is renamed onto its target only
when complete (``os.replace``), so an interrupted stage never leaves half a table or half a
figure behind. Every read of a table that exists but cannot be read raises DamagedTable
naming the file, what is wrong and the command that writes it anew. `workspace.py`
re-exports all of this; stages import it from there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd


class WorkspaceError(RuntimeError):
    """A stage's input is missing from the workspace; the message says which stage makes it."""


class DamagedTable(WorkspaceError):
    """A workspace file exists but cannot be read (cut short, overwritten, inconsistent); the message
    names the file and how to restore it. `public` says the same without any path: what an HTTP
    answer may show (a server never tells a client where its files are)."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or "a workspace file is damaged: the server's log names it and the command that restores it."

    @classmethod
    def of(cls, path: Path, reason: str, made_by: str | None = None, root: Path | None = None,
           fix: str | None = None, public_reason: str | None = None) -> "DamagedTable":
        """The one error for a damaged file: `reason` says what is wrong, `fix` (default: rerun its stage)
        how to restore it; `public_reason` (default: `reason` without paths) is what an HTTP answer says."""
        path = Path(path)
        made_by = made_by or MADE_BY_FILE.get(path.name, "the stage that writes it")
        where = f" --workspace {root}" if root is not None else " (with this workspace's --workspace)"
        fix = fix or f"move it aside and run `alienstay {made_by}{where}` again, which writes it anew"
        shown = path.relative_to(root) if root is not None and path.is_relative_to(root) else Path(path.name)
        public_fix = fix.replace(where, "") if root is not None else fix
        public_reason = public_reason or without_paths(reason)
        return cls(f"{path} is damaged and cannot be read ({reason}). Restore it: {fix}.",
                   f"{shown.as_posix()} is damaged and cannot be read ({public_reason}). Restore it: {public_fix}.")


def without_paths(text: str) -> str:
    """A library's reason with every absolute path cut to its file name (numpy and pyarrow name the file)."""
    return re.sub(r"(?<![\w.])/(?:[^\s'\"():,]+/)*([^\s'\"():,/]+)", r"\1", text)


# Every table by name: the Workspace property that gives its path and the command that writes
# it, so a missing or damaged table names what to run. One place: readers, `require`, the report.
TABLES: dict[str, tuple[str, str]] = {
    "catalog": ("catalog_path", "ingest folder DIR"),
    "metadata": ("metadata_path", "ingest hotels50k --metadata ARCHIVE"),
    "tags": ("tags_path", "tag"),
    "tag_failures": ("tag_failures_path", "tag"),
    "embedding_ids": ("embeddings_ids_path", "tag"),
    "captions": ("captions_path", "tag --caption"),
    "clusters": ("clusters_path", "cluster"),
    "cluster_methods": ("cluster_methods_path", "cluster"),
    "edits": ("edits_path", "edit --recipe NAME"),
}
# File name -> command, for a reader given only a path (the tag tables live in a generation folder).
MADE_BY_FILE = {
    "catalog.parquet": "ingest folder DIR", "hotels50k_metadata.parquet": "ingest hotels50k --metadata ARCHIVE",
    "tags.parquet": "tag", "tag_failures.parquet": "tag", "ids.parquet": "tag", "captions.parquet": "tag --caption",
    "clusters.parquet": "cluster", "clusters_all_methods.parquet": "cluster", "edits.parquet": "edit --recipe NAME",
}  # fmt: skip


def damage_message(path: Path, error: BaseException, made_by: str | None = None, root: Path | None = None) -> str:
    return str(damaged(path, error, made_by, root))


def damaged(path: Path, error: BaseException, made_by: str | None = None, root: Path | None = None) -> DamagedTable:
    """DamagedTable for a file a library could not read: the library's first line, the stage that rewrites it."""
    made_by = made_by or MADE_BY_FILE.get(Path(path).name, "the stage that writes it")
    where = f" --workspace {root}" if root is not None else " (with this workspace's --workspace)"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    after = "; then run `alienstay preprocess` and the later stages again" if made_by.startswith("ingest") else ""
    fix = f"move it aside and run `alienstay {made_by}{where}` again, which writes it anew{after}"
    # The library's own words go to the log and the terminal, not into an HTTP answer.
    return DamagedTable.of(path, f"{type(error).__name__}: {reason}", made_by, root, fix, "cut short or overwritten")


def read_parquet(
    path: Path, columns: list[str] | None = None, made_by: str | None = None, filters: list | None = None,
    root: Path | None = None,
) -> pd.DataFrame:
    """pd.read_parquet, with a damaged file named (and how to restore it) instead of pyarrow's traceback."""
    import pyarrow as pa

    try:
        return pd.read_parquet(path, columns=columns, filters=filters)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as error:
        raise damaged(path, error, made_by, root) from None


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(df: pd.DataFrame, target: Path) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return target


def read_optional(path: Path) -> pd.DataFrame | None:
    """A table a stage may or may not have written yet; None when it has not (DamagedTable if unreadable)."""
    return read_parquet(path) if Path(path).exists() else None


def write_text(text: str, target: Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def save_figure(figure: Any, target: Path, *, tight: bool = True, dpi: int = 110) -> Path:
    """Write a matplotlib figure atomically (a reader never sees half a PNG), then free it.

    The one way every stage saves a figure; the format follows the suffix (PNG by default).
    """
    import matplotlib.pyplot as plt

    target = Path(target)
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format=target.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(figure)
    return target


def write_json(data: Any, target: Path) -> Path:
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", target)


@dataclass(frozen=True)
class TagOutputs:
    """One consolidated set of the tag stage's tables, every path from the same generation."""

    tags: Path
    embeddings_matrix: Path
    embeddings_ids: Path
    embeddings_meta: Path
    failures: Path
    generation: str | None  # None: the files at their places from before generations

    @classmethod
    def inside(cls, folder: Path, generation: str) -> "TagOutputs":
        names = ("tags.parquet", "embeddings.npy", "ids.parquet", "meta.json", "tag_failures.parquet")
        return cls(*(folder / name for name in names), generation)

    def files(self) -> tuple[Path, ...]:
        return (self.tags, self.embeddings_matrix, self.embeddings_ids, self.embeddings_meta, self.failures)


@functools.lru_cache(maxsize=16)
def generation_outputs(tagged_dir: Path, generation: str) -> TagOutputs:
    """A generation's paths, made once: a gallery asks for them on every request."""
    return TagOutputs.inside(tagged_dir / generation, generation)
