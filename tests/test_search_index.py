"""The nearest-neighbour index: exact over the memory map, FAISS above a threshold, rebuilt when embeddings change."""

from __future__ import annotations

import numpy as np
import pytest
from searchworkspace import clustered, write_embeddings

from alienstay.similarity import index as ix
from alienstay.stages.index import IndexSettings, run
from alienstay.workspace.embeddings import Vectors, exact_search, top_k
from alienstay.workspace.layout import Workspace, WorkspaceError


def brute_force(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    rows = matrix.astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.lexsort((np.arange(len(rows)), -(rows @ query)))[:k].tolist()


def test_top_k_is_stable_on_ties() -> None:
    assert top_k(np.array([0.5, 0.9, 0.5, 0.9, 0.1]), 3).tolist() == [1, 3, 0]


def test_exact_search_over_blocks_equals_brute_force(monkeypatch) -> None:
    import alienstay.workspace.embeddings as vectors

    monkeypatch.setattr(vectors, "BLOCK_ROWS", 64)  # several blocks on a small matrix
    matrix = clustered(500, 16, 10).astype(np.float16)
    query = matrix[7].astype(np.float32)
    scores, rows = exact_search(matrix, query, 10)
    assert rows.tolist() == brute_force(matrix, query / np.linalg.norm(query), 10)
    assert rows[0] == 7 and scores[0] == pytest.approx(1.0, abs=1e-3)
    within = np.arange(100, 300)
    _, inside = exact_search(matrix, query, 10, within)
    assert set(inside.tolist()) <= set(within.tolist())
    assert inside.tolist() == (100 + np.array(brute_force(matrix[100:300], query / np.linalg.norm(query), 10))).tolist()


@pytest.fixture
def planted(workspace: Workspace) -> Workspace:
    matrix = clustered(3000, 32, 40, seed=1)
    write_embeddings(workspace.root, [f"p{i:05d}" for i in range(len(matrix))], matrix)
    return workspace


def test_index_gives_the_same_top_10_as_exact_search(planted: Workspace) -> None:
    params = ix.IndexParams(threshold=1000, nlist=16, nprobe=16)  # every cell visited: the re-rank makes it exact
    summary = run(planted, IndexSettings(params=params))
    assert summary.backend == ix.FAISS_IVF and summary.built
    vectors = Vectors.open(planted)
    index, note = ix.open_index(planted, vectors)
    assert index.name == ix.FAISS_IVF and note is None
    exact = ix.ExactIndex(vectors)
    for q in range(0, 3000, 150):
        query = vectors.rows(np.array([q]))[0]
        assert index.search(query, 10)[1].tolist() == exact.search(query, 10)[1].tolist()


def test_approximate_index_visiting_a_quarter_of_the_cells_keeps_recall(planted: Workspace) -> None:
    run(planted, IndexSettings(params=ix.IndexParams(threshold=1000, nlist=32, nprobe=8)))
    vectors = Vectors.open(planted)
    index, _ = ix.open_index(planted, vectors)
    exact = ix.ExactIndex(vectors)
    rng = np.random.default_rng(3)
    recalls = []
    for q in rng.choice(3000, 40, replace=False):
        query = vectors.rows(np.array([q]))[0] + 0.05 * rng.standard_normal(32).astype(np.float32)
        recalls.append(len(set(index.search(query, 10)[1].tolist()) & set(exact.search(query, 10)[1].tolist())) / 10)
    assert np.mean(recalls) >= 0.95


def test_filtered_search_stays_inside_the_filter(planted: Workspace) -> None:
    run(planted, IndexSettings(params=ix.IndexParams(threshold=1000, nlist=16, nprobe=16)))
    vectors = Vectors.open(planted)
    index, _ = ix.open_index(planted, vectors)
    within = np.arange(0, 3000, 3)
    query = vectors.rows(np.array([1]))[0]
    expected = ix.ExactIndex(vectors).search(query, 10, within)[1].tolist()
    assert index.search(query, 10, within)[1].tolist() == expected  # small filter: exact
    index.EXACT_WITHIN = 10  # a large filter goes through FAISS's selector
    assert index.search(query, 10, within)[1].tolist() == expected


def test_small_collections_use_exact_search_and_reruns_skip(planted: Workspace) -> None:
    first = run(planted, IndexSettings())
    assert first.backend == ix.EXACT and first.built and not (ix.folder_of(planted) / "faiss.index").exists()
    assert run(planted, IndexSettings()).built is False  # nothing changed: skipped
    assert ix.open_index(planted, Vectors.open(planted))[0].name == ix.EXACT


def test_new_embeddings_make_the_index_stale_until_rebuilt(planted: Workspace) -> None:
    settings = IndexSettings(params=ix.IndexParams(threshold=1000, nlist=16, nprobe=16))
    run(planted, settings)
    matrix = clustered(2000, 32, 20, seed=9)  # a new tag run
    write_embeddings(planted.root, [f"q{i:05d}" for i in range(len(matrix))], matrix)
    vectors = Vectors.open(planted)
    index, note = ix.open_index(planted, vectors)
    assert index.name == ix.EXACT and "alienstay index" in note  # never neighbours of old embeddings
    rebuilt = run(planted, settings)
    assert rebuilt.built and rebuilt.photos == 2000
    index, note = ix.open_index(planted, Vectors.open(planted))
    assert index.name == ix.FAISS_IVF and note is None


def test_index_without_embeddings_says_which_command_makes_them(workspace: Workspace) -> None:
    with pytest.raises(WorkspaceError, match="alienstay tag"):
        run(workspace, IndexSettings())
    with pytest.raises(ValueError, match="--backend"):
        from alienstay.stages.index import choose_backend

        choose_backend(IndexSettings(backend="annoy"), 10)
