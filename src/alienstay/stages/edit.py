"""Stage `edit`: restyle a few varied photos, one parameter at a time, and guard each edit.

`run` is the stage; `run_or_fallback` is what the demo and the notebook run for each of their
recipes: without diffusion weights, the recipe's classical grade (labelled NOT diffusion),
or a recorded skip when the recipe has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from alienstay.editing.series import EditOptions
from alienstay.workspace.layout import Workspace

TOO_FEW_PHOTOS = "edit: only"  # how a skip for too few usable photos starts (no recipe can run)

__all__ = ["TOO_FEW_PHOTOS", "EditSettings", "EditSummary", "run", "run_or_fallback", "plan", "first_line"]


@dataclass(frozen=True)
class EditSettings(EditOptions):
    """Every option of `alienstay edit` (the series' own options; None: the recipe's default)."""


@dataclass
class EditSummary:
    result: Any = None  # editing.series.SeriesResult; None when skipped
    fallback: str = ""  # why the classical grade ran instead of the recipe's method
    skipped: str = ""  # why nothing ran

    @property
    def rows(self) -> pd.DataFrame:
        return self.result.rows

    @property
    def grid_path(self) -> Path:
        return self.result.grid_path

    @property
    def verdicts(self) -> dict[str, int]:
        return self.result.rows["verdict"].value_counts().to_dict()


def plan(ws: Workspace, images: int) -> pd.DataFrame:
    """The varied photos a series would edit, with why each was picked (`--list`)."""
    from alienstay.editing import series

    return series.photos_for_workspace(ws, images)


def run(
    ws: Workspace, settings: EditSettings = EditSettings(), *,
    on_start: Callable[[int], None] = lambda total: None, on_edit: Callable[[], None] = lambda: None,
) -> EditSummary:  # fmt: skip
    """Raises ModelUnavailable, RecipeError, WorkspaceError or ValueError, each saying what to do."""
    from alienstay.editing import series

    ws.check_tables("catalog", "tags", "clusters", "edits")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("edit"):
        return EditSummary(series.edit_workspace(ws, settings, on_edit=on_edit, on_start=on_start))


def first_line(error: BaseException) -> str:
    """The error's gist for a one-line note (the full text was already printed where it arose)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(": it is not in the hub cache")[0]


def run_or_fallback(ws: Workspace, settings: EditSettings) -> EditSummary:
    """The recipe's own method; without its weights, its classical grade; else a recorded skip.

    Only the "weights unavailable" error falls back: any other failure is raised.
    """
    from alienstay.editing import series
    from alienstay.editing.recipes import CLASSICAL, load_recipes
    from alienstay.runtime.models import WeightsUnavailable

    usable = len(series.usable_photos(ws))
    count = min(settings.images, usable)
    if count < series.MIN_PHOTOS:
        return EditSummary(skipped=f"{TOO_FEW_PHOTOS} {usable} usable photos, a series needs {series.MIN_PHOTOS}")
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
