"""Search by meaning and "more like this" through the gallery's API and pages (FastAPI TestClient)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import webworkspace
from fastapi.testclient import TestClient
from searchworkspace import set_catalog_hashes, write_embeddings

from alienstay.similarity.query import cached_encoder
from alienstay.testing.tiny_models import build_tiny_clip
from alienstay.web.app import create_app

IDS = list(webworkspace.TAGS)  # h1/a.jpg, h2/b.jpg, h1/c.jpg, h2/d.jpg
PHRASES = {"h1/a.jpg": "a photo of a pool at night", "h2/b.jpg": "a room with a bed",
           "h1/c.jpg": "a bright lobby", "h2/d.jpg": "a quiet garden"}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def embed(model: Path, texts: list[str]) -> np.ndarray:
    return cached_encoder(str(model)).encode_texts(texts).numpy()


@pytest.fixture
def text_client(tmp_path: Path, tiny_clip: Path) -> TestClient:
    """Each photo's embedding is the tiny CLIP's embedding of its phrase: that phrase must find it first."""
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, IDS, embed(tiny_clip, [PHRASES[i] for i in IDS]), model_id=str(tiny_clip))
    return TestClient(create_app(root))


def test_api_text_search_ranks_by_cosine_with_the_tag_model(text_client: TestClient, tiny_clip: Path) -> None:
    found = text_client.get("/api/search", params={"text": "a room with a bed"}).json()
    assert found["mode"] == "meaning" and found["model_id"] == tiny_clip.name  # a local folder, named without its path and found["index"] == "exact"
    ids = [r["image_id"] for r in found["results"]]
    assert ids[0] == "h2/b.jpg" and found["results"][0]["score"] == pytest.approx(1.0, abs=2e-3)
    query = embed(tiny_clip, ["a room with a bed"])[0]
    photos = embed(tiny_clip, [PHRASES[i] for i in IDS])
    expected = [IDS[j] for j in np.argsort(-(photos @ query), kind="stable")]
    assert ids == expected
    assert found["results"][0]["tags"]  # chips, as for word search


def test_text_search_combines_with_word_filters(text_client: TestClient) -> None:
    found = text_client.get("/api/search", params={"text": "a quiet garden", "words": "pool,night"}).json()
    assert sorted(r["image_id"] for r in found["results"]) == sorted(webworkspace.POOL_NIGHT)  # d.jpg is no pool
    nothing = text_client.get("/api/search", params={"text": "a quiet garden", "words": "bedroom,night"}).json()
    assert nothing["results"] == []
    words_only = text_client.get("/api/search", params={"words": "pool,night"}).json()
    assert [r["image_id"] for r in words_only["results"]] == webworkspace.POOL_NIGHT  # word search unchanged


def test_home_page_searches_a_phrase_by_meaning_and_a_word_by_words(text_client: TestClient) -> None:
    page = text_client.get("/", params={"q": "a bright lobby"}).text
    assert 'data-mode="meaning"' in page and "by meaning" in page and "not an alien word" in page
    assert page.index('data-image-id="h1/c.jpg"') < page.index('data-image-id="h1/a.jpg"')
    word = text_client.get("/", params={"q": "pool"}).text
    assert 'data-mode="meaning"' not in word and "with <strong>pool</strong>" in word
    combined = text_client.get("/", params={"q": "a quiet garden", "words": "pool"}).text
    assert "among the photos with <strong>pool</strong>" in combined and 'data-image-id="h2/d.jpg"' not in combined


def test_without_the_model_page_and_api_say_so_and_words_still_work(tmp_path: Path) -> None:
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, IDS, np.eye(4, 8), model_id="/nowhere/tiny-clip")  # a model this machine lacks
    client = TestClient(create_app(root))
    api = client.get("/api/search", params={"text": "a bright room with a view of the sea"})
    assert api.status_code == 503
    assert "tiny-clip" in api.json()["detail"] and "alien words still works" in api.json()["detail"]
    assert "/nowhere" not in api.json()["detail"]  # an answer names no path (issue 23.10)
    page = client.get("/", params={"q": "a bright room with a view of the sea", "words": "pool"})
    assert page.status_code == 200 and 'id="meaning-unavailable"' in page.text and "tiny-clip" in page.text
    assert 'data-image-id="h1/c.jpg"' in page.text  # the word part of the search still answers
    assert [r["image_id"] for r in client.get("/api/search?words=pool").json()["results"]] == webworkspace.POOL


def test_text_search_without_embeddings_names_the_command(tmp_path: Path) -> None:
    client = TestClient(create_app(webworkspace.build(tmp_path / "ws")))
    api = client.get("/api/search", params={"text": "a pool"})
    assert api.status_code == 409 and "alienstay tag" in api.json()["detail"]
    assert "alienstay tag" in client.get("/", params={"q": "a pool"}).text


@pytest.fixture
def similar_client(tmp_path: Path) -> TestClient:
    """a and c are one photo (near-equal perceptual hashes), d is an exact copy of b; b is nearest a."""
    root = webworkspace.build(tmp_path / "ws")
    rows = {"h1/a.jpg": [1, 0, 0, 0], "h1/c.jpg": [1, 0.01, 0, 0], "h2/b.jpg": [0.9, 0.3, 0, 0], "h2/d.jpg": [0.88, 0.3, 0.05, 0]}
    write_embeddings(root, list(rows), np.array(list(rows.values())), model_id="/nowhere/model")
    set_catalog_hashes(root, {"h1/a.jpg": ("aa" * 32, "f0f0f0f0f0f0f0f0"), "h1/c.jpg": ("cc" * 32, "f0f0f0f0f0f0f0f3"),
                              "h2/b.jpg": ("bb" * 32, "0123456789abcdef"), "h2/d.jpg": ("bb" * 32, "fedcba9876543210")})
    return TestClient(create_app(root))


def test_similar_photos_leave_out_exact_and_near_copies(similar_client: TestClient) -> None:
    found = similar_client.get("/api/similar/h1/a.jpg", params={"k": 12}).json()
    assert [r["image_id"] for r in found["results"]] == ["h2/b.jpg", "h2/d.jpg"]  # c is a's near copy
    assert found["index"] == "exact" and found["results"][0]["score"] > found["results"][1]["score"]
    of_b = similar_client.get("/api/similar/h2/b.jpg").json()
    assert [r["image_id"] for r in of_b["results"]] == ["h1/c.jpg", "h1/a.jpg"]  # d is b's exact copy
    assert [r["image_id"] for r in similar_client.get("/api/similar/h2/b.jpg?k=1").json()["results"]] == ["h1/c.jpg"]
    assert similar_client.get("/api/similar/h3/broken.jpg").status_code == 404
    assert similar_client.get("/api/similar/h1/a.jpg?k=0").status_code == 422


def test_photo_page_shows_the_more_like_this_strip(similar_client: TestClient) -> None:
    page = similar_client.get("/photo/h1/a.jpg").text
    strip = page[page.index('id="similar"'):]
    assert strip.index('data-image-id="h2/b.jpg"') < strip.index('data-image-id="h2/d.jpg"')
    assert 'data-image-id="h1/c.jpg"' not in strip and "near copies" in page


def test_photo_page_without_embeddings_says_how_to_get_them(tmp_path: Path) -> None:
    client = TestClient(create_app(webworkspace.build(tmp_path / "ws")))
    page = client.get("/photo/h1/a.jpg").text
    assert 'id="similar-empty"' in page and "alienstay tag" in page
    assert client.get("/api/similar/h1/a.jpg").status_code == 409
