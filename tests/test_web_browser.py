"""The gallery in a real browser: Debian's Chromium driven by Playwright, against a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
import webworkspace

from alienstay.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The gallery over a synthetic workspace, served by uvicorn in a thread on a free port."""
    app = create_app(webworkspace.build(tmp_path / "ws"))
    port = free_port()
    live = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not live.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the gallery server did not start within 20 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    live.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(server: str):
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium for the browser tests "
            "(`sudo apt-get install -y chromium`, or `bash scripts/browser-deps.sh`)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def result_ids(page) -> list[str]:
    return page.locator("#results li.card").evaluate_all("cards => cards.map(c => c.dataset.imageId)")


def images_loaded(page, selector: str) -> bool:
    return page.locator(selector).evaluate_all("imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


def test_search_by_alien_words_then_compare_restyles(page, server: str, tmp_path: Path) -> None:
    page.goto(server + "/")
    assert sorted(result_ids(page)) == sorted(webworkspace.TAGS)  # browsing: every usable photo

    # Type a word and press Enter: the word becomes a chip and the grid shows its photos.
    page.fill("#word-input", "pool")
    page.press("#word-input", "Enter")
    page.wait_for_url("**/?words=pool")
    assert result_ids(page) == webworkspace.POOL

    # Click a second word among the facet chips: an AND, ranked by summed probability.
    page.click('#facets a.chip[data-word="night"]')
    page.wait_for_url("**/?words=pool,night")
    assert result_ids(page) == webworkspace.POOL_NIGHT
    assert page.locator("#chosen .chip").all_inner_texts() == ["pool ×", "night ×"]
    page.wait_for_load_state("networkidle")
    assert images_loaded(page, "#results img")
    search_shot = page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

    # The first result's page shows its tags and cluster.
    page.click('#results li.card[data-image-id="h1/a.jpg"] a.id')
    page.wait_for_url("**/photo/h1/a.jpg")
    assert page.locator("h1").inner_text() == "h1/a.jpg"
    assert "pool + night" in page.locator(".cluster").inner_text()
    page.screenshot(path=str(tmp_path / "photo.png"), full_page=True)

    # The compare view: original beside each restyle, with verdicts and a wipe slider.
    page.click("text=compare all restyles of this photo")
    page.wait_for_url("**/edits?image=**")
    assert page.locator("figure.edit").count() == 1  # the guest view: the too-strong edit is not shown
    assert page.locator("figure.edit .verdict").all_inner_texts() == ["faithful"]
    page.click("#view a")  # the staff view shows every edit, with the guard's reason
    page.wait_for_url("**view=staff**")
    edits = page.locator("figure.edit")
    assert edits.count() == 2
    assert page.locator("figure.edit .verdict").all_inner_texts() == ["faithful", "too strong"]
    assert page.locator('figure.edit[data-edit-id="e1"] .reason').inner_text() == "structure ssim 0.40 < 0.5"
    page.locator("figure.edit >> nth=0").locator('input[type="range"]').fill("80")
    assert page.locator(".compare >> nth=0").evaluate("b => b.style.getPropertyValue('--pos')") == "80%"
    page.wait_for_load_state("networkidle")
    assert images_loaded(page, ".compare-row img")
    compare_shot = tmp_path / "compare.png"
    page.screenshot(path=str(compare_shot), full_page=True)

    assert len(search_shot) > 10_000
    assert compare_shot.stat().st_size > 10_000


def live_server(app):
    """uvicorn in a thread on a free port; returns (url, stop)."""
    port = free_port()
    live = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=live.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not live.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the gallery server did not start within 20 s")
        time.sleep(0.05)

    def stop() -> None:
        live.should_exit = True
        thread.join(timeout=10)

    return f"http://127.0.0.1:{port}", stop


def test_sample_photos_tagged_offline_are_found_and_shown(page, samples_dir: Path, tmp_path: Path) -> None:
    """The real sample photos, tagged by the offline model: a word's results all show their photo.

    With ALIENSTAY_SCREENSHOTS=1 the page is also saved, downscaled, as docs/figures/gallery.png
    (sample photos only: Unsplash License, attribution in docs/)."""
    import os

    import pandas as pd
    from PIL import Image
    from typer.testing import CliRunner

    from alienstay.cli.commands import app as cli
    from alienstay.testing.tiny_models import prepared_workspace

    ws = prepared_workspace(tmp_path / "samples-ws", samples_dir)  # tmp_path/ws is the `server` fixture's
    result = CliRunner().invoke(cli, ["tag", "--model", "offline", "--workers", "0", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    tags = pd.read_parquet(ws.tags_path)
    chosen = tags[tags["selected"]]
    counts = chosen.groupby("tag")["image_id"].nunique()
    common = counts[counts < counts.max()].idxmax() if (counts < counts.max()).any() else counts.idxmax()
    url, stop = live_server(create_app(ws.root))
    try:
        page.goto(f"{url}/?words={common}")
        page.wait_for_load_state("networkidle")
        assert len(result_ids(page)) == counts[common]
        assert images_loaded(page, "#results img")
        if os.environ.get("ALIENSTAY_SCREENSHOTS") == "1":
            target = Path(__file__).resolve().parents[1] / "docs" / "figures" / "gallery.png"
            shot = tmp_path / "gallery.png"
            page.screenshot(path=str(shot), full_page=False)
            image = Image.open(shot).convert("RGB")
            image.thumbnail((1000, 1000))
            image.save(target, optimize=True)
    finally:
        stop()
