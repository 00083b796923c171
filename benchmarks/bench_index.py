"""Search by meaning at the dataset's scale: p95 latency and recall of the embedding index.

Synthetic 512-d embeddings (the width of CLIP ViT-B/32) with the structure of a photo
collection: a photo is a room type (12) plus its hotel (20 photos a hotel on average) plus its
own part, in a 64-d subspace, plus a little noise in all 512 dimensions, unit-normalised: a
photo's nearest neighbour has cosine ~0.86, its 10th ~0.75, a random pair ~0 (printed). On
vectors with no such structure (isotropic noise as large as the signal) no index of this
kind keeps its recall; docs/gallery.md gives that figure too. For 100,000 and 1,000,000 of them,
stored as the tag stage stores them (fp16 .npy) and indexed by `alienstay index`'s stage:

- a **text query** is a vector that is no photo's (a room type in a place that is no hotel of
  the collection, as a phrase's embedding would be): the index alone;
- a **similar-photos query** goes through the gallery's service (`Similarity.similar`: id
  lookup, duplicate filter, k = 12);
- **recall@10**: the approximate top-10 against exact search over the same fp16 matrix;
- exact search's own latency, and the build's time and peak memory;
- at 20,000 the libraries are compared (FAISS IVF-SQ8 against usearch's HNSW): the choice.

`python -m benchmarks index` (sizes: ALIENSTAY_BENCH_INDEX_SIZES=100000,1000000).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import peak_rss_mb, save

DIM = 512
LATENT = 64  # the subspace the structure lives in
ROOM_TYPES = 12
PER_HOTEL = 20
HOTEL_SPREAD, PHOTO_SPREAD, AMBIENT = 0.7, 0.4, 0.1
QUERIES = 200
RECALL_QUERIES = 100
K = 10


class Collection:
    """Room types, hotels and a 64-d subspace: photos and phrase-like queries drawn from them."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = self.rng = np.random.default_rng(seed)
        self.basis = np.linalg.qr(rng.standard_normal((DIM, LATENT)).astype(np.float32))[0].T
        self.types = rng.standard_normal((ROOM_TYPES, LATENT)).astype(np.float32)
        self.hotels = HOTEL_SPREAD * rng.standard_normal((max(1, n // PER_HOTEL), LATENT)).astype(np.float32)

    def draw(self, count: int, hotels: np.ndarray | None = None) -> np.ndarray:
        rng = self.rng
        hotel = self.hotels[rng.integers(0, len(self.hotels), count)] if hotels is None else hotels
        own = PHOTO_SPREAD * rng.standard_normal((count, LATENT), dtype=np.float32)
        latent = self.types[rng.integers(0, ROOM_TYPES, count)] + hotel + own
        rows = latent @ self.basis + AMBIENT * rng.standard_normal((count, DIM), dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def phrases(self, count: int) -> np.ndarray:
        """A phrase describes a kind of room in a place that is no hotel of the collection."""
        return self.draw(count, HOTEL_SPREAD * self.rng.standard_normal((count, LATENT)).astype(np.float32))


def synthetic(root: Path, n: int, seed: int = 0) -> Collection:
    """Write n embeddings in the tag stage's layout, in blocks (memory bounded)."""
    import pandas as pd

    from alienstay.workspace.layout import Workspace, write_json

    ws = Workspace(root).ensure()
    ws.embeddings_dir.mkdir(parents=True, exist_ok=True)
    collection = Collection(n, seed)
    matrix = np.lib.format.open_memmap(ws.embeddings_matrix_path, mode="w+", dtype=np.float16, shape=(n, DIM))
    for start in range(0, n, 1 << 16):
        matrix[start : start + (1 << 16)] = collection.draw(min(1 << 16, n - start))
    matrix.flush()
    del matrix
    ids = pd.DataFrame({"image_id": pd.Series([f"p{i:07d}" for i in range(n)], dtype="string")})
    ids.to_parquet(ws.embeddings_ids_path, index=False)
    write_json({"model_id": "synthetic", "model_revision": "none", "dtype": "float32", "dim": DIM, "count": n,
                "stored_as": "float16"}, ws.embeddings_meta_path)
    return collection


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k of many queries in one pass over the matrix (ground truth for recall)."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(matrix), 1 << 16):
        block = np.asarray(matrix[start : start + (1 << 16)], np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        s = queries @ block.T
        s_all = np.concatenate([best_s, s], axis=1)
        i_all = np.concatenate([best_i, np.arange(start, start + len(block))[None].repeat(len(queries), 0)], axis=1)
        top = np.argsort(-s_all, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1)
    return best_i


def p95_ms(fn, items) -> float:
    times = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 95) * 1e3)


def recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth)]))


