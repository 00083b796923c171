"""The `gpu` preset's editors and portrait (issue 11) end to end with tiny random pipelines.

FLUX.1 Kontext and FLUX.1 [schnell] are built offline by src/alienstay/testing/tiny_flux.py, Qwen-Image-Edit by
src/alienstay/testing/tiny_qwen.py, saved with save_pretrained and loaded back through the resolver: the code
path real weights take, on the sample photos at 64 px and 2 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.editing import masks, methods, selection
from alienstay.editing.base import fit_size
from alienstay.editing.faithfulness import Guard
from alienstay.editing.identity import SeriesSettings
from alienstay.editing.recipes import load_recipes
from alienstay.editing.runner import run_series
from alienstay.testing import tiny_flux, tiny_qwen
from alienstay.workspace.layout import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def flux(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_flux")
    return {"kontext": tiny_flux.build_tiny_flux_kontext(root / "kontext"), "schnell": tiny_flux.build_tiny_flux(root / "schnell")}


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> Path:
    return tiny_qwen.build_tiny_qwen_image_edit(tmp_path_factory.mktemp("tiny_qwen") / "qwen-image-edit")


@pytest.fixture
def editor_folders(flux, qwen) -> dict[str, Path]:
    return {"kontext": flux["kontext"], "qwen-image-edit": qwen}



def series(ws: Workspace, recipe_name: str, editor, mask_for=masks.no_mask, photos: int = 2) -> pd.DataFrame:
    recipe = load_recipes().get(recipe_name)
    chosen = selection.photos_for_workspace(ws, 5).head(photos)
    return run_series(ws, recipe, chosen, editor, SeriesSettings(method=editor.method, steps=2, size=64),
                      Guard(use_lpips=False), mask_for)


def test_every_recipe_offers_qwen_image_edit_and_kontext_with_settings_that_validate():
    book = load_recipes()  # loading validates every method a recipe names against the registry
    for recipe in book.recipes.values():
        assert {"qwen-image-edit", "kontext"} <= set(recipe.methods), recipe.name
        for method in recipe.methods:
            assert set(recipe.settings_for(method)) <= set(methods.EDITORS.get(method).settings)
    assert "non-commercial" in methods.EDITORS.get("kontext").licence.lower()
    assert methods.EDITORS.get("qwen-image-edit").licence == "Apache-2.0"


def test_every_preset_editor_is_a_registered_method_every_recipe_allows_with_weights_in_the_preset():
    from alienstay.runtime.presets import PRESETS, members, preset_editor

    book = load_recipes()
    named = {preset.name: preset_editor(preset.name) for preset in PRESETS}
    assert named["gpu"] == "qwen-image-edit" and named["cpu"] is None
    for preset, method in named.items():
        if method is not None:
            assert method in methods.EDITORS.names() and f"edit:{method}" in members(preset)
            if members(preset)[f"edit:{method}"].fetchable:  # diffusion: every recipe can use it
                assert all(method in recipe.methods for recipe in book.recipes.values())
            else:  # the offline preset's classical grade: the recipes without one are skipped, said so
                assert any(method in recipe.methods for recipe in book.recipes.values())


def test_kontext_series_on_the_sample_photos(ws, flux):
    recipe = load_recipes().get("time_of_day")
    editor = methods.load_editor("kontext", recipe, model=str(flux["kontext"]))
    table = series(ws, "time_of_day", editor)
    assert len(table) == 2 * 3 and (table["method"] == "kontext").all()
    assert (table["model_id"] == str(flux["kontext"])).all()
    for row in table.itertuples():
        size = Image.open(row.output_path).size
        assert max(size) == 64 and all(side % 2 == 0 for side in size)  # the tiny VAE's factor x 2x2 packing


# One photo for Qwen-Image-Edit: its pipeline VAE-encodes every photo at ~1 MP (~2 s an edit on this CPU).
@pytest.mark.parametrize(("method", "photos"), [("kontext", 2), ("qwen-image-edit", 1)])
def test_instruction_editor_with_a_mask_file_keeps_the_outside_bit_identical(method, photos, ws, editor_folders, tmp_path):
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[20:40, 10:40] = 255
    mask_path = tmp_path / "bed_mask.png"
    Image.fromarray(mask).save(mask_path)
    recipe = load_recipes().get("bed_decoration")
    editor = methods.load_editor(method, recipe, model=str(editor_folders[method]))
    table = series(ws, "bed_decoration", editor, masks.make_mask_for(recipe, method, mask_path, mask_model="unused"), photos)
    assert len(table) == photos * 3 and (table["method"] == method).all()
    assert (table["outside_mask_change"] == 0.0).all()
    assert (table["mask_area"] > 0).all() and (table["mask_area"] < 0.35).all()
    for row in table.itertuples():
        edited = np.asarray(Image.open(row.output_path).convert("RGB"))
        original = np.asarray(fit_size(Image.open(row.source_path), 64))  # the runner fits to multiples of 8 first
        outside = masks.read_mask(mask_path, (original.shape[1], original.shape[0])) < 0.5
        assert edited.shape == original.shape and 0 < outside.mean() < 1
        assert np.array_equal(edited[outside], original[outside])
        assert not np.array_equal(edited[~outside], original[~outside])


def test_flux_schnell_portrait_through_the_cli(flux, tmp_path):
    root = tmp_path / "ws"
    result = runner.invoke(app, ["persona", "--model", f"flux-schnell:{flux['schnell']}", "--seed", "3", "--steps", "2",
                                 "--size", "64", "--workspace", str(root)])
    assert result.exit_code == 0, result.output
    record = json.loads((Workspace(root).persona_dir / "alien_portrait_seed3.json").read_text())
    assert record["model_id"] == str(flux["schnell"]) and record["text_to_image"] == "flux-schnell"
    assert Image.open(Workspace(root).persona_dir / record["image"]).size == (64, 64)


def test_qwen_image_edit_series_on_the_sample_photos(ws, qwen):
    """Without torchvision the editor builds the image-only processor from processor/; with it, the stock one."""
    from transformers import Qwen2VLProcessor
    from transformers.utils import is_torchvision_available

    from alienstay.editing.qwen_processor import ImageOnlyQwen2VLProcessor

    recipe = load_recipes().get("time_of_day")
    editor = methods.load_editor("qwen-image-edit", recipe, model=str(qwen))
    processor = editor.pipe.processor
    assert isinstance(processor, Qwen2VLProcessor)
    assert isinstance(processor, ImageOnlyQwen2VLProcessor) != is_torchvision_available()
    table = series(ws, "time_of_day", editor, photos=1)  # ~2 s an edit: the pipeline VAE-encodes the photo at ~1 MP
    assert len(table) == 3 and (table["method"] == "qwen-image-edit").all()
    assert (table["model_id"] == str(qwen)).all()
    outputs = [np.asarray(Image.open(row.output_path).convert("RGB")) for row in table.itertuples()]
    for row, edited in zip(table.itertuples(), outputs):
        original = np.asarray(fit_size(Image.open(row.source_path), 64))  # what the runner gave the editor
        assert edited.shape == original.shape and max(edited.shape[:2]) == 64
        assert not np.array_equal(edited, original)
    assert not np.array_equal(outputs[0], outputs[1])  # one photo, two values: the instruction reaches the transformer


def test_a_few_step_lora_is_fused_with_its_schedule_and_named_in_the_model_id(ws, qwen, tmp_path):
    """--lcm-lora for Qwen-Image-Edit: a Lightning-style LoRA file, fused before placing, the FlowMatch
    schedule it was distilled for, and its name in the model id (so its edits never pass for the base's)."""
    import torch
    from diffusers import QwenImageEditPipeline, QwenImageTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from alienstay.editing.methods import Speed
    from alienstay.editing.qwen import QwenImageEditEditor

    transformer = QwenImageTransformer2DModel.from_pretrained(qwen, subfolder="transformer")
    targets = ["to_q", "to_k", "to_v"]
    transformer.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights=False, target_modules=targets))
    lora = tmp_path / "lightning" / "Qwen-Image-Edit-Lightning-4steps.safetensors"
    QwenImageEditPipeline.save_lora_weights(lora.parent, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                            weight_name=lora.name)  # fmt: skip
    plain, fast = QwenImageEditEditor(str(qwen)), QwenImageEditEditor(str(qwen), speed=Speed(lcm_lora=str(lora)))
    assert fast.model_id == f"{qwen} + {lora}" and plain.model_id == str(qwen)
    assert fast.pipe.scheduler.config.time_shift_type == "exponential" and fast.pipe.scheduler.config.use_dynamic_shifting
    before = dict(plain.pipe.transformer.named_parameters())
    after = dict(fast.pipe.transformer.named_parameters())
    assert set(after) == set(before)  # fused, the adapter layers unloaded
    changed = [name for name, weight in after.items() if not torch.equal(weight, before[name])]
    assert changed and all(any(t in name for t in targets) for name in changed)
    table = series(ws, "time_of_day", fast, photos=1)
    assert len(table) == 3 and (table["model_id"] == fast.model_id).all()


