"""The demo's offline behaviour and the report's assembly from a workspace alone."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.notes.report import build_report
from alienstay.workspace.layout import Workspace, write_json

runner = CliRunner()


def test_demo_without_input_offline_stops_at_once_and_says_how_to_use_a_folder(tmp_path: Path) -> None:
    start = time.monotonic()
    # Port 9 on loopback refuses at once: the same answer an offline machine gives.
    result = runner.invoke(
        app, ["demo", "--metadata", "http://127.0.0.1:9/dataset.tar.gz", "--workspace", str(tmp_path / "ws")]
    )
    assert result.exit_code == 2
    assert "make demo INPUT=" in result.output
    assert "127.0.0.1:9" in result.output
    assert time.monotonic() - start < 30  # "at once": no retry loop against an unreachable host
    assert "Traceback" not in result.output


def test_report_names_missing_stages_and_their_commands(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    text = build_report(ws).read_text()
    assert "alienstay stats --workspace" in text
    assert f"alienstay tag --workspace {ws.root} && alienstay analyse --workspace {ws.root}" in text  # each takes it
    assert "alienstay edit --recipe" in text


def test_report_stitches_notes_and_flags_edits(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    ws.report_dir.mkdir(parents=True)
    (ws.report_dir / "dataset.md").write_text("# The dataset\n\n## Counts\n\n8 photos\n")
    pd.DataFrame(
        {
            "edit_id": ["e1", "e2"],
            "image_id": ["a.jpg", "a.jpg"],
            "recipe": ["time_of_day", "time_of_day"],
            "value": ["dusk", "night"],
            "method": ["classical", "classical"],
            "verdict": ["faithful", "too_strong"],
            "verdict_reason": ["", "structure 0.31 < 0.55"],
        }
    ).to_parquet(ws.edits_path)
    write_json({"fallbacks": ["edit time_of_day: classical grade"], "skipped": []}, ws.report_dir / "demo.json")
    text = build_report(ws).read_text()
    assert text.count("The dataset") == 1  # the note's own title gives way to the section's
    assert "### Counts" in text  # the note's headings sit one level down
    assert "NOT diffusion" in text and "classical grade" in text
    assert "structure 0.31 < 0.55" in text  # a flagged edit is listed with its reason
    assert "offline tagger" not in text  # nothing was tagged: no tagger is named as a fallback


def test_console_script_reports_a_missing_stage_input_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "alienstay.cli.commands", "stats", "--workspace", str(tmp_path / "empty")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "alienstay ingest folder DIR" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
