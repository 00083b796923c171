"""Stage `report`: stitch every stage's note into report/REPORT.md, from the workspace alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import Workspace


@dataclass(frozen=True)
class ReportSettings:
    pass


@dataclass(frozen=True)
class ReportSummary:
    path: Path


def run(ws: Workspace, settings: ReportSettings = ReportSettings()) -> ReportSummary:
    from alienstay.notes.report import build_report

    with ws.ensure().lock("report"):
        return ReportSummary(build_report(ws))
