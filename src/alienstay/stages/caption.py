"""Stage `caption`: a caption per usable photo (BLIP, or Florence-2 by its config), resumable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import Workspace

DEFAULT_CAPTION_MODEL = "blip"  # the captioner entry (captioning/captioners.py): its default weights


@dataclass(frozen=True)
class CaptionSettings:
    model: str = DEFAULT_CAPTION_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto: float16/bfloat16 on a GPU, float32 on the CPU
    batch_size: int = 16
    workers: int = 1


@dataclass(frozen=True)
class CaptionSummary:
    written: int  # photos captioned by this run
    path: Path


def run(ws: Workspace, settings: CaptionSettings = CaptionSettings()) -> CaptionSummary:
    """Raises models.ModelUnavailable when the captioner's weights cannot be had."""
    from alienstay.captioning import captioners as captioning

    ws.check_tables("catalog", "captions")  # a damaged input is named before any model loads
    captioner = captioning.load_captioner(settings.model, device=settings.device, dtype=settings.dtype)
    with ws.ensure().lock("caption"):
        written = captioning.run_captioning(ws, captioner, batch_size=settings.batch_size, workers=settings.workers)
    return CaptionSummary(written, ws.captions_path)
