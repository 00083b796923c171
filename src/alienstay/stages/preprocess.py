"""Stage `preprocess`: decode-check, orient, convert to RGB, size-check and dedupe new catalog rows."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alienstay.workspace.layout import Workspace


@dataclass(frozen=True)
class PreprocessSettings:
    min_side: int = 128  # reject images whose shorter side is below this
    max_side: int = 640  # longer side of the prepared copy
    near_threshold: int = 4  # perceptual-hash Hamming distance for near duplicates (-1: off)
    workers: int = 2  # decoding threads


@dataclass(frozen=True)
class PreprocessSummary:
    table: pd.DataFrame  # kept and dropped, and why: one row a (status, reason)


def run(ws: Workspace, settings: PreprocessSettings = PreprocessSettings(), *, show_progress: bool = True) -> PreprocessSummary:
    from alienstay import preprocess as stage

    decide = stage.Settings(min_side=settings.min_side, max_side=settings.max_side, near_threshold=settings.near_threshold)
    ws.check_tables("catalog")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("preprocess"):
        table = stage.run(ws, decide, workers=settings.workers, show_progress=show_progress)
    return PreprocessSummary(table)
