"""Nearest photos by cosine: exact over the memory map, or an approximate index above a size.

Chosen by measurement (`python -m benchmarks index`, figures in docs/gallery.md): exact search
costs a pass over the whole matrix (fine to some tens of thousands of photos, ~0.3-0.7 s at a
million on this CPU); FAISS IVF with 8-bit scalar quantisation (`IndexIVFScalarQuantizer`)
visits `nprobe` of its `nlist` cells and scores 1 byte a dimension, then the best
`rerank x k` candidates are re-scored exactly from the fp16 matrix, which recovers the
ranking the quantisation blurs. usearch's HNSW was measured too: comparable latency, but its
graph took minutes per 100,000 vectors to build on 2 cores, against seconds for IVF.

A built index lives in `<workspace>/index/vectors/` with `meta.json` naming the fingerprint of
the embeddings it was built from; it is used only while that fingerprint is current, so a new
tag run never serves neighbours of old embeddings (exact search answers until `alienstay index`
rebuilds it).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from alienstay.runtime.registry import Registry
from alienstay.workspace.embeddings import Vectors, exact_search, normalise, top_k
from alienstay.workspace.layout import Workspace, atomic_path, write_json
from alienstay.workspace.storage import without_paths

EXACT = "exact"
FAISS_IVF = "faiss-ivf-sq8"
INSTALL_HINT = "pip install 'alienstay[search]'"
ADD_ROWS = 1 << 14  # rows assigned to cells at a time: the assignment matrix is ADD_ROWS x nlist floats


@dataclass(frozen=True)
class IndexParams:
    """How the approximate index is built and searched (defaults measured at 1,000,000 x 512)."""

    threshold: int = 50_000  # photos from which the approximate index is built; below, exact search
    nlist: int = 0  # IVF cells; 0 = sqrt(N), at least 16
    nprobe: int = 0  # cells visited a query; 0 = max(32, nlist / 16): at a million, 62 of 1,000
    rerank: int = 10  # candidates re-scored exactly: rerank * k
    train_per_cell: int = 40  # k-means training sample: cells * this (faiss wants >= 39)
    seed: int = 0

    def cells(self, n: int) -> int:
        return self.nlist or max(16, int(math.sqrt(n)))

    def probes(self, cells: int) -> int:
        return min(cells, self.nprobe or max(32, cells // 16))


class NeighbourIndex(Protocol):
    name: str

    def search(self, query: np.ndarray, k: int, within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, positions) of the k rows most similar to one query, best first."""
        ...


