"""Search by meaning and "more like this" take their top k after filtering, and page (issue 23, items 4 and 9).

A photo preprocess marks a duplicate after tagging stays in the embeddings but is no longer
usable: it must not take one of the k places; `total` counts every photo ranked and `page`
moves through the ranking; words that are not in the vocabulary come back as `unknown`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from generations import plant

from alienstay.similarity.query import cached_encoder
from alienstay.testing.tiny_models import build_tiny_clip
from alienstay.web.app import create_app

N = 50
PHRASE = "a photo of a pool at night"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture
def planted(tmp_path: Path, tiny_clip: Path):
    dim = int(cached_encoder(str(tiny_clip)).encode_texts(["x"]).shape[-1])
    return plant(tmp_path / "ws", N, dim, model_id=str(tiny_clip))


def mark_duplicate(root: Path, image_id: str, of: str) -> None:
    """What preprocess does to a photo it finds to be a copy: status duplicate, duplicate_of the kept one."""
    catalog = pd.read_parquet(root / "catalog.parquet")
    catalog["duplicate_of"] = catalog.get("duplicate_of", pd.Series([None] * len(catalog))).astype("string")
    catalog.loc[catalog["image_id"] == image_id, ["status", "duplicate_of"]] = ["duplicate", of]
    catalog.to_parquet(root / "catalog.parquet", index=False)


def ids_of(answer: dict) -> list[str]:
    return [r["image_id"] for r in answer["results"]]


def test_similar_k1_still_returns_one_after_its_nearest_becomes_a_duplicate(planted) -> None:
    ws, ids, _ = planted
    client = TestClient(create_app(ws.root))
    me = ids[0]
    nearest = ids_of(client.get(f"/api/similar/{me}", params={"k": 3}).json())
    mark_duplicate(ws.root, nearest[0], of=ids[-1])  # a copy of some other photo, not of `me`
    after = client.get(f"/api/similar/{me}", params={"k": 1}).json()
    assert ids_of(after) == [nearest[1]]
    strip = client.get(f"/photo/{me}").text
    assert f'data-image-id="{nearest[0]}"' not in strip and f'data-image-id="{nearest[1]}"' in strip


def test_text_search_limit_1_still_returns_one_after_the_best_becomes_a_duplicate(planted) -> None:
    ws, ids, _ = planted
    client = TestClient(create_app(ws.root))
    best = ids_of(client.get("/api/search", params={"text": PHRASE, "limit": 2}).json())
    mark_duplicate(ws.root, best[0], of=best[1])
    after = client.get("/api/search", params={"text": PHRASE, "limit": 1}).json()
    assert ids_of(after) == [best[1]] and after["total"] == N - 1


def test_search_by_meaning_pages_and_total_is_every_photo_ranked(planted) -> None:
    ws, _, _ = planted
    client = TestClient(create_app(ws.root))
    whole = client.get("/api/search", params={"text": PHRASE, "per_page": 12}).json()
    pages = [client.get("/api/search", params={"text": PHRASE, "per_page": 4, "page": p}).json() for p in (1, 2, 3)]
    assert [i for p in pages for i in ids_of(p)] == ids_of(whole)
    assert [r["score"] for p in pages for r in p["results"]] == [r["score"] for r in whole["results"]]
    assert all(p["total"] == N and p["pages"] == -(-N // 4) for p in pages) and [p["page"] for p in pages] == [1, 2, 3]
    last = client.get("/api/search", params={"text": PHRASE, "per_page": 4, "page": 13}).json()
    assert len(last["results"]) == N - 48
    assert client.get("/api/search", params={"text": PHRASE, "per_page": 4, "page": 14}).json()["results"] == []
    pool = client.get("/api/search", params={"words": "pool", "per_page": 1}).json()["total"]
    within = client.get("/api/search", params={"text": PHRASE, "words": "pool", "per_page": 2}).json()
    assert within["total"] == pool and len(within["results"]) == 2


def test_the_home_page_pages_a_search_by_meaning(planted) -> None:
    ws, _, _ = planted
    client = TestClient(create_app(ws.root))
    ranked = ids_of(client.get("/api/search", params={"text": PHRASE, "per_page": 10}).json())
    second = client.get("/", params={"q": PHRASE, "per_page": 5, "page": 2}).text
    assert f"ranks 6 to 10 of the {N} photos" in second and 'id="meaning-pager"' in second and "page 2 of 10" in second
    shown = [line.split('data-image-id="')[1].split('"')[0] for line in second.splitlines() if 'class="card" data-image-id=' in line]
    assert shown == ranked[5:10]


def test_unknown_words_are_named_beside_a_phrase(planted) -> None:
    ws, _, _ = planted
    client = TestClient(create_app(ws.root))
    answer = client.get("/api/search", params={"words": "zzzz,pool", "text": PHRASE}).json()
    assert answer["unknown"] == ["zzzz"] and answer["words"] == ["zzzz", "pool"]
    assert client.get("/api/search", params={"words": "pool", "text": PHRASE}).json()["unknown"] == []


@pytest.mark.parametrize("left_out", [10, 1500])  # few: unfiltered search, then dropped; many: the index filters
def test_the_best_usable_rows_are_the_top_k_after_the_filter(left_out: int) -> None:
    import numpy as np
    import pyarrow as pa

    from alienstay.similarity.index import ExactIndex
    from alienstay.similarity.service import best_usable
    from alienstay.workspace.embeddings import Vectors

    rng = np.random.default_rng(4)
    n = 3000
    matrix = rng.standard_normal((n, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    vectors = Vectors(pa.array([str(i) for i in range(n)]), matrix.astype(np.float16), {}, "f")
    query = rng.standard_normal(16).astype(np.float32)
    scores_all = vectors.rows(np.arange(n)) @ (query / np.linalg.norm(query))
    best_first = np.argsort(-scores_all, kind="stable")
    dropped = best_first[: left_out // 2].tolist() + rng.choice(best_first[left_out:], left_out - left_out // 2, replace=False).tolist()
    usable = np.setdiff1d(np.arange(n), dropped)
    _, rows = best_usable(ExactIndex(vectors), n, query, 25, usable)
    expected = [r for r in best_first if r not in set(dropped)][:25]
    assert rows.tolist() == expected
