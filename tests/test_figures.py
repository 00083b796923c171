"""`make figures`: the docs' photo figures are downscaled copies, small, credited and shown on a page."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("make_figures", REPO / "scripts" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_figures_are_downscaled_jpegs_within_the_size_limit(tmp_path: Path, monkeypatch) -> None:
    script = load_script()
    monkeypatch.setattr(script, "MAX_BYTES", 60_000)  # small: noise must push quality, then width, down
    report = tmp_path / "ws" / "report"
    report.mkdir(parents=True)
    noise = Image.effect_noise((1200, 900), 90).convert("RGB")  # incompressible: exercises the quality loop
    for name in ("tags_examples.png", "clusters_map.png", "edits_night.png", "tags_informativeness.png"):
        noise.save(report / name)
    written = {path.name: path for path in script.make_figures(tmp_path / "ws", tmp_path / "out")}
    assert set(written) == {"tags_examples.jpg", "clusters_map.jpg", "edits_night.jpg", "tags_informativeness.png"}
    for name in ("tags_examples.jpg", "clusters_map.jpg", "edits_night.jpg"):
        assert written[name].stat().st_size <= script.MAX_BYTES
        with Image.open(written[name]) as image:
            assert image.format == "JPEG" and image.width < 1200
    with Image.open(written["tags_informativeness.png"]) as image:
        assert image.width == 1200  # charts are copied as they are


def test_committed_photo_figures_are_small_credited_and_shown_on_a_page() -> None:
    # docs pages link figures/NAME, the README docs/figures/NAME: both end in figures/NAME
    shown = "\n".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    figures = REPO / "docs" / "figures"
    photos = sorted(figures.glob("*.jpg"))
    assert {p.name for p in photos} >= {"tags_examples.jpg", "clusters_map.jpg", "edits_time_of_day.jpg"}
    for path in photos:
        assert path.stat().st_size <= 400_000, f"{path.name} too large: run `make figures`"
        assert f"figures/{path.name}" in shown, f"{path.name} is not shown in the README or on a docs/ page"
    credits = (figures / "ATTRIBUTION.md").read_text()
    assert len(re.findall(r"images\.unsplash\.com/photo-", credits)) == 8
    # never the photo files themselves: no file in the repository named like a sample photo
    samples = {"apartment_downtown", "apartment_luxury", "house_family", "house_suburban", "penthouse_luxury",
               "studio_modern", "townhouse_historic", "villa_ocean"}
    skipped = {".venv", "runs", ".git", "node_modules"}
    tops = [p for p in REPO.iterdir() if p.is_dir() and p.name not in skipped]
    found = [p for top in tops for p in top.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"}]
    assert not [p for p in found if p.stem in samples]
