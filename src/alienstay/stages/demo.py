"""`alienstay demo`: every stage, end to end, on a photo folder or a Hotels-50K sample.

The demo runs the stages a user would run, in the order of the data flow, through the same
`stages.<name>.run` the commands call. The two stages that need diffusion weights (restyles,
the alien portrait) are the only ones allowed to fall short: where the weights cannot be had,
a restyle falls back to the recipe's `classical` grade (labelled NOT diffusion everywhere it
appears) or is skipped (`stages.edit.run_or_fallback`, shared with the notebook), and the
reason is printed and written into the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from alienstay.stages.edit import first_line
from alienstay.workspace.layout import Workspace, write_json

# The dataset's metadata archive in its public repository (Git LFS may redirect).
HOTELS50K_METADATA_URL = "https://github.com/GWUvision/Hotels-50K/raw/master/input/dataset.tar.gz"
DEMO_RECIPES = ("time_of_day", "lights", "bed_decoration", "alien_style")

__all__ = ["DEMO_RECIPES", "DemoLog", "DemoSettings", "first_line", "run", "run_edits", "run_persona"]


@dataclass(frozen=True)
class DemoSettings:
    input: Path | None = None  # a photo folder; None: a Hotels-50K sample (needs internet)
    metadata: str = ""  # Hotels-50K metadata archive, folder or URL ("" : the public archive)
    hotels: int = 20
    per_hotel: int = 5
    model: str = "auto"  # the tagger, also the edit guard's CLIP direction
    images: int = 8  # photos in each restyle series
    preset: str | None = None  # cpu | gpu | offline | auto: the models of the tag, edit and persona stages
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps, for every model-loading stage


@dataclass
class DemoLog:
    """What ran, what fell back and what was skipped, for the report and the console."""

    stages: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"stages": self.stages, "fallbacks": self.fallbacks, "skipped": self.skipped}


def ingest(ws: Workspace, settings: DemoSettings, console: Console) -> None:
    from alienstay.sources.hotels50k import MetadataError
    from alienstay.stages import ingest_folder, ingest_hotels50k

    if settings.input is not None:
        found = ingest_folder.run(ws, ingest_folder.IngestFolderSettings(settings.input))
        console.print(f"catalogued {found.found} files from {found.folder} ({found.new} new) -> {found.catalog_path}")
        return
    source = settings.metadata or HOTELS50K_METADATA_URL
    console.print(f"no --input: sampling Hotels-50K from {source}")
    sample = ingest_hotels50k.IngestHotels50kSettings(metadata=source, hotels=settings.hotels, per_hotel=settings.per_hotel)
    try:
        ingest_hotels50k.run(ws, sample)
    except MetadataError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise MetadataError(
            f"could not reach the Hotels-50K metadata at {source}. Offline, run the demo on a photo "
            "folder instead: `make demo INPUT=../shared/samples/unsplash` (or `alienstay demo --input DIR`)."
        ) from error


def analysis_stages(ws: Workspace, settings: DemoSettings, console: Console, log: DemoLog) -> None:
    from alienstay.stages import (
        analyse,
        cluster,
        index,
        preprocess,
        retrieval,
        stats,
        tag,
    )

    steps = [
        ("preprocess", lambda: preprocess.run(ws)),
        ("stats", lambda: stats.run(ws)),
        ("tag", lambda: tag.run(ws, tag.TagSettings(model=settings.model, preset=settings.preset, device=settings.device))),
        ("analyse", lambda: analyse.run(ws)),
        ("cluster", lambda: cluster.run(ws)),
        ("index", lambda: index.run(ws)),
        ("retrieval", lambda: retrieval.run(ws)),
    ]
    for name, step in steps:
        console.rule(f"[bold]{name}")
        summary = step()
        console.print(f"{name}: {summary_line(summary)}")
        log.stages.append(name)


def summary_line(summary: object) -> str:
    """A stage summary's paths and tables: enough to see what it did and where it went."""
    import pandas as pd

    parts = [f"{k} -> {v}" for k, v in vars(summary).items() if isinstance(v, Path)]
    parts += [f"\n{v.to_string(index=False)}" for v in vars(summary).values() if isinstance(v, pd.DataFrame)]
    return "; ".join(parts) if parts else "done"