def test_image_only_processor_expands_image_tokens_and_tokenizes_bytes(qwen, samples_dir):
    """What QwenImageEditPipeline asks of its processor, on a sample photo at the pipeline's ~1 MP."""
    from transformers.utils import is_torchvision_available

    from alienstay.editing.qwen_processor import (
        PROCESSOR_FOLDER,
        ImageOnlyQwen2VLProcessor,
    )

    processor = ImageOnlyQwen2VLProcessor.from_pretrained(str(qwen), subfolder=PROCESSOR_FOLDER)
    assert not hasattr(processor, "video_processor")
    # AutoImageProcessor's backend: torchvision's where it is installed (every GPU machine), PIL's otherwise
    backend = "" if is_torchvision_available() else "Pil"
    assert type(processor.image_processor).__name__ == f"Qwen2VLImageProcessor{backend}"
    photo = Image.open(next(p for p in sorted(samples_dir.rglob("*")) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}))
    photo = photo.convert("RGB").resize((1184, 896))
    template = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{}<|im_end|>"
    texts = [template.format("make it night"), template.format("é")]
    inputs = processor(text=texts, images=[photo, photo], padding=True, return_tensors="pt")
    grid = inputs["image_grid_thw"]
    # 1184x896 within max_pixels 56x56, sides multiples of 28 (14 px patches, 2x2 merge): 28x56 px
    assert grid.tolist() == [[1, 2, 4], [1, 2, 4]]
    assert inputs["pixel_values"].shape == (2 * 8, 3 * 2 * 14 * 14)  # 8 patches an image, 2 frames of 14x14x3
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert (inputs["input_ids"] == pad).sum(dim=1).tolist() == [8 // 4, 8 // 4]  # prod(grid) // merge_size**2
    first = inputs["input_ids"][0][inputs["attention_mask"][0].bool()].tolist()
    assert processor.tokenizer.decode(first) == texts[0].replace("<|image_pad|>", "<|image_pad|>" * 2)
    lengths = inputs["attention_mask"].sum(dim=1).tolist()
    assert lengths[0] - lengths[1] == len("make it night".encode()) - len("é".encode())  # one token a byte


def test_qwen_processor_parts_leave_the_stock_processor_where_torchvision_is_installed(monkeypatch, qwen):
    from alienstay.editing import qwen_processor

    monkeypatch.setattr(qwen_processor, "is_torchvision_available", lambda: True)
    assert qwen_processor.processor_parts(str(qwen)) == {}
    monkeypatch.setattr(qwen_processor, "is_torchvision_available", lambda: False)
    assert isinstance(qwen_processor.processor_parts(str(qwen))["processor"], qwen_processor.ImageOnlyQwen2VLProcessor)


def test_size_table_rule():
    from benchmarks.bench_editors import fits

    assert fits({"transformer": 40.9, "text_encoder": 16.6}, 80) == "all on GPU"
    assert fits({"transformer": 40.9, "text_encoder": 16.6}, 48) == "no"  # 40.9 > 0.85 x 48
    assert fits({"transformer": 10.2, "text_encoder": 16.6}, 24) == "CPU offload"


def test_models_list_gpu_names_qwen_image_edit_and_offers_kontext_with_its_licence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    result = runner.invoke(app, ["models", "list", "--preset", "gpu"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 2}
    assert "Qwen/Qwen-Image-Edit" in lines["edit:qwen-image-edit"] and "Apache-2.0" in lines["edit:qwen-image-edit"]
    assert "FLUX.1-Kontext-dev" in lines["edit:kontext"] and "Non-Commercial" in lines["edit:kontext"]  # the licence column wraps
    assert "FLUX.1-schnell" in lines["text-to-image"]
    assert "editor: qwen-image-edit for every recipe" in " ".join(result.output.split())  # the preset's editor
    cpu = runner.invoke(app, ["models", "list", "--preset", "cpu"], env={"COLUMNS": "300"})
    assert "editor: each recipe's own method" in " ".join(cpu.output.split())


# ---- the `gpu` preset's editor: qwen-image-edit for every recipe, --method still wins ----------
ONE_VALUE_RECIPES = """
defaults:
  thresholds: {change_min: 0.01, clip_direction_min: 0.0, structure_min: 0.55, edge_min: 0.45, dino_max: 0.15,
               lpips_max: 0.45, outside_mask_max: 0.01, mask_area_max: 0.35}
recipes:
  dusk_only:
    parameter: time of day
    method: classical
    methods: [classical, qwen-image-edit]
    source: "a photo of a hotel room"
    values:
      dusk:
        instruction: "make it dusk with a warm orange sky"
        prompt: "a photo of a hotel room at dusk, warm orange evening light"
        grade: {exposure: 0.65, gamma: 1.15, temperature: 0.12, saturation: 0.95, keep_lights: 0.5}
  no_qwen:
    parameter: time of day
    method: classical
    methods: [classical]
    source: "a photo of a hotel room"
    values:
      dusk:
        prompt: "a photo of a hotel room at dusk"
        grade: {exposure: 0.65, gamma: 1.15, temperature: 0.12, saturation: 0.95, keep_lights: 0.5}
"""


def edit(ws: Workspace, *args: str, device: str = "cpu"):
    return runner.invoke(app, ["edit", *args, "--images", "5", "--size", "64", "--steps", "2", "--device", device,
                               "--dtype", "float32", "--workspace", str(ws.root)])  # fmt: skip


def test_gpu_preset_edits_every_recipe_with_qwen_image_edit_and_method_still_wins(ws, qwen, tmp_path, test_device):
    """One value on the minimum 5 photos (~2 s a Qwen-Image-Edit edit here); the recipe's own method is classical."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(ONE_VALUE_RECIPES)
    result = edit(ws, "--preset", "gpu", "--recipes", str(mine), "--recipe", "dusk_only", "--model", str(qwen), device=test_device)
    assert result.exit_code == 0, result.output
    assert "5 edits with qwen-image-edit" in result.output and (ws.read_edits()["model_id"] == str(qwen)).all()
    table = ws.read_edits()
    assert len(table) == 5 and (table["method"] == "qwen-image-edit").all() and table["is_diffusion"].all()

    chosen = edit(ws, "--preset", "gpu", "--method", "classical", "--recipes", str(mine), "--recipe", "dusk_only", device=test_device)
    assert chosen.exit_code == 0 and "5 edits with classical" in chosen.output
    own = edit(ws, "--preset", "cpu", "--recipes", str(mine), "--recipe", "dusk_only", device=test_device)
    assert own.exit_code == 0 and "5 edits with classical" in own.output  # cpu names no editor: the recipe's

    refused = edit(ws, "--preset", "gpu", "--recipes", str(mine), "--recipe", "no_qwen", device=test_device)
    message = " ".join(refused.output.split())  # the console wraps long lines
    assert refused.exit_code == 2 and "does not allow method 'qwen-image-edit'" in message
    assert "use one of ['classical']" in message  # what to do next: --method classical


def test_gpu_preset_without_weights_names_qwen_image_edit_and_the_demo_falls_back(ws, monkeypatch, tmp_path, test_device):
    from alienstay.runtime.presets import preset_editor
    from alienstay.stages import edit as stage

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("ALIENSTAY_MODELS_DIR", raising=False)
    assert preset_editor("gpu") == "qwen-image-edit" and preset_editor("cpu") is None and preset_editor(None) is None
    result = edit(ws, "--preset", "gpu", "--recipe", "lights", device=test_device)
    assert result.exit_code == 2 and "Qwen/Qwen-Image-Edit" in result.output and "is not available" in result.output
    # The demo's path (demo.run_edits): the gpu editor's weights missing -> the recipe's classical grade.
    summary = stage.run_or_fallback(ws, stage.EditSettings(recipe="lights", images=5, size=64, preset="gpu", device=test_device))
    assert summary.fallback and "Qwen/Qwen-Image-Edit" in summary.fallback
    assert (summary.rows["method"] == "classical").all()
