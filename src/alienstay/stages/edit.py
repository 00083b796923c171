"""Stage `edit`: restyle a few varied photos, one parameter at a time, and guard each edit.

One recipe's values are applied to a few varied photos with one fixed seed; ``edits/``, one row an
edit in ``edits.parquet`` and ``report/edits_<recipe>.png`` are written. The parts live in
``alienstay.editing``: which photos (``selection``), an edit's key (``identity``), masks (``masks``),
the loop (``runner``), the figure (``grid``), the guard (``faithfulness``); methods come from the
editor registry (``methods``), so nothing here branches on a method's name.

`run_or_fallback` is what the demo and the notebook run for each of their recipes: without
diffusion weights, the recipe's classical grade (labelled NOT diffusion), or a recorded skip
when the recipe has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from alienstay.editing.grid import draw_grid
from alienstay.editing.identity import SeriesSettings
from alienstay.editing.masks import choose_masker, make_mask_for, mask_identity
from alienstay.editing.recipes import CLASSICAL, Recipe, load_recipes
from alienstay.editing.runner import run_series
from alienstay.editing.selection import (
    GROUP_FACET,
    MIN_PHOTOS,
    photos_for_workspace,
    usable_photos,
)
from alienstay.runtime.placement import edit_placement
from alienstay.runtime.presets import preset_editor, preset_model
from alienstay.workspace.layout import Workspace

TOO_FEW_PHOTOS = "edit: only"  # how a skip for too few usable photos starts (no recipe can run)
LCM_STEPS, LCM_GUIDANCE = 4, 1.0  # what LCM-LoRA is distilled for: a few steps, no guidance branches

__all__ = ["TOO_FEW_PHOTOS", "EditSettings", "EditSummary", "run", "run_or_fallback", "plan", "first_line"]


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
    recipe: Recipe | None = None  # None when skipped
    photos: pd.DataFrame | None = None
    rows: pd.DataFrame | None = None
    grid_path: Path | None = None
    fallback: str = ""  # why the classical grade ran instead of the recipe's method
    skipped: str = ""  # why nothing ran

    @property
    def verdicts(self) -> dict[str, int]:
        return self.rows["verdict"].value_counts().to_dict()


def plan(ws: Workspace, images: int) -> pd.DataFrame:
    """The varied photos a series would edit, with why each was picked (`--list`)."""
    return photos_for_workspace(ws, images)


def run(
    ws: Workspace, settings: EditSettings = EditSettings(), *,
    on_start: Callable[[int], None] = lambda total: None, on_edit: Callable[[], None] = lambda: None,
) -> EditSummary:  # fmt: skip
    """Raises ModelUnavailable, RecipeError, WorkspaceError or ValueError, each saying what to do."""
    ws.check_tables("catalog", "tags", "clusters", "edits")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("edit"):
        return edit_series(ws, settings, on_edit=on_edit, on_start=on_start)


def edit_series(ws: Workspace, options: EditSettings, on_edit: Callable[[], None] = lambda: None,
                on_start: Callable[[int], None] = lambda total: None) -> EditSummary:
    """One recipe's series on the workspace: edits/, edits.parquet, report/edits_<recipe>.png."""
    from alienstay.editing.faithfulness import load_guard
    from alienstay.editing.methods import Speed, load_editor

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


def first_line(error: BaseException) -> str:
    """The error's gist for a one-line note (the full text was already printed where it arose)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(": it is not in the hub cache")[0]


def run_or_fallback(ws: Workspace, settings: EditSettings) -> EditSummary:
    """The recipe's own method; without its weights, its classical grade; else a recorded skip.

    Only the "weights unavailable" error falls back: any other failure is raised.
    """
    from alienstay.runtime.models import WeightsUnavailable

    usable = len(usable_photos(ws))
    count = min(settings.images, usable)
    if count < MIN_PHOTOS:
        return EditSummary(skipped=f"{TOO_FEW_PHOTOS} {usable} usable photos, a series needs {MIN_PHOTOS}")
    settings = replace(settings, images=count)
    try:
        return run(ws, settings)
    except WeightsUnavailable as error:  # a bad folder or a crash is raised, never hidden by a fallback
        recipe = load_recipes(settings.recipes_path).get(settings.recipe)
        if CLASSICAL not in recipe.methods:
            return EditSummary(skipped=f"edit {settings.recipe}: needs diffusion weights ({first_line(error)})")
        summary = run(ws, replace(settings, method=CLASSICAL))
        summary.fallback = f"edit {settings.recipe}: classical grade, NOT diffusion ({first_line(error)})"
        return summary
