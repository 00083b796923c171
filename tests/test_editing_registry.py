"""The editor, masker and control-map registries: one entry each, and what recipes may ask of them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from alienstay.editing.base import EditOutput
from alienstay.editing.controls import CONTROL_MAPS
from alienstay.editing.masks import MASKERS
from alienstay.editing.methods import CLASSICAL, EDITORS, load_editor, setting_names
from alienstay.editing.recipes import RecipeError, load_recipes, parse_recipes
from alienstay.editing.registry import EditorSpec
from alienstay.persona import read_portrait_prompt

REPO = Path(__file__).resolve().parents[1]


def test_every_packaged_recipe_names_registered_methods_with_what_they_read():
    for recipe in load_recipes().recipes.values():
        for method in recipe.methods:
            spec = EDITORS.get(method)
            assert all(getattr(v, spec.reads) for v in recipe.values), (recipe.name, method)
            assert set(recipe.settings_for(method)) <= set(spec.settings), (recipe.name, method)
    # every entry's declaration: tests/test_registry_contract.py; here what the editing code relies on
    from alienstay.persona.text_to_image import TEXT_TO_IMAGE

    assert EDITORS.get("controlnet").weights["pipeline"] is TEXT_TO_IMAGE.get("sd15").weights["text-to-image"]
    assert not EDITORS.get(CLASSICAL).is_diffusion and EDITORS.get("inpaint").needs_mask
    assert EDITORS.get(CLASSICAL).default_models == {}  # plain code: no weights for --model to replace
    assert MASKERS.get("clipseg").default_model == MASKERS.get("clipseg").models["masker"]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=f"unknown control map 'hed': use one of {', '.join(CONTROL_MAPS.names())}"):
        CONTROL_MAPS.get("hed")
    with pytest.raises(ValueError, match="unknown edit method 'magic'"):
        EDITORS.get("magic")
    with pytest.raises(ValueError, match="masker 'clipseg' is registered twice"):
        MASKERS.register(MASKERS.get("clipseg"))


class Posterise:
    """A test editor registered from outside the package: a recipe and the series then use it."""

    method, model_id, is_diffusion = "posterise", "test:posterise", False

    def edit(self, image, request, mask=None):
        bits = int(request.value.grade.get("exposure", 1.0) * 2)
        return EditOutput(Image.fromarray((np.asarray(image.convert("RGB")) >> bits << bits).astype(np.uint8)))


def test_a_new_editor_is_one_registry_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(EDITORS._entries, "posterise", EditorSpec(name="posterise", build=lambda model, recipe, **_: Posterise(), reads="grade", settings=("steps",), is_diffusion=False))
    raw = {"recipes": {"poster": {"parameter": "colour depth", "method": "posterise", "values": {"coarse": {"grade": {"exposure": 2.0}}},
                                  "settings": {"posterise": {"steps": 1}},
                                  "thresholds": {n: 0.5 for n in ("change_min", "clip_direction_min", "structure_min", "edge_min", "dino_max",
                                                                  "lpips_max", "outside_mask_max", "mask_area_max")}}}}
    recipe = parse_recipes(raw, tmp_path / "mine.yaml").get("poster")
    editor = load_editor("posterise", recipe)
    assert editor.method == "posterise" and "posterise" in EDITORS
    missing = {"recipes": {"poster": {**raw["recipes"]["poster"], "values": {"coarse": {"prompt": "x"}}}}}
    with pytest.raises(RecipeError, match="needs `grade` for method posterise"):
        parse_recipes(missing, tmp_path / "mine.yaml")


def test_a_setting_the_method_does_not_read_is_refused(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        "defaults:\n  thresholds: {change_min: 0.01, clip_direction_min: 0, structure_min: 0.5, edge_min: 0.4,"
        " dino_max: 0.2, lpips_max: 0.5, outside_mask_max: 0.01, mask_area_max: 0.3}\n"
        "recipes:\n  glow:\n    parameter: glow\n    method: instruct-pix2pix\n"
        "    values: {soft: {instruction: make it glow}}\n    settings:\n      instruct-pix2pix: {strength: 0.5}\n"
    )
    with pytest.raises(RecipeError, match=r"settings \['strength'\] are not read by instruct-pix2pix"):
        load_recipes(mine)
    assert "mask_query" in setting_names() and "strength" in setting_names()


def test_the_packaged_portrait_prompt_is_the_one_docs_aliens_md_shows():
    doc = (REPO / "docs" / "aliens.md").read_text(encoding="utf-8")
    section = re.search(r"^## Portrait prompt\s*$(.*?)(?=^## |\Z)", doc, flags=re.M | re.S).group(1)
    shown = " ".join(re.search(r"```[^\n]*\n(.*?)```", section, flags=re.S).group(1).split())
    negative = re.search(r"Negative prompt:\s*`([^`\n]+)`", section).group(1).strip()
    packaged = read_portrait_prompt()
    assert packaged.prompt == shown and packaged.negative_prompt == negative
    assert "blue-violet" in packaged.prompt and "key card" in packaged.prompt


def test_weights_unavailable_is_its_own_error_and_a_bad_folder_is_not(tmp_path, monkeypatch):
    from alienstay.runtime.models import ModelUnavailable, WeightsUnavailable, resolve

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    with pytest.raises(WeightsUnavailable, match="no-such-org/no-such-pipeline"):
        resolve("no-such-org/no-such-pipeline")
    with pytest.raises(ModelUnavailable, match="is not a folder") as typo:
        resolve(str(tmp_path / "no" / "such" / "folder"))
    assert not isinstance(typo.value, WeightsUnavailable)  # a typo must fail, not fall back


def test_the_restyling_page_recipe_example_validates():
    import yaml

    from alienstay.editing.recipes import PACKAGED_RECIPES

    page = (REPO / "docs" / "restyling.md").read_text(encoding="utf-8")
    section = page.split("## Your own recipe", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    packaged = yaml.safe_load(PACKAGED_RECIPES.read_text(encoding="utf-8"))
    packaged["recipes"].update(example["recipes"])
    recipe = parse_recipes(packaged, PACKAGED_RECIPES).get("curtains")
    assert recipe.methods == ("instruct-pix2pix", "controlnet") and recipe.thresholds["structure_min"] == 0.6
    assert recipe.value("open").instruction == "open the curtains"
