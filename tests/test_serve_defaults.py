"""`alienstay serve` with its defaults: workers by the machine, models loaded before the first
request, a photo page that never waits behind a model load, /docs offline, a port checked."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest
import webworkspace
from fastapi.testclient import TestClient
from searchworkspace import write_embeddings
from test_search_web import IDS, PHRASES, embed
from typer.testing import CliRunner

from alienstay.cli.commands import app as cli
from alienstay.similarity import service
from alienstay.similarity.query import QueryModel
from alienstay.testing.tiny_models import build_tiny_clip
from alienstay.web import serving
from alienstay.web.app import create_app

GIB = 2**30


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture
def meaning_workspace(tmp_path: Path, tiny_clip: Path) -> Path:
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, IDS, embed(tiny_clip, [PHRASES[i] for i in IDS]), model_id=str(tiny_clip))
    return root


def test_auto_workers_is_one_a_core_capped_by_memory() -> None:
    per = serving.WORKER_MEMORY_BYTES
    assert serving.auto_workers(cores=4, memory=100 * per) == 4
    assert serving.auto_workers(cores=8, memory=3 * per + 1) == 3  # memory for three
    assert serving.auto_workers(cores=4, memory=per // 2) == 1  # never none
    assert 1 <= serving.auto_workers() <= serving.usable_cores()


def test_serve_help_says_workers_default_to_auto() -> None:
    said = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200).output
    assert "one per core" in said and "[default: 0]" in said


@pytest.mark.parametrize("port", ["70000", "0", "-1"])
def test_a_port_out_of_range_is_a_message_not_a_traceback(tmp_path: Path, port: str) -> None:
    root = webworkspace.build(tmp_path / "ws")
    result = CliRunner().invoke(cli, ["serve", "--workspace", str(root), "--port", port], terminal_width=200)
    assert result.exit_code == 2
    assert "Invalid value for '--port'" in result.output and re.search("(less|greater) than or equal to (65535|1)", result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_port_in_use_names_another_before_anything_starts(tmp_path: Path) -> None:
    root = webworkspace.build(tmp_path / "ws")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--workspace", str(root), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"127.0.0.1:{port}" in result.output and f"--port {port + 1}" in result.output
    assert not (root / "index" / "words").exists()  # refused before the word index was built


def test_docs_work_offline(tmp_path: Path) -> None:
    client = TestClient(create_app(webworkspace.build(tmp_path / "ws")))
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)=["\']([^"\']+\.(?:js|css))', page.text)
    assert len(assets) >= 2 and not any("//" in url for url in assets), assets  # no CDN: served here
    for url in assets:
        assert client.get(url).status_code == 200, url
    assert client.get("/openapi.json").json()["info"]["title"] == "alienstay gallery"


def test_each_worker_loads_the_query_model_before_its_first_request(meaning_workspace: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(serving.WORKSPACE_ENV, str(meaning_workspace))
    monkeypatch.setenv(serving.STARTED_ENV, str(time.time()))
    app = serving.app_from_environment()
    assert isinstance(app.state.similarity._model, QueryModel)  # loaded in the factory: before uvicorn accepts
    assert app.state.similarity.current._duplicates is not None  # "more like this" ready too
    said = capsys.readouterr().err
    assert re.search(r"worker \d+ ready \d+\.\d s after start \(query model .*tiny-clip, exact index of 4 photos\)", said), said


def test_a_worker_without_the_query_model_still_starts_and_says_why(tmp_path: Path, monkeypatch, capsys) -> None:
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, IDS, [[1.0, 0, 0, 0]] * 2 + [[0, 1.0, 0, 0]] * 2, model_id="/nowhere/tiny-clip")
    monkeypatch.setenv(serving.WORKSPACE_ENV, str(root))
    app = serving.app_from_environment()
    assert "search by meaning off" in capsys.readouterr().err
    assert TestClient(app).get("/api/search", params={"words": "pool"}).status_code == 200


def test_a_photo_page_does_not_wait_behind_the_first_search_by_meaning(meaning_workspace: Path, monkeypatch) -> None:
    """Issue 23 item 6: the query model loads under its own lock, so "more like this" goes on meanwhile."""
    real, loading, release = service.load_query_model, threading.Event(), threading.Event()

    def slow_load(meta: dict) -> QueryModel:
        loading.set()
        release.wait(20)  # the model load takes as long as the test wants
        return real(meta)

    monkeypatch.setattr(service, "load_query_model", slow_load)
    with TestClient(create_app(meaning_workspace)) as client:
        searched: dict = {}
        search = threading.Thread(target=lambda: searched.update(r=client.get("/api/search", params={"text": "a bed"})))
        search.start()
        assert loading.wait(20)
        try:
            began = time.perf_counter()
            page = client.get("/photo/h1/a.jpg")
            took = time.perf_counter() - began
            assert page.status_code == 200 and "more like this" in page.text.lower()
            assert search.is_alive()  # answered while the model was still loading
            assert took < 5, f"the photo page took {took:.1f} s"
        finally:
            release.set()
            search.join(30)
    assert searched["r"].status_code == 200 and searched["r"].json()["results"]


def test_a_worker_loads_only_the_offline_encoders_text_side_and_it_embeds_as_the_whole_encoder() -> None:
    """Search embeds phrases only: the image classifier (25 s, 500 MB a worker) is not loaded, nothing changes."""
    import torch

    from alienstay.encoders.offline import load_offline_encoder
    from alienstay.encoders.query_text import OfflineTextSide
    from alienstay.similarity.query import load_query_model

    query = load_query_model({"model_id": "offline:efficientnet-lite1+all-MiniLM-L6-v2", "load_as": "offline"})
    assert isinstance(query.encoder, OfflineTextSide) and query.note is None  # same revision as the tag stage's
    whole = load_offline_encoder()
    assert (query.model_id, query.encoder.revision) == (whole.model_id, whole.revision)
    phrases = ["a pool at night", "a bright room with a big bed"]
    assert torch.allclose(query.encoder.encode_texts(phrases), whole.encode_texts(phrases), atol=1e-6)


def test_a_worker_keeps_only_a_clips_text_tower_and_it_embeds_as_the_whole_encoder(tiny_clip: Path) -> None:
    import torch

    from alienstay.encoders.hf import load_hf_encoder
    from alienstay.similarity.query import load_query_model

    query = load_query_model({"model_id": str(tiny_clip)})
    whole = load_hf_encoder(str(tiny_clip))
    assert query.encoder.model.vision_model is None and query.encoder.model.visual_projection is None
    assert query.note is None and (query.model_id, query.encoder.revision) == (str(tiny_clip), whole.revision)
    phrases = ["a pool at night", "a bright room with a big bed"]
    assert torch.allclose(query.encoder.encode_texts(phrases), whole.encode_texts(phrases), atol=1e-6)
    kept = sum(p.numel() for p in query.encoder.model.parameters())
    assert kept < sum(p.numel() for p in whole.model.parameters())  # the image tower's weights are gone
