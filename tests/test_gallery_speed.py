"""What makes the gallery's default mix cheap (issue 22's latency), each checked to change no answer:
the phrase through ONNX Runtime (cached export), the phrase cache, the meaning page's cards built
from word codes by embedding row, the re-rank's cosines, and workers that answer only when all are ready."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import webworkspace
from fastapi.testclient import TestClient
from searchworkspace import write_embeddings
from test_search_web import IDS, PHRASES, embed

from alienstay.similarity import query as query_module
from alienstay.similarity.query import load_query_model
from alienstay.testing.tiny_models import build_tiny_clip
from alienstay.web.app import create_app
from alienstay.web.serving import wait_for_the_others

OFFLINE = {"model_id": "offline:efficientnet-lite1+all-MiniLM-L6-v2", "load_as": "offline"}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def test_the_offline_phrase_runs_through_onnx_runtime_exported_once_and_agrees_with_pytorch(tmp_path, monkeypatch) -> None:
    import subprocess

    from alienstay.encoders import offline, query_onnx
    from alienstay.encoders.offline import embed_sentences

    monkeypatch.setenv("ALIENSTAY_CACHE_DIR", str(tmp_path / "cache"))
    query_module._LOADED.clear()  # a fresh load, into this cache
    model = load_query_model(OFFLINE)
    fast = model.encoder.fast
    assert isinstance(fast, query_onnx.OnnxSentenceEncoder) and model.encoder.text_model is None
    [exported] = (tmp_path / "cache" / "query-onnx").glob("*.onnx")
    phrases = ["a pool at night", "a bright room with a big bed by the sea", "fireplace"]  # lengths differ: padding
    pytorch = embed_sentences(offline.load_text_model(), phrases)
    assert float((model.encoder.encode_texts(phrases) - pytorch).abs().max()) < 1e-5
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a))
    again = query_onnx.OnnxSentenceEncoder(offline.load_text_model())  # the next worker: the file, no export
    assert calls == [] and float((again(phrases) - pytorch).abs().max()) < 1e-5
    assert list((tmp_path / "cache" / "query-onnx").glob("*.onnx")) == [exported]
    # A session that disagrees with PyTorch is not used: PyTorch keeps answering.
    assert query_onnx.onnx_sentence_encoder(offline.load_text_model(), lambda texts: pytorch[:1] * 0 + 1) is None
    query_module._LOADED.clear()


def test_a_repeated_phrase_is_embedded_once_and_the_cache_is_bounded(tiny_clip: Path, monkeypatch) -> None:
    model = load_query_model({"model_id": str(tiny_clip)})
    model._recent.clear()
    model.hits = model.misses = 0
    first, second = model.embed("a pool at night"), model.embed("a pool at night")
    assert second is first and np.array_equal(first, model.encode("a pool at night"))
    assert (model.hits, model.misses) == (1, 1) and not first.flags.writeable  # shared: no request may change it
    monkeypatch.setattr(query_module, "CACHED_PHRASES", 2)
    for phrase in ("a bed", "a sofa", "a lamp"):
        model.embed(phrase)
    assert list(model._recent) == ["a sofa", "a lamp"]  # least recently searched left first
    model.embed("a pool at night")
    assert (model.hits, model.misses) == (1, 5)


def test_the_meaning_page_shows_the_same_photos_scores_and_chips_as_the_json(tmp_path: Path, tiny_clip: Path) -> None:
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, IDS, embed(tiny_clip, [PHRASES[i] for i in IDS]), model_id=str(tiny_clip))
    client = TestClient(create_app(root))
    for words in ("", "pool"):
        params = {"text": "a room with a bed", "words": words}
        found = client.get("/api/search", params=params).json()["results"]
        page = client.get("/", params=params).text
        cards = [line for line in page.splitlines() if 'class="card" data-image-id=' in line]
        assert [c.split('data-image-id="')[1].split('"')[0] for c in cards] == [r["image_id"] for r in found]
        assert [re.search(r'class="score" title="cosine of the photo with the phrase">([\d.-]+)<', c).group(1)
                for c in cards] == [f"{r['score']:.2f}" for r in found]
        assert [re.findall(r'class="chip facet-[^"]*" title="[^"]*">([^<]+)</li>', c) for c in cards] == [
            [t["tag"] for t in r["tags"]] for r in found]
        assert any(r["tags"] for r in found)


def test_reranked_cosines_equal_the_normalised_rows(tmp_path: Path) -> None:
    from alienstay.workspace.embeddings import Vectors

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((300, 16)).astype(np.float16)
    vectors = Vectors(None, matrix, {}, "x")
    query = rng.standard_normal(16).astype(np.float32)
    query /= np.linalg.norm(query)
    rows = rng.choice(300, 40, replace=False)
    assert np.allclose(vectors.cosines(rows, query), vectors.rows(rows) @ query, atol=1e-6)


def test_no_worker_answers_until_every_worker_is_ready(tmp_path: Path) -> None:
    done = []
    first = threading.Thread(target=lambda: done.append(wait_for_the_others(f"{tmp_path}:2", limit_s=30)))
    first.start()
    time.sleep(0.3)
    assert first.is_alive() and not done  # alone: it waits
    (tmp_path / "the-other-worker").touch()
    first.join(5)
    assert done == [True]
    assert wait_for_the_others(f"{tmp_path}:2") is True  # a worker restarted later finds them all there
    late = tmp_path / "late"
    late.mkdir()
    assert wait_for_the_others(f"{late}:3", limit_s=0.2) is False  # the others never came: it answers anyway
    assert wait_for_the_others("") is True  # one worker: nothing to wait for


def test_a_photo_url_is_quoted_as_quote_would_quote_it() -> None:
    import random
    import string
    from urllib.parse import quote

    from alienstay.web.cards import page_url, photo_url, quoted

    rng = random.Random(0)
    alphabet = string.printable + "éü中/%"
    for text in ["h1/a.jpg", "a b", "x~y", "", "a\nb", "p%20", "../x", *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
                                                                     for _ in range(5000))]:
        assert quoted(text) == quote(text, safe="/"), text
    assert (photo_url("h1/a b.jpg"), page_url("h1/a.jpg")) == ("/media/photo/h1/a%20b.jpg", "/photo/h1/a.jpg")
