"""docs/extending.md's worked examples run as written: each block is the one file it names.

Every python, yaml and toml block of the page is written to the file its first line names, in a
package folder put on sys.path; the modules are imported in the page's order, and each example's
effect is checked: the entry is registered, its declaration passes the contract, it loads and runs
with a tiny stand-in, the stage writes its table, the CLI accepts the new names, and the entry
point is found by a fresh registry. The registries are restored afterwards.
"""

from __future__ import annotations

import importlib
import re
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from PIL import Image
from test_registry_contract import check_declaration, run_with_stand_ins
from test_registry_entry_points import fake_distribution
from typer.testing import CliRunner

from alienstay.runtime.registry import all_registries, registry_of
from alienstay.testing.tiny_entries import STAND_INS, add_stand_in
from alienstay.testing.tiny_models import build_tiny_blip, build_tiny_siglip2

DOC = REPO / "docs" / "extending.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
NAMED = re.compile(r"^# file: (\S+)\n")


def blocks() -> list[tuple[str, str, str]]:
    """(language, file name, text) of every fenced block of the page, in order."""
    found = []
    for language, text in FENCE.findall(DOC.read_text(encoding="utf-8")):
        name = NAMED.match(text)
        found.append((language, name.group(1) if name else "", text))
    return found


def test_every_code_block_names_the_file_it_is():
    assert blocks(), "the page has its examples"
    for language, name, _ in blocks():
        assert name, f"a {language} block without `# file: NAME` would go unrun"
        assert Path(name).suffix == {"python": ".py", "yaml": ".yaml", "toml": ".toml"}[language], name


def test_the_page_names_every_registry_s_entry_point_group():
    page = DOC.read_text(encoding="utf-8")
    assert all(f"`{registry.group}`" in page for registry in all_registries())


@pytest.fixture
def doc_files(tmp_path, monkeypatch):
    """The page's files in tmp_path/ext, importable; every registry as it was before, afterwards."""
    for registry in all_registries():
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
        monkeypatch.setattr(registry, "outside", dict(registry.outside))
        monkeypatch.setattr(registry, "_points_done", set(registry._points_done))
    monkeypatch.setattr("alienstay.testing.tiny_entries.STAND_INS", dict(STAND_INS))
    folder = tmp_path / "ext"
    folder.mkdir()
    modules = []
    for language, name, text in blocks():
        (folder / name).write_text(text, encoding="utf-8")
        if language == "python":
            modules.append(Path(name).stem)
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    loaded = {name: importlib.import_module(name) for name in modules}
    yield folder, loaded
    for name in modules:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def photo(samples_dir) -> Image.Image:
    return Image.open(sorted(Path(samples_dir).glob("*.jpg"))[0]).convert("RGB").resize((96, 64))


def check_entry(kind: str, name: str, photo: Image.Image, root: Path, recipes: Path | None = None):
    registry = registry_of(kind)
    assert name in registry.names()
    entry = registry.get(name)
    check_declaration(registry, entry)
    run_with_stand_ins(registry, entry, photo, root, recipes)
    return entry


def test_the_stage_writes_its_table_through_the_workspace(doc_files, ws):
    _, modules = doc_files
    summary = modules["colours"].run(ws)
    table = pd.read_parquet(summary.path)
    usable = ws.read_catalog(columns=["image_id"], status="ok")
    assert summary.photos == len(table) == len(usable) > 0
    assert table[["red", "green", "blue"]].stack().between(0, 1).all()
    assert '"stage": "colours"' in ws.runs_log_path.read_text()


def test_the_encoder_is_one_file_and_tags_with_its_name(doc_files, photo, tmp_path, ws):
    from alienstay.cli.commands import app

    add_stand_in("google/siglip2-base-patch16-224", build_tiny_siglip2)  # its test: the tiny stand-in
    entry = check_entry("encoder", "siglip2", photo, tmp_path / "stand-ins")
    folder = tmp_path / "stand-ins" / "google--siglip2-base-patch16-224"
    result = CliRunner().invoke(app, ["tag", "--model", f"siglip2:{folder}", "--device", "cpu", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert set(ws.read_tags()["model_id"]) == {str(folder)} and entry.name == "siglip2"


def test_the_editor_and_the_recipe_run_a_series_with_method_img2img(doc_files, photo, tmp_path, ws):
    from alienstay.cli.commands import app
    from alienstay.editing.recipes import load_recipes

    folder, _ = doc_files
    recipes = folder / "curtains.yaml"
    check_entry("edit method", "img2img", photo, tmp_path / "stand-ins", recipes)
    assert load_recipes(recipes).get("curtains").methods == ("img2img", "instruct-pix2pix")
    sd = tmp_path / "stand-ins" / "stable-diffusion-v1-5--stable-diffusion-v1-5"
    result = CliRunner().invoke(app, [
        "edit", "--recipes", str(recipes), "--recipe", "curtains", "--method", "img2img", "--model", str(sd),
        "--images", "5", "--size", "64", "--steps", "2", "--device", "cpu", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    edits = ws.read_edits()
    assert set(edits["method"]) == {"img2img"} and len(edits) == 5 * 2 and edits["model_id"].str.startswith(str(sd)).all()


def test_the_masker_masks_and_is_chosen_by_name(doc_files, photo, tmp_path):
    from alienstay.editing.masks import choose_masker

    check_entry("masker", "owlv2-boxes", photo, tmp_path / "stand-ins")
    assert choose_masker("owlv2-boxes") == ("owlv2-boxes", {"masker": "google/owlv2-base-patch16-ensemble"})


def test_the_captioner_captions(doc_files, photo, tmp_path):
    from alienstay.captioning.captioners import entry_for

    add_stand_in("Salesforce/blip-image-captioning-large", build_tiny_blip)
    entry = check_entry("captioner", "blip-large", photo, tmp_path / "stand-ins")
    assert entry_for("blip-large") == (entry, "Salesforce/blip-image-captioning-large")


def test_the_clustering_method_clusters(doc_files, photo, tmp_path):
    check_entry("clustering method", "spectral", photo, tmp_path / "stand-ins")


def test_the_entry_point_is_found_by_a_fresh_registry(doc_files, monkeypatch):
    from alienstay.editing.methods import EDITORS

    folder, _ = doc_files
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    points = "".join(f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
                     for group, entries in project["entry-points"].items())
    site = fake_distribution(folder.parent / "site", project["name"], points, {
        "img2img": (folder / "img2img.py").read_text()})
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("img2img", None)  # as in a fresh process: not imported yet
    del EDITORS._entries["img2img"]
    monkeypatch.setattr(EDITORS, "_outside_loaded", False)
    assert "img2img" in EDITORS.names() and EDITORS.outside["img2img"] == "alienstay-img2img 0.1"
    assert EDITORS.get("img2img").reads == "prompt" and EDITORS.get("img2img") not in EDITORS.builtin()
