"""Stage `persona`: a portrait of a typical alien guest (prompt and seed saved beside it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import Workspace

DEFAULT_PERSONA_MODEL = "sd15"  # the text-to-image entry (persona/text_to_image.py): its default weights


@dataclass(frozen=True)
class PersonaSettings:
    model: str = DEFAULT_PERSONA_MODEL  # an entry name, NAME:MODEL, or an SD 1.5 hub id / local folder
    seed: int = 0
    steps: int = 25
    size: int = 512
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    preset: str | None = None  # with the default model: the preset's text-to-image model


@dataclass(frozen=True)
class PersonaSummary:
    path: Path  # the PNG; its prompt and seed are in the .json beside it


def persona_model(settings: PersonaSettings) -> str:
    """The model asked for; left at the default with a preset, the preset's text-to-image model."""
    from alienstay.runtime.presets import preset_model

    if settings.preset and settings.model == DEFAULT_PERSONA_MODEL:
        return preset_model(settings.preset, "text-to-image") or settings.model
    return settings.model


def run(ws: Workspace, settings: PersonaSettings = PersonaSettings()) -> PersonaSummary:
    """Raises models.ModelUnavailable when the weights cannot be had."""
    from alienstay.persona import render_portrait

    with ws.ensure().lock("persona"):
        target = render_portrait(ws, model=persona_model(settings), seed=settings.seed, steps=settings.steps,
                                 size=settings.size, device=settings.device, dtype=settings.dtype)  # fmt: skip
    ws.log_run("persona", model=settings.model, seed=settings.seed, steps=settings.steps, size=settings.size)
    return PersonaSummary(target)
