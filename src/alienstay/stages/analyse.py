"""Stage `analyse`: tag frequencies, co-occurrence, informativeness (report/tags.md and figures)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import Workspace


@dataclass(frozen=True)
class AnalyseSettings:
    examples: int = 6  # example photos a frequent tag


@dataclass(frozen=True)
class AnalyseSummary:
    path: Path


def run(ws: Workspace, settings: AnalyseSettings = AnalyseSettings()) -> AnalyseSummary:
    from alienstay.notes.analysis import run_analysis

    ws.check_tables("catalog", "tags")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("analyse"):
        return AnalyseSummary(run_analysis(ws, examples_per_tag=settings.examples))
