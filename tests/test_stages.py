"""Every stage has one shape, and the workspace lock keeps two runs from losing each other's rows."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from alienstay.stages import STAGES
from alienstay.workspace.layout import Workspace, WorkspaceError
from alienstay.workspace.locking import WorkspaceBusy

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_stage_is_run_of_workspace_and_settings_returning_a_summary(name: str) -> None:
    module = importlib.import_module(STAGES[name])
    run = module.run
    parameters = list(inspect.signature(run).parameters.values())
    assert [p.name for p in parameters[:2]] == ["ws", "settings"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[2:])  # only progress hooks
    hints = inspect.get_annotations(run, eval_str=True)
    assert hints["ws"] is Workspace
    assert dataclasses.is_dataclass(hints["settings"]) and hints["settings"].__name__.endswith("Settings")
    assert dataclasses.is_dataclass(hints["return"]) and hints["return"].__name__.endswith("Summary")


def test_cli_and_demo_call_stages_not_each_other() -> None:
    cli = "".join(path.read_text() for path in (REPO / "src" / "alienstay" / "cli").glob("*.py"))
    demo = (REPO / "src" / "alienstay" / "stages" / "demo.py").read_text()
    assert "folder_source" not in cli and "merge_into" not in cli  # ingest logic lives in its stage
    assert "from alienstay.cli.commands" not in demo and "typer" not in demo
    notebook = (REPO / "notebooks" / "alienstay.ipynb").read_text()
    assert "alienstay.stages" in notebook and "subprocess" not in notebook
    assert "CLASSICAL" not in notebook  # the edit fallback is stages.edit.run_or_fallback, shared with the demo


# ---- the lock ---------------------------------------------------------------------------
def _append_rows(root: str, label: str, rows: int, started) -> None:
    """A read-modify-write of edits.parquet, slow enough that two unlocked ones would collide."""
    import time

    ws = Workspace(Path(root))
    started.wait()
    with ws.lock(f"edit {label}"):
        before = ws.read_edits()
        time.sleep(0.3)  # widens the window a lost update needs; asserts nothing about time
        new = pd.DataFrame({"edit_id": [f"{label}-{i}" for i in range(rows)], "recipe": label})
        ws.write_edits(new if before is None else pd.concat([before, new], ignore_index=True))


def test_two_processes_on_one_workspace_keep_every_row_of_both(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    context = multiprocessing.get_context("spawn")
    started = context.Event()
    runs = [context.Process(target=_append_rows, args=(str(ws.root), label, n, started))
            for label, n in (("time_of_day", 24), ("lights", 16))]  # fmt: skip
    for process in runs:
        process.start()
    started.set()
    for process in runs:
        process.join(120)
        assert process.exitcode == 0
    edits = ws.read_edits()
    assert len(edits) == 40 and edits["edit_id"].is_unique
    assert edits["recipe"].value_counts().to_dict() == {"time_of_day": 24, "lights": 16}


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from alienstay.workspace.layout import Workspace
    with Workspace(Path(sys.argv[1])).lock("edit"):
        print("held", flush=True)
        time.sleep(600)
    """
)


