"""`alienstay demo`: every stage, end to end, on a photo folder or a Hotels-50K sample.

The demo runs the same commands a user would type, in the order of the data flow. The two
stages that need diffusion weights (restyles, the alien portrait) are the only ones allowed
to fall short: where the weights cannot be had, a restyle falls back to the recipe's
`classical` grade (labelled NOT diffusion everywhere it appears) or is skipped, and the
reason is printed and written into the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from alienstay.workspace import Workspace, write_json

# The dataset's metadata archive in its public repository (Git LFS may redirect).
HOTELS50K_METADATA_URL = "https://github.com/GWUvision/Hotels-50K/raw/master/input/dataset.tar.gz"
DEMO_RECIPES = ("time_of_day", "lights", "bed_decoration", "alien_style")


@dataclass
class DemoLog:
    """What ran, what fell back and what was skipped, for the report and the console."""

    stages: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"stages": self.stages, "fallbacks": self.fallbacks, "skipped": self.skipped}


def first_line(error: BaseException) -> str:
    """The error's gist for a one-line note (the full text was already printed where it arose)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.split(": it is not in the hub cache")[0]


def run_edits(ws: Workspace, model: str, images: int, console: Console, log: DemoLog) -> None:
    """Each demo recipe with its own method; without diffusion weights, its classical grade."""
    from alienstay.editing import series
    from alienstay.editing.recipes import CLASSICAL, load_recipes
    from alienstay.models import ModelUnavailable

    book = load_recipes()
    usable = len(series.usable_photos(ws))
    count = min(images, usable)
    if count < series.MIN_PHOTOS:
        log.skipped.append(f"edit: only {usable} usable photos, a series needs {series.MIN_PHOTOS}")
        return
    for name in DEMO_RECIPES:
        recipe = book.get(name)
        options = series.EditOptions(recipe=name, images=count, clip=model)
        try:
            result = series.edit_workspace(ws, options)
        except ModelUnavailable as error:
            if CLASSICAL not in recipe.methods:
                log.skipped.append(f"edit {name}: needs diffusion weights ({first_line(error)})")
                console.print(f"[yellow]skipped[/] {name}: {first_line(error)}")
                continue
            console.print(
                f"[bold yellow]{name}: diffusion weights unavailable, running the CLASSICAL grade "
                "(NOT diffusion) so the series and its guard can still be shown.[/]"
            )
            log.fallbacks.append(f"edit {name}: classical grade, NOT diffusion ({first_line(error)})")
            result = series.edit_workspace(ws, series.EditOptions(recipe=name, images=count, method=CLASSICAL, clip=model))
        verdicts = result.rows["verdict"].value_counts().to_dict()
        log.stages.append(f"edit {name}")
        console.print(f"edit {name}: {len(result.rows)} edits, verdicts {verdicts} -> {result.grid_path}")


def run_persona(ws: Workspace, console: Console, log: DemoLog) -> None:
    from alienstay.editing.persona import render_portrait
    from alienstay.models import ModelUnavailable

    try:
        target = render_portrait(ws)
    except ModelUnavailable as error:
        log.skipped.append(f"persona: needs a text-to-image model ({first_line(error)})")
        console.print(f"[yellow]skipped[/] the alien portrait: {first_line(error)}")
        return
    log.stages.append("persona")
    console.print(f"alien portrait -> {target}")


def run_demo(
    ws: Workspace,
    ingest: Callable[[], None],
    stages: list[tuple[str, Callable[[], None]]],
    model: str,
    images: int,
    console: Console,
) -> DemoLog:
    """Ingest, then the analysis stages, then restyles, the portrait and the report."""
    log = DemoLog()
    ingest()
    log.stages.append("ingest")
    for name, stage in stages:
        console.rule(f"[bold]{name}")
        stage()
        log.stages.append(name)
    console.rule("[bold]edit")
    run_edits(ws, model, images, console, log)
    console.rule("[bold]persona")
    run_persona(ws, console, log)
    write_json(log.as_dict(), ws.report_dir / "demo.json")
    return log
