"""Stage `stats`: the dataset note (report/dataset.md and its figures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alienstay.workspace.layout import Workspace


@dataclass(frozen=True)
class StatsSettings:
    reference: Path | None = None  # real per-chain counts TSV; None: the packaged copy


@dataclass(frozen=True)
class StatsSummary:
    path: Path
    figures: list[Path]
    balance: pd.DataFrame


def run(ws: Workspace, settings: StatsSettings = StatsSettings()) -> StatsSummary:
    from alienstay.notes.dataset import build_note

    ws.check_tables("catalog", "metadata")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("stats"):
        note = build_note(ws, settings.reference)
    return StatsSummary(note.path, list(note.figures), note.balance)
