"""Running a series: every value of a recipe on every chosen photo, one row an edit.

Each photo's edits are appended to ``edits.parquet`` as soon as they are done (atomic
rewrite), and an edit already in the table with the same key is not redone but judged again
(the thresholds or the guard's models may have changed), so an interrupted series resumes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from PIL import Image

from alienstay.editing.base import Editor, EditOutput, fit_size, mask_is_empty
from alienstay.editing.faithfulness import Guard, verdict
from alienstay.editing.identity import SeriesSettings, build_request, edit_key
from alienstay.editing.masks import MaskFor, no_mask
from alienstay.editing.recipes import Recipe
from alienstay.runtime.placement import placement_of
from alienstay.workspace.layout import Workspace, atomic_path

EDIT_COLUMNS = [
    "edit_id", "image_id", "recipe", "parameter", "value", "method", "model_id", "seed", "steps",
    "guidance_scale", "image_guidance_scale", "strength", "size", "seconds", "output_path", "source_path",
    "structure_ssim", "edge_ssim", "lpips", "dino_distance", "outside_mask_change", "clip_direction",
    "verdict", "verdict_reason",
    # beyond the agreed columns: what the guard also saw, and whether this was diffusion at all
    "pixel_change", "mask_area", "is_diffusion", "device", "dtype",
    "missing_metrics",  # why a metric the guard was asked for is NaN (a broken LPIPS install, ...)
]

log = logging.getLogger("alienstay")


def read_edits(ws: Workspace) -> pd.DataFrame:
    edits = ws.read_edits()
    return pd.DataFrame(columns=EDIT_COLUMNS) if edits is None else edits


def run_series(
    ws: Workspace,
    recipe: Recipe,
    photos: pd.DataFrame,
    editor: Editor,
    settings: SeriesSettings,
    guard: Guard,
    mask_for: MaskFor = no_mask,
    on_edit: Callable[[], None] = lambda: None,
) -> pd.DataFrame:
    """Every value of ``recipe`` on every photo; returns this series' rows of edits.parquet."""
    table = read_edits(ws)
    done = set(table["edit_id"]) if not table.empty else set()
    series_ids: list[str] = []
    for photo in photos.itertuples():
        try:
            original = fit_size(Image.open(photo.prepared_path), settings.size)
        except (OSError, ValueError) as error:  # one unreadable photo must not stop the series
            log.warning("skipping %s: %s cannot be read (%s); rerun preprocess.", photo.image_id, photo.prepared_path, error)
            continue
        new_rows = []
        for value in recipe.value_names:
            request = build_request(recipe, value, settings)
            key = edit_key(photo.image_id, recipe, editor.method, editor.model_id, request)
            series_ids.append(key)
            output_path = ws.edits_dir / f"{key}.png"
            if key in done and output_path.exists():
                # Same pixels, judged again: the thresholds or the guard's models may have changed.
                previous = table.loc[table["edit_id"] == key].iloc[0]
                new_rows.append(_remeasure(recipe, photo, original, request, guard, mask_for, previous))
                on_edit()
                continue
            new_rows.append(_one_edit(recipe, photo, original, editor, request, guard, mask_for, key, output_path))
            on_edit()
        if new_rows:
            fresh = pd.DataFrame(new_rows, columns=EDIT_COLUMNS)
            table = fresh if table.empty else pd.concat([table[~table["edit_id"].isin(fresh["edit_id"])], fresh], ignore_index=True)
            ws.write_edits(table)  # after every photo: an interruption loses one photo at most
            done |= set(fresh["edit_id"])
    return table[table["edit_id"].isin(series_ids)].reset_index(drop=True)


def _remeasure(recipe, photo, original, request, guard, mask_for, previous: pd.Series) -> dict[str, Any]:
    edited = Image.open(previous["output_path"]).convert("RGB")
    mask = mask_for(photo.image_id, original, request)
    metrics = guard.measure(original, edited, mask=mask, source_text=recipe.source, target_text=request.value.prompt)
    return {**previous.to_dict(), **_judged(metrics, recipe, guard)}


def _judged(metrics, recipe: Recipe, guard: Guard) -> dict[str, Any]:
    decision, reason = verdict(metrics, recipe.thresholds, guard.direction_decides)
    return {
        "structure_ssim": metrics.structure_ssim, "edge_ssim": metrics.edge_ssim, "lpips": metrics.lpips,
        "dino_distance": metrics.dino_distance, "outside_mask_change": metrics.outside_mask_change,
        "clip_direction": metrics.clip_direction, "verdict": decision, "verdict_reason": reason,
        "pixel_change": metrics.pixel_change, "mask_area": metrics.mask_area, "missing_metrics": metrics.missing,
    }


def _one_edit(recipe, photo, original, editor, request, guard, mask_for, key, output_path) -> dict[str, Any]:
    mask = mask_for(photo.image_id, original, request)
    started = time.perf_counter()
    if mask is not None and mask_is_empty(mask):
        # An empty mask allows no change: the editor is not run, and the guard says why (EMPTY_MASK).
        output = EditOutput(original.copy(), mask=mask)
    else:
        output = editor.edit(original, request, mask=mask)
    seconds = time.perf_counter() - started
    edited = output.image.resize(original.size, Image.Resampling.LANCZOS) if output.image.size != original.size else output.image
    with atomic_path(output_path) as tmp:
        edited.save(tmp, format="PNG")
    metrics = guard.measure(original, edited, mask=output.mask, source_text=recipe.source, target_text=request.value.prompt)
    return {
        "edit_id": key, "image_id": photo.image_id, "recipe": recipe.name, "parameter": recipe.parameter,
        "value": request.value.name, "method": editor.method, "model_id": editor.model_id, "seed": request.seed,
        "steps": request.steps if editor.is_diffusion else 0,
        "guidance_scale": _num(request.guidance_scale), "image_guidance_scale": _num(request.image_guidance_scale),
        "strength": _num(request.strength), "size": request.size, "seconds": seconds,
        "output_path": str(output_path), "source_path": str(photo.prepared_path),
        **_judged(metrics, recipe, guard), "is_diffusion": editor.is_diffusion, **placement_of(editor),
    }


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)