@dataclass
class ExactIndex:
    vectors: Vectors
    name: str = EXACT

    def search(self, query: np.ndarray, k: int, within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return exact_search(self.vectors.matrix, query, k, within)


class FaissIndex:
    """IVF-SQ8 candidates, re-ranked exactly from the fp16 matrix."""

    name = FAISS_IVF
    # A filter (`within`) this small is searched exactly: cheaper than probing cells for it.
    EXACT_WITHIN = 50_000

    def __init__(self, vectors: Vectors, index, params: IndexParams) -> None:
        self.vectors, self.index, self.params = vectors, index, params

    def search(self, query: np.ndarray, k: int, within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        query = normalise(query).reshape(1, -1)
        want = min(len(self.vectors), max(k * self.params.rerank, k))
        if within is not None and len(within) <= self.EXACT_WITHIN:
            return exact_search(self.vectors.matrix, query, k, within)
        search_params = faiss.SearchParametersIVF(nprobe=self.params.probes(self.index.nlist))
        if within is not None:
            selector = faiss.IDSelectorBatch(np.asarray(within, dtype=np.int64))
            search_params = faiss.SearchParametersIVF(nprobe=self.params.probes(self.index.nlist), sel=selector)
        _, found = self.index.search(query, want, params=search_params)
        candidates = found[0][found[0] >= 0]
        if within is not None and len(candidates) < min(k, len(within)):
            return exact_search(self.vectors.matrix, query, k, within)  # the filter starved the probed cells
        scores = self.vectors.cosines(candidates, query[0])
        best = top_k(scores, k)
        return scores[best], candidates[best]


# ---- building ---------------------------------------------------------------------------------
def folder_of(ws: Workspace) -> Path:
    return ws.root / "index" / "vectors"


def build_faiss(vectors: Vectors, params: IndexParams, target: Path) -> dict:
    """Train IVF cells on a sample, add every row in blocks (memory bounded by the block), write atomically."""
    faiss = import_faiss()
    n, dim = len(vectors), vectors.dim
    cells = min(params.cells(n), max(1, n // 39))
    rng = np.random.default_rng(params.seed)
    sample = np.sort(rng.choice(n, size=min(n, cells * params.train_per_cell), replace=False))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = params.seed
    index.train(vectors.rows(sample))
    for start in range(0, n, ADD_ROWS):
        index.add(normalise(np.asarray(vectors.matrix[start : start + ADD_ROWS], dtype=np.float32)))
    with atomic_path(target) as tmp:
        faiss.write_index(index, str(tmp))
    return {"nlist": cells, "trained_on": len(sample)}


def import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(f"the approximate index needs FAISS: {INSTALL_HINT}") from error
    return faiss


@dataclass(frozen=True)
class Backend:
    """A registered kind of index: how to build it into a file and open it again."""

    name: str  # what `alienstay index --backend` and meta.json's `backend` say
    build: Callable[[Vectors, IndexParams, Path], dict]
    open: Callable[[Vectors, Path, IndexParams], NeighbourIndex]
    file: str
    description: str = ""
    needs: tuple[str, ...] = ()  # the alienstay extras it needs


def open_faiss(vectors: Vectors, path: Path, params: IndexParams) -> NeighbourIndex:
    faiss = import_faiss()
    try:  # mapped, not read: the server's memory does not hold the index
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        index = faiss.read_index(str(path))
    return FaissIndex(vectors, index, params)


# Exact search is no entry: it is what answers without a built index.
BACKENDS: Registry[Backend] = Registry("index backend", group="alienstay.index_backends")
BACKENDS.register(Backend(FAISS_IVF, build_faiss, open_faiss, "faiss.index", needs=("search",),
                          description="FAISS IVF, 8-bit scalar quantised, re-ranked exactly from the fp16 matrix"))


def built_meta(ws: Workspace) -> dict | None:
    path = folder_of(ws) / "meta.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_meta(ws: Workspace, meta: dict) -> None:
    write_json(meta, folder_of(ws) / "meta.json")


def open_index(ws: Workspace, vectors: Vectors) -> tuple[NeighbourIndex, str | None]:
    """The built index when it matches these embeddings, else exact search; and a note when it is stale."""
    meta = built_meta(ws)
    if meta is None or meta.get("backend") == EXACT:
        note = None
        if meta is not None and meta.get("fingerprint") != vectors.fingerprint and len(vectors) >= IndexParams().threshold:
            note = f"embeddings changed since `alienstay index`: exact search until it is rerun --workspace {ws.root}"
        return ExactIndex(vectors), note
    if meta.get("fingerprint") != vectors.fingerprint:
        return ExactIndex(vectors), f"the {meta['backend']} index is of older embeddings: exact search until `alienstay index --workspace {ws.root}` rebuilds it"
    backend = BACKENDS.get(meta["backend"])
    params = IndexParams(**meta.get("params", {}))
    try:
        return backend.open(vectors, folder_of(ws) / backend.file, params), None
    except (ImportError, RuntimeError, OSError) as error:
        # FAISS's text starts with its C++ function and source file: only what follows says why.
        reason = without_paths(re.sub(r"^Error in .*? at \S+:\d+: ", "", str(error).strip()) or type(error).__name__)
        return ExactIndex(vectors), f"the {meta['backend']} index could not be opened ({reason}): exact search"


def params_record(params: IndexParams) -> dict:
    return asdict(params)
