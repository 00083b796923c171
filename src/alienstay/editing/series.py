"""The edit stage: one recipe's values applied to a few varied photos with one fixed seed.

``run(ws, EditSettings) -> EditSummary`` (``edit_workspace`` with progress callbacks) writes
``edits/``, one row an edit in ``edits.parquet`` and ``report/edits_<recipe>.png``. The parts:
which photos (``selection``), what an edit is and its key (``identity``), masks (``masks``),
the loop (``runner``), the figure (``grid``); methods come from the editor registry
(``methods``), so nothing here branches on a method's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alienstay.editing.faithfulness import Guard
from alienstay.editing.grid import draw_grid
from alienstay.editing.identity import SeriesSettings
from alienstay.editing.masks import choose_masker, make_mask_for, mask_identity
from alienstay.editing.recipes import Recipe
from alienstay.editing.runner import run_series
from alienstay.editing.selection import (  # noqa: F401  (the stage's API: cli and demo use these)
    GROUP_FACET,
    MAX_PHOTOS,
    MIN_PHOTOS,
    photos_for_workspace,
    usable_photos,
)
from alienstay.runtime.placement import edit_placement
from alienstay.runtime.presets import preset_editor, preset_model
from alienstay.workspace.layout import Workspace

LCM_STEPS, LCM_GUIDANCE = 4, 1.0  # what LCM-LoRA is distilled for: a few steps, no guidance branches

log = logging.getLogger("alienstay")


@dataclass(frozen=True)
class EditSettings:
    """Everything `alienstay edit` can be told; None means the recipe's or the method's default."""

    recipe: str = "time_of_day"
    images: int = 8
    method: str | None = None
    steps: int | None = None
    size: int = 512
    seed: int = 0
    recipes_path: Path | None = None
    model: str | None = None
    controlnet: str | None = None
    control: str | None = None
    guidance: float | None = None
    image_guidance: float | None = None
    strength: float | None = None
    mask: Path | None = None
    mask_model: str | None = None  # the masker's first model (role "masker"); None: the preset's, else the masker's default
    masker: str | None = None  # None: the preset's masker (owlv2-sam for gpu), else clipseg
    mask_segmenter: str | None = None  # owlv2-sam's SAM (role "masker:segmenter"); None: the preset's, else the default
    lcm_lora: str | None = None
    attention_slicing: bool = False
    cpu_offload: bool = False
    clip: str = "none"  # `preset`: the preset's guard:clip
    dino: str | None = None  # `preset`: the preset's guard:dino
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    preset: str | None = None  # cpu | gpu | offline | auto: the models of unset options (alienstay.runtime.presets)
    group_facet: str = GROUP_FACET  # without clusters, photos are varied by this facet's tag


@dataclass
class EditSummary:
    recipe: Recipe
    photos: pd.DataFrame
    rows: pd.DataFrame
    grid_path: Path


EditOptions = EditSettings  # the name callers used before the stages layer
SeriesResult = EditSummary


def load_guard(clip: str = "none", dino: str | None = None, device: str = "cpu", preset: str | None = None) -> Guard:
    """The guard with the learned models asked for; 'none' leaves that metric recorded as missing."""
    encoder = None
    clip, dino = (preset_model(preset, f"guard:{name}") if value == "preset" else value
                  for name, value in (("clip", clip), ("dino", dino)))  # fmt: skip
    if clip and clip != "none":
        from alienstay.encoders import encoder_entry, load_encoder

        encoder = load_encoder(clip, device=device, dtype="float32")  # the guard's thresholds were set in fp32
    dino_model = dino_processor = None
    if dino:
        from transformers import AutoImageProcessor, AutoModel

        from alienstay.runtime.models import resolve

        resolved = resolve(dino)
        dino_processor = AutoImageProcessor.from_pretrained(resolved.path)
        dino_model = AutoModel.from_pretrained(resolved.path).eval().to(device)
    # The encoder registry says whether an encoder's text direction may decide a verdict.
    direction_decides = encoder is None or encoder_entry(encoder).direction_decides
    if not direction_decides:
        log.warning("--clip %s: this encoder's CLIP direction is recorded but does not decide verdicts.", clip)
    return Guard(encoder=encoder, dino_model=dino_model, dino_processor=dino_processor, direction_decides=direction_decides)


def edit_workspace(ws: Workspace, options: EditSettings, on_edit: Callable[[], None] = lambda: None,
                   on_start: Callable[[int], None] = lambda total: None) -> EditSummary:
    """Run one recipe's series on the workspace: edits/, edits.parquet, report/edits_<recipe>.png."""
    from alienstay.editing.methods import Speed, load_editor
    from alienstay.editing.recipes import load_recipes

    recipe = load_recipes(options.recipes_path).get(options.recipe)
    # --method, else the preset's editor (gpu: qwen-image-edit), else the recipe's own; the recipe must allow it.
    method = options.method or preset_editor(options.preset) or recipe.method
    recipe.check_method(method)
    photos = photos_for_workspace(ws, options.images, options.group_facet)
    device, dtype = edit_placement(options.device, options.dtype)
    speed = Speed(lcm_lora=options.lcm_lora, attention_slicing=options.attention_slicing, cpu_offload=options.cpu_offload,
                  device=device, dtype=dtype)  # fmt: skip
    model = options.model or preset_model(options.preset, f"edit:{method}")
    editor = load_editor(method, recipe, model=model, controlnet=options.controlnet, control=options.control, speed=speed)
    guard = load_guard(options.clip, options.dino, device, options.preset)
    masker, mask_models = choose_masker(options.masker, options.preset,
                                        {"masker": options.mask_model, "masker:segmenter": options.mask_segmenter})  # fmt: skip
    mask_for = make_mask_for(recipe, method, options.mask, masker=masker, models=mask_models, device=device)
    extra = {"control": options.control} if options.control else {}
    extra.update(mask_identity(recipe, method, options.mask, masker=masker, models=mask_models))
    lcm = options.lcm_lora is not None and editor.is_diffusion
    settings = SeriesSettings(
        method=method, seed=options.seed, size=options.size,
        steps=options.steps if options.steps is not None or not lcm else LCM_STEPS,
        guidance_scale=options.guidance if options.guidance is not None or not lcm else LCM_GUIDANCE,
        image_guidance_scale=options.image_guidance, strength=options.strength, extra=extra,
    )
    on_start(len(photos) * len(recipe.values))
    rows = run_series(ws, recipe, photos, editor, settings, guard, mask_for, on_edit)
    if rows.empty:
        raise ValueError(f"no photo of the series could be edited (see the warnings above); check {ws.catalog_path}.")
    grid = draw_grid(rows, recipe, photos, ws.report_dir / f"edits_{recipe.name}.png")
    ws.log_run("edit", recipe=recipe.name, method=method, model_id=editor.model_id, seed=options.seed,
               steps=options.steps, size=options.size, images=len(photos), clip=options.clip, dino=options.dino)
    return EditSummary(recipe=recipe, photos=photos, rows=rows, grid_path=grid)


def run(ws: Workspace, settings: EditSettings) -> EditSummary:
    """The stage entry point: one recipe's series on the workspace."""
    return edit_workspace(ws, settings)
