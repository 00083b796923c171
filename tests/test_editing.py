"""Edit series end to end with tiny random diffusion pipelines, on the real sample photos.

Every pipeline is built from a config, saved with save_pretrained and loaded back through the
model resolver, so the code path is the one real weights take; 2 steps at 64 px keep it fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.editing import controls, masks, methods, selection
from alienstay.editing import pipelines as P
from alienstay.editing.faithfulness import Guard
from alienstay.editing.identity import SeriesSettings
from alienstay.editing.recipes import load_recipes
from alienstay.editing.runner import EDIT_COLUMNS, run_series
from alienstay.editing.selection import choose_photos
from alienstay.testing import tiny_pipelines
from alienstay.workspace.layout import Workspace

runner = CliRunner()
FAST = ["--steps", "2", "--size", "64", "--images", "5"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {
        "ip2p": tiny_pipelines.build_tiny_instruct_pix2pix(root / "ip2p"),
        "sd": tiny_pipelines.build_tiny_sd(root / "sd"),
        "inpaint": tiny_pipelines.build_tiny_inpaint(root / "inpaint"),
        "controlnet": tiny_pipelines.build_tiny_controlnet(root / "controlnet"),
        "clipseg": tiny_pipelines.build_tiny_clipseg(root / "clipseg"),
        "lcm": tiny_pipelines.build_tiny_lcm_lora(root / "lcm"),
        "dino": tiny_pipelines.build_tiny_dino(root / "dino"),
    }



def edit(ws: Workspace, *args: str):
    return runner.invoke(app, ["edit", *args, "--workspace", str(ws.root)])


def test_instruct_pix2pix_series_writes_grid_and_table_and_resumes(ws, tiny):
    result = edit(ws, "--recipe", "night", "--method", "instruct-pix2pix", "--model", str(tiny["ip2p"]), *FAST)
    assert result.exit_code == 0, result.output
    table = ws.read_edits()
    assert list(table.columns) == EDIT_COLUMNS
    assert len(table) == 5 * 3 and set(table["value"]) == {"day", "dusk", "night"}
    assert (table["model_id"] == str(tiny["ip2p"])).all() and (table["seed"] == 0).all()
    assert (table["steps"] == 2).all() and (table["image_guidance_scale"] == 1.6).all()
    assert table["verdict"].isin(["faithful", "too_strong", "not_applied"]).all()
    assert all(Path(p).is_file() for p in table["output_path"])
    assert Image.open(table["output_path"].iloc[0]).size[0] == 64
    grid = ws.report_dir / "edits_time_of_day.png"
    assert grid.is_file() and Image.open(grid).size[0] > 400

    again = edit(ws, "--recipe", "night", "--method", "instruct-pix2pix", "--model", str(tiny["ip2p"]), *FAST)
    assert again.exit_code == 0, again.output
    resumed = ws.read_edits()
    assert len(resumed) == 15 and resumed["seconds"].tolist() == table["seconds"].tolist()  # nothing redone


def test_same_seed_gives_identical_output(tiny, samples_dir):
    photo = Image.open(next(iter(sorted(samples_dir.glob("*.jpg")))))
    recipe = load_recipes().get("time_of_day")
    editor = P.InstructPix2PixEditor(str(tiny["ip2p"]))

    def run(seed: int) -> np.ndarray:
        request = P.EditRequest(value=recipe.value("night"), seed=seed, steps=2, size=64, guidance_scale=7.5, image_guidance_scale=1.5)
        return np.asarray(editor.edit(photo, request).image)

    first, second, other = run(7), run(7), run(8)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def run_core_series(ws: Workspace, recipe_name: str, editor, mask_for=masks.no_mask, photos: int = 2) -> pd.DataFrame:
    """The series core on two photos: the CLI test above covers the full command."""
    recipe = load_recipes().get(recipe_name)
    chosen = selection.photos_for_workspace(ws, 5).head(photos)
    settings = SeriesSettings(method=editor.method, steps=2, size=64)
    return run_series(ws, recipe, chosen, editor, settings, Guard(use_lpips=False), mask_for)


def test_controlnet_series_records_both_models_and_a_line_map(ws, tiny, samples_dir):
    editor = methods.load_editor("controlnet", load_recipes().get("alien_style"), model=str(tiny["sd"]), controlnet=str(tiny["controlnet"]))
    table = run_core_series(ws, "alien_style", editor)
    assert len(table) == 2 * 2 and (table["method"] == "controlnet").all() and (table["strength"] == 0.6).all()
    assert table["model_id"].iloc[0] == f"{tiny['sd']} + {tiny['controlnet']}"
    assert ws.read_edits()["edit_id"].tolist() == table["edit_id"].tolist()
    lines = controls.mlsd_lines(P.fit_size(Image.open(sorted(samples_dir.glob("*.jpg"))[0]), 256))
    assert 0 < (np.asarray(lines) > 0).mean() < 0.5  # OpenCV's LSD found the room's straight lines


def test_inpainting_leaves_the_photo_untouched_outside_a_mask_file(ws, tiny, tmp_path):
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[20:40, 10:40] = 255
    mask_path = tmp_path / "bed_mask.png"
    Image.fromarray(mask).save(mask_path)
    recipe = load_recipes().get("bed_decoration")
    mask_for = masks.make_mask_for(recipe, "inpaint", mask_path, mask_model="unused")
    table = run_core_series(ws, "bed_decoration", P.InpaintEditor(str(tiny["inpaint"])), mask_for)
    assert len(table) == 2 * 3
    assert (table["outside_mask_change"] == 0.0).all()  # the original pasted back by construction
    assert (table["mask_area"] > 0).all() and (table["mask_area"] < 0.35).all()
    for row in table.itertuples():  # every pixel outside the mask is the original's, bit for bit
        original = np.asarray(P.fit_size(Image.open(row.source_path), 64))
        edited = np.asarray(Image.open(row.output_path).convert("RGB"))
        outside = masks.read_mask(mask_path, (original.shape[1], original.shape[0])) < 0.5
        assert edited.shape == original.shape and 0 < outside.mean() < 1
        assert np.array_equal(edited[outside], original[outside])
        assert not np.array_equal(edited[~outside], original[~outside])  # and the inside was edited


def test_inpainting_mask_from_a_text_query_with_clipseg(ws, tiny):
    result = edit(ws, "--recipe", "bed_decoration", "--model", "/no/such/inpaint/model", "--mask-model", str(tiny["clipseg"]), *FAST)
    assert result.exit_code == 2 and "/no/such/inpaint/model is not a folder" in result.output
    recipe = load_recipes().get("bed_decoration")
    mask_for = masks.make_mask_for(recipe, "inpaint", None, mask_model=str(tiny["clipseg"]))
    table = run_core_series(ws, "bed_decoration", P.InpaintEditor(str(tiny["inpaint"])), mask_for)
    assert table["mask_area"].notna().all() and table["outside_mask_change"].notna().all()
    # a random CLIPSeg marks most of the photo: the guard must refuse to call that "local"
    large = table[table["mask_area"] > 0.35]
    assert (large["verdict"] == "too_strong").all()


def test_lcm_lora_switches_to_the_lcm_scheduler_and_is_recorded(tiny, samples_dir):
    from diffusers import LCMScheduler

    editor = P.InstructPix2PixEditor(str(tiny["ip2p"]), speed=methods.Speed(lcm_lora=str(tiny["lcm"]), attention_slicing=True))
    assert isinstance(editor.pipe.scheduler, LCMScheduler)
    assert editor.model_id == f"{tiny['ip2p']} + {tiny['lcm']}"
    request = P.EditRequest(value=load_recipes().get("lights").value("on"), seed=0, steps=2, size=64,
                            guidance_scale=1.0, image_guidance_scale=1.5)
    assert editor.edit(Image.open(sorted(samples_dir.glob("*.jpg"))[1]), request).image.size[0] == 64


def test_classical_series_is_labelled_not_diffusion_and_faithful(ws, tiny):
    result = edit(ws, "--recipe", "lights", "--method", "classical", "--size", "128", "--images", "5")
    assert result.exit_code == 0, result.output
    assert "NOT diffusion" in result.output
    table = ws.read_edits()
    assert (~table["is_diffusion"]).all() and table["model_id"].str.contains("NOT diffusion").all()
    assert (table[table["value"] == "on"]["verdict"] == "faithful").all()
    assert math.isnan(table["lpips"].iloc[0])  # no LPIPS weights here: recorded missing, not invented

    assert table["dino_distance"].isna().all()

    with_dino = edit(ws, "--recipe", "lights", "--method", "classical", "--size", "128", "--images", "5", "--dino", str(tiny["dino"]))
    assert with_dino.exit_code == 0, with_dino.output
    remeasured = ws.read_edits()  # same edits, not redone, now with the DINO metric
    assert len(remeasured) == 10 and remeasured["dino_distance"].notna().all()
    assert remeasured["seconds"].tolist() == table["seconds"].tolist()

    smaller = edit(ws, "--recipe", "lights", "--method", "classical", "--size", "96", "--images", "5")
    assert smaller.exit_code == 0 and len(ws.read_edits()) == 20  # new settings: appended


def test_classical_is_refused_where_a_grade_would_be_dishonest(ws):
    result = edit(ws, "--recipe", "bed_decoration", "--method", "classical", "--images", "5")
    assert result.exit_code == 2 and "does not allow method 'classical'" in result.output


def test_a_missing_model_gives_the_resolver_message(ws, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    result = edit(ws, "--recipe", "night", *FAST)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "timbrooks/instruct-pix2pix" in result.output and "is not available" in result.output


def test_a_bad_user_recipe_file_gives_a_clear_error(ws, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("recipes:\n  glow:\n    parameter: glow\n    method: classical\n    values: {soft: {prompt: x}}\n")
    result = edit(ws, "--recipes", str(mine), "--recipe", "glow", "--images", "5")
    assert result.exit_code == 2 and "needs `grade` for method classical" in result.output


def test_list_says_which_photos_and_why(ws):
    result = edit(ws, "--list", "--images", "5")
    assert result.exit_code == 0 and result.output.count("spread over the catalog") == 5


def test_choose_photos_prefers_clusters_then_place_tags():
    photos = pd.DataFrame({"image_id": [f"p{i}" for i in range(8)], "prepared_path": [f"/x/p{i}.jpg" for i in range(8)]})
    clusters = pd.DataFrame({"image_id": photos["image_id"], "cluster": [0, 0, 0, 0, 1, 1, 2, -1]})
    chosen = choose_photos(photos, 5, clusters=clusters)
    assert chosen["image_id"].tolist()[:3] == ["p0", "p4", "p6"]  # one a cluster first, largest first
    assert chosen["why"].str.startswith("cluster").all()
    tags = pd.DataFrame({"image_id": photos["image_id"], "facet": "place", "selected": True, "prob": 0.9,
                         "tag": ["bedroom"] * 6 + ["pool area"] * 2})
    by_tag = choose_photos(photos, 5, tags=tags)
    assert {"p0", "p6"} <= set(by_tag["image_id"]) and by_tag["why"].str.contains("place tag").all()
    by_light = choose_photos(photos, 5, tags=tags.assign(facet="light"), facet="light")  # the facet is a setting
    assert by_light["why"].str.contains("light tag").all()
    assert choose_photos(photos, 5, tags=tags.assign(facet="light"))["why"].str.startswith("spread").all()


def test_persona_portrait_with_a_tiny_pipeline_records_prompt_and_seed(tiny, tmp_path):
    root = tmp_path / "ws"
    result = runner.invoke(app, ["persona", "--model", str(tiny["sd"]), "--seed", "3", "--steps", "2", "--size", "64", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    record = json.loads((Workspace(root).persona_dir / "alien_portrait_seed3.json").read_text())
    assert record["seed"] == 3 and "blue-violet" in record["prompt"] and "Portrait prompt" in record["source"]
    assert Image.open(Workspace(root).persona_dir / record["image"]).size == (64, 64)


def test_persona_without_weights_fails_cleanly_with_exit_code_2(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    result = runner.invoke(app, ["persona", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in result.output and "hf download" in result.output


def test_only_missing_weights_fall_back_a_real_crash_is_raised(ws, monkeypatch):
    """The demo and the notebook run stages.edit.run_or_fallback: it must not hide a crash."""
    from alienstay.runtime.models import ModelUnavailable, WeightsUnavailable
    from alienstay.stages import edit as edit_stage

    real = edit_stage.edit_series
    failure: list[BaseException] = []

    def diffusion_fails(ws, options, **kwargs):
        if options.method != "classical":
            raise failure[0]
        return real(ws, options, **kwargs)

    monkeypatch.setattr(edit_stage, "edit_series", diffusion_fails)
    settings = edit_stage.EditSettings(recipe="lights", images=5, size=64)
    failure[:] = [WeightsUnavailable("model 'timbrooks/instruct-pix2pix' is not available")]
    summary = edit_stage.run_or_fallback(ws, settings)
    assert "classical grade, NOT diffusion" in summary.fallback and (summary.rows["method"] == "classical").all()
    for crash in (RuntimeError("CUDA error: an illegal memory access"), ModelUnavailable("/typo is not a folder")):
        failure[:] = [crash]
        with pytest.raises(type(crash), match=str(crash).split(":")[0]):
            edit_stage.run_or_fallback(ws, settings)