def run_edits(ws: Workspace, model: str, images: int, console: Console, log: DemoLog, *,
              preset: str | None = None, device: str = "auto") -> None:  # fmt: skip
    """Each demo recipe with the preset's editor (gpu: qwen-image-edit) or its own method; without
    diffusion weights, its classical grade (or a recorded skip where the recipe has none)."""
    from alienstay.editing.recipes import load_recipes
    from alienstay.runtime.presets import preset_editor
    from alienstay.stages import edit

    editor = preset_editor(preset)
    for name in DEMO_RECIPES:
        if editor and editor not in load_recipes().get(name).methods:  # nothing to load: say so, try no weights
            log.skipped.append(f"edit {name}: the {preset} preset edits with {editor}, which this recipe does not allow")
            console.print(f"[yellow]skipped[/] {log.skipped[-1]}")
            continue
        summary = edit.run_or_fallback(ws, edit.EditSettings(recipe=name, images=images, clip=model, preset=preset, device=device))
        if summary.skipped:
            log.skipped.append(summary.skipped)
            console.print(f"[yellow]skipped[/] {summary.skipped}")
            if summary.skipped.startswith(edit.TOO_FEW_PHOTOS):
                return  # too few photos: no recipe can run
            continue
        if summary.fallback:
            log.fallbacks.append(summary.fallback)
            console.print(f"[bold yellow]{name}: diffusion weights unavailable, ran the CLASSICAL grade (NOT diffusion).[/]")
        log.stages.append(f"edit {name}")
        console.print(f"edit {name}: {len(summary.rows)} edits, verdicts {summary.verdicts} -> {summary.grid_path}")


def run_persona(ws: Workspace, console: Console, log: DemoLog, *, preset: str | None = None, device: str = "auto") -> None:
    from alienstay.runtime.models import ModelUnavailable
    from alienstay.runtime.presets import model_for
    from alienstay.stages import persona

    if preset is not None and model_for(preset, "text-to-image") is None:  # offline: no model to try
        log.skipped.append(f"persona: the {preset} preset has no text-to-image model")
        console.print(f"[yellow]skipped[/] the alien portrait: the {preset} preset has no text-to-image model")
        return
    try:
        summary = persona.run(ws, persona.PersonaSettings(preset=preset, device=device))
    except ModelUnavailable as error:
        log.skipped.append(f"persona: needs a text-to-image model ({first_line(error)})")
        console.print(f"[yellow]skipped[/] the alien portrait: {first_line(error)}")
        return
    log.stages.append("persona")
    console.print(f"alien portrait -> {summary.path}")


def run(ws: Workspace, settings: DemoSettings = DemoSettings(), *, console: Console | None = None) -> DemoLog:
    """Ingest, then the analysis stages, then restyles, the portrait and the report."""
    from alienstay.stages import report
    from alienstay.stages.tag import tagger_model
    from alienstay.tagging.settings import TagSettings

    console = console or Console(stderr=True)
    log = DemoLog()
    ingest(ws.ensure(), settings, console)
    log.stages.append("ingest")
    analysis_stages(ws, settings, console, log)
    console.rule("[bold]edit")
    # the edit guard's CLIP direction uses the tagger the tag stage used (offline preset: the offline one)
    guard = tagger_model(TagSettings(model=settings.model, preset=settings.preset))
    run_edits(ws, guard, settings.images, console, log, preset=settings.preset, device=settings.device)
    console.rule("[bold]persona")
    run_persona(ws, console, log, preset=settings.preset, device=settings.device)
    write_json(log.as_dict(), ws.report_dir / "demo.json")
    console.print(f"report -> {report.run(ws).path}")
    return log
