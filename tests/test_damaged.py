"""Damage named and repairable (issue 23, items 2 and 3): every reader of a tag generation's files
checks them and raises one error, DamagedTable, naming the file and the fix; the CLI prints it
(no traceback), the gallery keeps answering from the last good generation, and HTTP answers name
no path and carry no numpy or pyarrow text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from generations import plant, publish

from alienstay.web.app import create_app
from alienstay.workspace.embeddings import Vectors
from alienstay.workspace.layout import DamagedTable, Workspace

LIBRARY_TEXT = ("mmap", "Parquet", "magic", "Expecting", "Traceback", "ArrowInvalid", "pickle", "Errno")
MANIFESTS = {"cut": "{oops", "empty": "", "no generation": "{}", "outside": '{"generation": "../../etc"}'}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """`alienstay ARGS` through the console script's entry point, as a user runs it."""
    from alienstay.cli.commands import main

    old = sys.argv
    sys.argv = ["alienstay", *args]
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), "".join((captured.out + captured.err).split())  # rich wraps long lines


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Workspace, list[str], tuple]:
    return plant(tmp_path / "ws", 60, 16)


def generation_files(ws: Workspace):
    return ws.tag_outputs()


# ---- the ways a file is damaged ------------------------------------------------------------
def cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage\xff" * 7)


def short_ids(path: Path) -> None:
    ids = pd.read_parquet(path)
    ids.iloc[:-1].to_parquet(path, index=False)


def doubled_ids(path: Path) -> None:
    ids = pd.read_parquet(path)
    ids.iloc[-1, 0] = ids.iloc[0, 0]
    ids.to_parquet(path, index=False)


DAMAGE = {  # (which file, how): every kind the issue names
    "npy cut": ("embeddings_matrix", cut), "npy garbage": ("embeddings_matrix", garbage),
    "ids cut": ("embeddings_ids", cut), "ids garbage": ("embeddings_ids", garbage),
    "meta cut": ("embeddings_meta", cut), "meta garbage": ("embeddings_meta", garbage),
    "ids shorter than the matrix": ("embeddings_ids", short_ids), "ids doubled": ("embeddings_ids", doubled_ids),
}


def damage(ws: Workspace, kind: str) -> Path:
    attribute, how = DAMAGE[kind]
    path = getattr(ws.tag_outputs(), attribute)
    how(path)
    return path


def assert_public(text: str, ws: Workspace) -> None:
    """An HTTP answer: no path of this machine, no library's own words."""
    assert str(ws.root) not in text and str(ws.root.parent) not in text, text
    assert not any(word in text for word in LIBRARY_TEXT), text


# ---- item 3: every damaged embeddings file, named --------------------------------------------
@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_embeddings_file_is_named_with_its_fix(planted, kind: str) -> None:
    ws, _, _ = planted
    path = damage(ws, kind)
    with pytest.raises(DamagedTable) as raised:
        Vectors.open(ws)
    message = str(raised.value)
    assert str(path) in message and f"alienstay tag --workspace {ws.root}" in message
    assert path.name in raised.value.public and "alienstay tag" in raised.value.public
    assert_public(raised.value.public, ws)
    with pytest.raises(DamagedTable):
        ws.read_embeddings()  # cluster --features embeddings reads them this way


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_gallery_over_damaged_embeddings_answers_with_the_reason_and_no_path(planted, kind: str) -> None:
    ws, ids, _ = planted
    damage(ws, kind)
    client = TestClient(create_app(ws.root))
    similar = client.get(f"/api/similar/{ids[0]}")
    assert similar.status_code == 503 and "damaged" in similar.json()["detail"]
    assert_public(similar.text, ws)
    text = client.get("/api/search", params={"text": "a pool at night"})
    assert text.status_code == 503 and "damaged" in text.json()["detail"]
    assert_public(text.text, ws)
    page = client.get(f"/photo/{ids[0]}")
    assert page.status_code == 200 and "damaged" in page.text
    assert_public(page.text, ws)
    assert client.get("/api/search", params={"words": "pool"}).json()["total"] > 0  # word search is untouched


