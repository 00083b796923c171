"""The alien drawn by code: a vector SVG and its PNG, reproducible, and shown in the report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from alienstay.notes.report import build_report
from alienstay.persona.illustration import CAPTION, SKIN, draw
from alienstay.workspace.layout import Workspace

REPO = Path(__file__).resolve().parents[1]


def test_the_illustration_is_vector_and_redraws_identically(tmp_path: Path) -> None:
    svg, png = draw(tmp_path / "a")
    root = ET.parse(svg).getroot()
    tags = {element.tag.rsplit("}", 1)[-1] for element in root.iter()}
    assert "path" in tags and "image" not in tags  # drawn with shapes, no raster inside
    assert SKIN in svg.read_text()  # the persona's blue-violet skin
    with Image.open(png) as image:
        assert image.size == (800, 1200)
    again, _ = draw(tmp_path / "b")
    assert again.read_bytes() == svg.read_bytes()


def test_committed_illustration_is_there_and_vector() -> None:
    for name in ("alien.svg", "alien.png"):
        assert (REPO / "docs" / "figures" / name).stat().st_size > 10_000, f"run `python scripts/draw_alien.py` ({name})"
    assert "<image" not in (REPO / "docs" / "figures" / "alien.svg").read_text()


def test_report_shows_the_drawing_and_the_portrait_when_it_has_both(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    text = build_report(ws).read_text()
    assert "(alien_illustration.png)" in text and CAPTION in text
    assert (ws.report_dir / "alien_illustration.png").exists()
    assert "No diffusion portrait yet" in text

    ws.persona_dir.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), "violet").save(ws.persona_dir / "alien_portrait_seed0.png")
    (ws.persona_dir / "alien_portrait_seed0.json").write_text(json.dumps({"model_id": "tiny-sd", "seed": 0, "steps": 2}))
    text = build_report(ws).read_text()
    assert "(alien_illustration.png)" in text
    assert "../persona/alien_portrait_seed0.png" in text and "model_id: tiny-sd" in text
    assert "No diffusion portrait yet" not in text