def _holder(root: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "--recipe", "lights"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_busy_workspace_names_the_process_that_holds_it(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    holder = _holder(ws.root)
    try:
        with pytest.raises(WorkspaceBusy) as busy:
            with ws.lock("tag", timeout=0):
                pass
    finally:
        holder.kill()
        holder.wait()
    message = str(busy.value)
    assert f"pid {holder.pid}" in message and "--recipe lights" in message and "since 20" in message
    assert isinstance(busy.value, WorkspaceError)  # the console script prints it without a traceback


def test_a_lock_left_by_a_killed_process_is_taken_over_and_said(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    holder = _holder(ws.root)
    holder.kill()  # SIGKILL: no chance to release or clean up
    holder.wait()
    said: list[str] = []
    from alienstay.workspace.locking import hold

    with hold(ws.lock_path, "tag", timeout=0, say=said.append):
        assert f"pid {os.getpid()}" not in " ".join(said)
    assert len(said) == 1 and f"pid {holder.pid}" in said[0] and "no longer running" in said[0]
    with hold(ws.lock_path, "tag", timeout=0, say=said.append):  # released cleanly: nothing to take over
        pass
    assert len(said) == 1


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    with ws.lock("demo"):
        with ws.lock("edit", timeout=0):
            ws.write_edits(pd.DataFrame({"edit_id": ["a"]}))
    assert ws.lock_path.read_text() == ""  # released: no holder recorded


def test_two_classical_edit_commands_at_once_keep_both_series(samples_dir: Path, tmp_path: Path) -> None:
    """The reproduction of issue 16.1: before the lock, the lights rows were lost."""
    from alienstay.stages import ingest_folder, preprocess

    ws = Workspace(tmp_path / "ws").ensure()
    ingest_folder.run(ws, ingest_folder.IngestFolderSettings(samples_dir))
    preprocess.run(ws, show_progress=False)
    commands = [
        [sys.executable, "-m", "alienstay.cli.commands", "edit", "--recipe", recipe, "--method", "classical",
         "--images", "5", "--size", "64", "--workspace", str(ws.root)]
        for recipe in ("time_of_day", "lights")
    ]  # fmt: skip
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    edits = ws.read_edits()
    counts = edits["recipe"].value_counts().to_dict()
    assert counts["time_of_day"] == 5 * 3 and counts["lights"] > 0
    assert edits["edit_id"].is_unique


def test_one_of_each_entropy_and_persona_list() -> None:
    import numpy as np

    from alienstay.editing import recipes
    from alienstay.notes import analysis
    from alienstay.notes import dataset as stats
    from alienstay.vocabulary import words as vocabulary

    assert recipes.PERSONA_IDS is vocabulary.PERSONA_IDS
    assert not hasattr(analysis, "normalised_entropy") or analysis.normalised_entropy is stats.normalised_entropy
    # the facet spread is the same entropy over all k words, 0 instead of NaN where undefined
    assert analysis.facet_spread(np.array([3, 1]), 4) == pytest.approx(stats.normalised_entropy([3, 1, 0, 0]))
    assert analysis.facet_spread(np.array([0, 0]), 2) == 0.0 and np.isnan(stats.normalised_entropy([0, 0]))


CONFTEST_PROBE = '''
def test_needs_photos(samples_dir):
    assert samples_dir.is_dir()
'''


@pytest.mark.parametrize("ci, outcome", [("true", "error"), ("", "skipped")])
def test_missing_samples_fail_on_ci_and_skip_locally(tmp_path: Path, ci: str, outcome: str) -> None:
    """Issue 16.4: with CI set, a missing ../shared samples folder is an error naming it."""
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (probe / "test_probe.py").write_text(CONFTEST_PROBE)
    missing = tmp_path / "no-such-samples"
    env = {**os.environ, "CI": ci, "ALIENSTAY_SAMPLES": str(missing)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(probe)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    assert f"1 {outcome}" in result.stdout, result.stdout
    assert str(missing) in result.stdout  # the message names the folder
    assert (result.returncode != 0) == (outcome == "error")


def test_dependency_bounds_match_what_the_code_uses() -> None:
    """Issue 16.11: the encoder reads `.pooler_output` of get_*_features and passes `dtype=`."""
    import tomllib

    import transformers

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    bound = next(d for d in project["dependencies"] if d.startswith("transformers"))
    assert bound == "transformers>=5.0"
    assert int(transformers.__version__.split(".")[0]) >= 5
    hf = (REPO / "src" / "alienstay" / "encoders" / "hf.py").read_text()
    assert ".pooler_output" in hf and "from_pretrained(resolved.path, dtype=" in hf
    # int8 is torch's dynamic quantisation: its extra installs nothing else
    assert project["optional-dependencies"]["int8"] == []
    assert "quantize_dynamic" in hf and "onnx" not in hf