@pytest.mark.parametrize("kind", ["npy cut", "ids shorter than the matrix", "ids doubled", "meta garbage"])
def test_a_damaged_new_generation_leaves_the_last_good_one_answering(planted, kind: str, caplog) -> None:
    ws, ids, (matrix, probs) = planted
    client = TestClient(create_app(ws.root))
    before = client.get(f"/api/similar/{ids[3]}", params={"k": 5}).json()["results"]
    words = client.get("/api/search", params={"words": "pool"}).json()
    publish(ws, ids, matrix, probs, np.random.default_rng(3).permutation(len(ids)))
    damage(ws, kind)
    after = client.get(f"/api/similar/{ids[3]}", params={"k": 5})
    assert after.status_code == 200 and after.json()["results"] == before
    assert client.get("/api/search", params={"words": "pool"}).json() == words
    assert any("damaged" in r.getMessage() and "alienstay tag" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("command", [["index"], ["retrieval"], ["cluster", "--features", "embeddings"]])
@pytest.mark.parametrize("kind", ["npy cut", "ids garbage", "ids doubled"])
def test_stages_reading_embeddings_say_which_file_and_what_to_run(planted, command, kind, capsys) -> None:
    ws, _, _ = planted
    path = damage(ws, kind)
    code, output = run_cli([*command, "--workspace", str(ws.root)], capsys)
    assert code == 2 and f"{path.name}isdamaged" in output and "alienstaytag--workspace" in output
    assert "Traceback" not in output


# ---- item 2: a damaged tagged/current.json -----------------------------------------------------
@pytest.mark.parametrize("manifest", MANIFESTS)
def test_a_damaged_manifest_is_named_and_tag_rebuilds_it_from_the_generations(planted, manifest: str) -> None:
    ws, _, _ = planted
    good = ws.tag_outputs().generation
    ws.tag_manifest_path.write_text(MANIFESTS[manifest], encoding="utf-8")
    with pytest.raises(DamagedTable) as raised:
        ws.tag_outputs()
    assert str(ws.tag_manifest_path) in str(raised.value) and "alienstay tag" in str(raised.value)
    assert ws.repair_tag_manifest() == good  # what `alienstay tag` does first
    assert ws.tag_outputs().generation == good
    assert ws.repair_tag_manifest() is None  # nothing left to repair


def test_publishing_over_a_damaged_manifest_succeeds(planted) -> None:
    ws, ids, (matrix, probs) = planted
    ws.tag_manifest_path.write_text("{oops", encoding="utf-8")
    generation = publish(ws, ids, matrix, probs, np.arange(len(ids)))  # a tag run's consolidation
    assert ws.tag_outputs().generation == generation


@pytest.mark.parametrize("command", [["cluster"], ["analyse"], ["retrieval"], ["index"]])
def test_stages_over_a_damaged_manifest_print_the_file_and_the_fix(planted, command, capsys) -> None:
    ws, _, _ = planted
    ws.tag_manifest_path.write_text("{oops", encoding="utf-8")
    code, output = run_cli([*command, "--workspace", str(ws.root)], capsys)
    assert code == 2 and "current.jsonisdamaged" in output and "alienstaytag--workspace" in output, output
    assert "Traceback" not in output and "Expectingpropertyname" not in output


def test_the_report_names_a_damaged_manifest_in_its_sections(planted, capsys) -> None:
    ws, _, _ = planted
    ws.tag_manifest_path.write_text("{oops", encoding="utf-8")
    code, output = run_cli(["report", "--workspace", str(ws.root)], capsys)  # as it names any damaged table
    report = (ws.report_dir / "REPORT.md").read_text(encoding="utf-8")
    assert code == 0 and "Traceback" not in output
    assert "current.json is damaged" in report and "Damaged input, not shown" in report


def test_serve_over_a_damaged_manifest_says_so_before_listening(planted, capsys, monkeypatch) -> None:
    import uvicorn

    ws, _, _ = planted
    ws.tag_manifest_path.write_text("", encoding="utf-8")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served over a damaged manifest without a word"))
    code, output = run_cli(["serve", "--workspace", str(ws.root)], capsys)
    assert code == 2 and "current.jsonisdamaged" in output and "alienstaytag--workspace" in output


@pytest.mark.parametrize("manifest", ["cut", "no generation"])
def test_a_running_gallery_keeps_answering_when_the_manifest_is_damaged(planted, manifest: str) -> None:
    ws, ids, _ = planted
    client = TestClient(create_app(ws.root))
    asked = [f"/photo/{ids[1]}", "/", f"/api/images/{ids[1]}", "/api/search?words=pool", f"/api/similar/{ids[1]}"]
    before = [client.get(url).text for url in asked]
    ws.tag_manifest_path.write_text(MANIFESTS[manifest], encoding="utf-8")
    for url, text in zip(asked, before):
        response = client.get(url)
        assert response.status_code == 200 and response.text == text, url


def test_a_running_gallery_survives_a_damaged_tags_table(planted) -> None:
    ws, ids, (matrix, probs) = planted
    client = TestClient(create_app(ws.root))
    words = client.get("/api/search?words=pool").json()
    publish(ws, ids, matrix, probs, np.arange(len(ids))[::-1])
    cut(ws.tag_outputs().tags)
    for url in ("/", f"/photo/{ids[2]}", f"/api/images/{ids[2]}", "/api/tags"):
        assert client.get(url).status_code == 200, url
    assert client.get("/api/search?words=pool").json() == words


@pytest.mark.parametrize("kind", ["npy cut", "meta garbage", "ids doubled"])
def test_serve_over_damaged_embeddings_says_so_before_listening(planted, kind: str, capsys, monkeypatch) -> None:
    import uvicorn

    ws, _, _ = planted
    path = damage(ws, kind)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served over damaged embeddings without a word"))
    code, output = run_cli(["serve", "--workspace", str(ws.root)], capsys)
    assert code == 2 and f"{path.name}isdamaged" in output and "alienstaytag--workspace" in output


@pytest.mark.parametrize("kind", ["ids cut", "npy garbage"])
def test_the_gallery_names_damaged_embeddings_when_it_starts(planted, kind: str, caplog) -> None:
    ws, _, _ = planted
    path = damage(ws, kind)
    create_app(ws.root)  # what each `serve` worker runs before it listens
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{path} is damaged" in m and f"alienstay tag --workspace {ws.root}" in m for m in said), said


def test_the_table_check_names_a_damaged_manifest(planted) -> None:
    ws, _, _ = planted
    ws.tag_manifest_path.write_text("{oops", encoding="utf-8")
    found = ws.damaged()
    assert "current.json is damaged" in found["tags"] and "catalog" not in found


def test_tag_repairs_a_damaged_manifest_and_runs(tmp_path: Path, samples_dir: Path, capsys) -> None:
    from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace

    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    model = build_tiny_clip(tmp_path / "tiny-clip")
    tag = ["tag", "--model", str(model), "--workers", "0", "--workspace", str(ws.root)]
    assert run_cli(tag, capsys)[0] == 0
    ws.tag_manifest_path.write_text("{oops", encoding="utf-8")
    code, output = run_cli(tag, capsys)
    assert code == 0 and "repairedtagged/current.json" in output.replace(str(ws.root).replace(" ", "") + "/", ""), output
    assert "Traceback" not in output and "Expectingpropertyname" not in output
    outputs = ws.tag_outputs()
    assert outputs.tags.is_file() and len(Vectors.open(ws)) == len(pd.read_parquet(outputs.tags)["image_id"].unique())


def test_a_running_gallery_survives_a_damaged_catalog(planted) -> None:
    ws, ids, _ = planted
    client = TestClient(create_app(ws.root))
    words = client.get("/api/search?words=pool").json()
    garbage(ws.catalog_path)
    for url in ("/", f"/photo/{ids[2]}", f"/api/images/{ids[2]}", "/api/tags", f"/api/similar/{ids[2]}"):
        response = client.get(url)
        assert response.status_code in (200, 503), (url, response.status_code)
        assert_public(response.text, ws)
    assert client.get("/api/search?words=pool").json() == words  # the last good catalog answers