def measure(n: int, scratch: Path) -> dict:
    from alienstay.similarity import index as ix
    from alienstay.similarity.service import Similarity
    from alienstay.stages.index import IndexSettings, run
    from alienstay.workspace.layout import Workspace

    root = scratch / f"ws-{n}"
    start = time.perf_counter()
    collection = synthetic(root, n)
    figures: dict = {f"{n:,}: write synthetic embeddings, s": time.perf_counter() - start}
    ws = Workspace(root)
    summary = run(ws, IndexSettings(backend=ix.FAISS_IVF))
    figures[f"{n:,}: build {summary.backend} (nlist {summary.details['nlist']}), s"] = summary.seconds
    figures[f"{n:,}: index file, MB"] = (ix.folder_of(ws) / "faiss.index").stat().st_size / 1e6
    service = Similarity(ws)
    vectors = service.require()
    assert service.index.name == ix.FAISS_IVF, service.index_note
    queries = collection.phrases(QUERIES)
    service.index.search(queries[0], K)  # warm: first touch of the mapped pages
    figures[f"{n:,}: text query p95, ms"] = p95_ms(lambda q: service.index.search(q, K), queries)
    rng = np.random.default_rng(2)
    photo_ids = vectors.ids_of(rng.choice(n, QUERIES, replace=False))
    figures[f"{n:,}: similar-photos query p95, ms"] = p95_ms(lambda i: service.similar(i, 12), photo_ids)
    truth = exact_top(vectors.matrix, queries[:RECALL_QUERIES], K)
    found = [service.index.search(q, K)[1] for q in queries[:RECALL_QUERIES]]
    figures[f"{n:,}: recall@10 vs exact (text queries)"] = recall(found, truth)
    rows = rng.choice(n, RECALL_QUERIES, replace=False)
    row_queries = vectors.rows(rows)
    truth = exact_top(vectors.matrix, row_queries, K)
    found = [service.index.search(q, K)[1] for q in row_queries]
    figures[f"{n:,}: recall@10 vs exact (photo queries)"] = recall(found, truth)
    exact = ix.ExactIndex(vectors)
    figures[f"{n:,}: exact search p95, ms"] = p95_ms(lambda q: exact.search(q, K), queries[:10])
    figures[f"{n:,}: peak RSS so far, MB"] = peak_rss_mb()
    shutil.rmtree(root, ignore_errors=True)
    return figures


def library_choice(scratch: Path, n: int = 20_000) -> dict:
    """FAISS IVF-SQ8 (+ exact re-rank) against usearch HNSW on the same vectors: build time, p95, recall."""
    figures: dict = {}
    try:
        from usearch.index import Index
    except ImportError:
        return {"usearch comparison": "skipped: usearch not installed (pip install 'alienstay[search]')"}
    from alienstay.similarity import index as ix
    from alienstay.stages.index import IndexSettings, run
    from alienstay.workspace.embeddings import Vectors
    from alienstay.workspace.layout import Workspace

    root = scratch / "choice"
    collection = synthetic(root, n)
    ws = Workspace(root)
    faiss_summary = run(ws, IndexSettings(backend=ix.FAISS_IVF))
    vectors = Vectors.open(ws)
    faiss_index, _ = ix.open_index(ws, vectors)
    queries = collection.phrases(QUERIES)
    truth = exact_top(vectors.matrix, queries, K)
    rows = vectors.rows(np.arange(n))
    scores = np.sort(rows[:QUERIES] @ rows.T, axis=1)
    figures["cosine of a photo with its nearest, 10th nearest, median other"] = (
        f"{scores[:, -2].mean():.2f}, {scores[:, -11].mean():.2f}, {np.median(scores):.2f}")
    start = time.perf_counter()
    hnsw = Index(ndim=DIM, metric="cos", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
    hnsw.add(np.arange(n), rows, threads=os.cpu_count() or 1)
    hnsw_seconds = time.perf_counter() - start
    figures[f"choice at {n:,}: faiss-ivf-sq8 build, s"] = faiss_summary.seconds
    figures[f"choice at {n:,}: usearch hnsw f16 build, s"] = hnsw_seconds
    figures[f"choice at {n:,}: faiss p95, ms"] = p95_ms(lambda q: faiss_index.search(q, K), queries)
    figures[f"choice at {n:,}: usearch p95, ms"] = p95_ms(lambda q: hnsw.search(q, K), queries)
    figures[f"choice at {n:,}: faiss recall@10"] = recall([faiss_index.search(q, K)[1] for q in queries], truth)
    figures[f"choice at {n:,}: usearch recall@10"] = recall([np.asarray(hnsw.search(q, K).keys) for q in queries], truth)
    shutil.rmtree(root, ignore_errors=True)
    return figures


def main() -> None:
    sizes = [int(s) for s in os.environ.get("ALIENSTAY_BENCH_INDEX_SIZES", "100000,1000000").split(",") if s]
    scratch = Path(tempfile.mkdtemp(prefix="alienstay-bench-index-"))
    figures: dict = {"dimension": DIM, "photos a synthetic hotel": PER_HOTEL, "queries a figure": QUERIES,
                     "nprobe / nlist": "max(32, nlist/16) / sqrt(N)"}
    try:
        figures.update(library_choice(scratch))
        for n in sizes:
            figures.update(measure(n, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    figures["targets"] = "p95 < 50 ms at 1,000,000; recall@10 >= 0.95"
    save("index", figures)


if __name__ == "__main__":
    main()
