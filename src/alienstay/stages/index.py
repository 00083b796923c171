"""The index stage: the tag stage's embeddings -> a nearest-neighbour index in the workspace.

Below `threshold` photos nothing is built: exact search over the memory-mapped matrix is fast
enough and always right. Above it, the approximate index of `backend` is built. A rerun skips
when the index already matches the embeddings; new embeddings (a new tag run) rebuild it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from alienstay.similarity import index as ix
from alienstay.workspace.embeddings import Vectors
from alienstay.workspace.layout import Workspace, WorkspaceError


@dataclass(frozen=True)
class IndexSettings:
    backend: str = "auto"  # auto (exact below the threshold, else faiss) | exact | a name in ix.BACKENDS
    params: ix.IndexParams = field(default_factory=ix.IndexParams)
    force: bool = False  # rebuild even when the index matches the embeddings


@dataclass(frozen=True)
class IndexSummary:
    backend: str
    photos: int
    dim: int
    built: bool  # False: the existing index already matched the embeddings
    seconds: float
    path: str
    details: dict


def choose_backend(settings: IndexSettings, photos: int) -> str:
    if settings.backend == "auto":
        return ix.FAISS_IVF if photos >= settings.params.threshold else ix.EXACT
    if settings.backend != ix.EXACT and settings.backend not in ix.BACKENDS:
        raise ValueError(f"--backend {settings.backend!r}: use auto, exact or one of {', '.join(ix.BACKENDS.names())}.")
    return settings.backend


def run(ws: Workspace, settings: IndexSettings = IndexSettings()) -> IndexSummary:
    """Raises WorkspaceError (which stage to run first) or ValueError (a bad setting)."""
    with ws.ensure().lock("index"):
        return _run(ws, settings)


def remove_killed_builds(folder: Path) -> list[Path]:
    """Temporary files of builds killed while writing (`.faiss.index.*.tmp`): under the workspace
    lock no other build is writing, so every one left is a killed build's."""
    left = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in left:
        path.unlink(missing_ok=True)
    return left


def _run(ws: Workspace, settings: IndexSettings) -> IndexSummary:
    start = time.perf_counter()
    remove_killed_builds(ix.folder_of(ws))
    vectors = Vectors.open(ws)
    if vectors is None:
        raise WorkspaceError(f"no image embeddings in {ws.embeddings_dir}: run `alienstay tag --workspace {ws.root}` first.")
    backend = choose_backend(settings, len(vectors))
    folder = ix.folder_of(ws)
    current = ix.built_meta(ws)
    wanted = {"backend": backend, "fingerprint": vectors.fingerprint, "params": ix.params_record(settings.params)}
    if not settings.force and current is not None and all(current.get(k) == v for k, v in wanted.items()):
        return IndexSummary(backend, len(vectors), vectors.dim, False, time.perf_counter() - start, str(folder),
                            current.get("details", {}))
    details: dict = {}
    if backend != ix.EXACT:
        details = ix.BACKENDS.get(backend).build(vectors, settings.params, folder / ix.BACKENDS.get(backend).file)
    seconds = time.perf_counter() - start
    # meta.json last: a reader sees the old index's meta (stale, so exact search) until the new file is whole.
    ix.write_meta(ws, {**wanted, "photos": len(vectors), "dim": vectors.dim, "model_id": vectors.meta.get("model_id"),
                       "details": details, "build_seconds": round(seconds, 2)})
    ws.log_run("index", backend=backend, photos=len(vectors), **details)
    return IndexSummary(backend, len(vectors), vectors.dim, True, seconds, str(folder), details)
