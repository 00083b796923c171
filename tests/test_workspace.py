from pathlib import Path

import pandas as pd
import pytest

from alienstay.sources.folder import catalog_folder, merge_into
from alienstay.workspace.layout import (
    Workspace,
    WorkspaceError,
    atomic_path,
    write_parquet,
)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert pd.read_parquet(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_missing_input_names_the_stage_that_makes_it(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="alienstay tag"):
        Workspace(tmp_path).read_tags()


def test_folder_ingest_ids_and_duplicates_stay_rows(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    (root / "x.jpg").write_bytes(b"same")
    (root / "a" / "b" / "y.JPG").write_bytes(b"same")
    (root / "notes.txt").write_text("not a photo")
    catalog = catalog_folder(root)
    assert sorted(catalog["image_id"]) == ["a/b/y.JPG", "x.jpg"]
    assert catalog["sha256"].nunique() == 1  # identical content, still two rows
    again = merge_into(catalog, catalog_folder(root))
    assert len(again) == 2


def test_paths_stored_from_a_relative_workspace_work_from_anywhere(samples_dir, tmp_path: Path, monkeypatch) -> None:
    """A workspace named relatively on the command line still serves its photos elsewhere."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from alienstay.cli.commands import app
    from alienstay.web.app import create_app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "folder", str(samples_dir), "--workspace", "ws"]).exit_code == 0
    assert runner.invoke(app, ["preprocess", "--workspace", "ws"]).exit_code == 0
    on_disk = pd.read_parquet(tmp_path / "ws" / "catalog.parquet")
    assert all(not Path(p).is_absolute() for p in on_disk["prepared_path"].dropna())  # movable
    assert all(Path(p).is_absolute() for p in on_disk["path"])  # the photo folder stays where it is
    catalog = Workspace(tmp_path / "ws").read_catalog()
    assert all(Path(p).is_file() for p in catalog["prepared_path"].dropna())
    monkeypatch.chdir(samples_dir)  # the server runs from another directory
    client = TestClient(create_app(tmp_path / "ws"))
    response = client.get(f"/media/photo/{catalog['image_id'].iloc[0]}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("image/")


def test_a_moved_workspace_keeps_working(samples_dir, tmp_path: Path) -> None:
    import shutil

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from alienstay.cli.commands import app
    from alienstay.web.app import create_app

    runner = CliRunner()
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "moved"
    assert runner.invoke(app, ["ingest", "folder", str(samples_dir), "-w", str(first)]).exit_code == 0
    assert runner.invoke(app, ["preprocess", "-w", str(first)]).exit_code == 0
    shutil.move(first, moved)
    catalog = Workspace(moved).read_catalog()
    assert all(Path(p).is_file() and Path(p).is_relative_to(moved) for p in catalog["prepared_path"])
    result = runner.invoke(app, ["edit", "--recipe", "lights", "--images", "5", "--method", "classical", "-w", str(moved)])
    assert result.exit_code == 0, result.output
    edits = Workspace(moved).read_edits()
    assert all(Path(p).is_relative_to(moved) and Path(p).is_file() for p in edits["output_path"])
    edit_id = edits["edit_id"].iloc[0]
    assert TestClient(create_app(moved)).get(f"/media/edit/{edit_id}").status_code == 200


# ---- damaged tables (issue 16.8) ---------------------------------------------------------
def _damaged_catalog(samples_dir, tmp_path):
    from alienstay.stages import ingest_folder

    ws = Workspace(tmp_path / "ws").ensure()
    ingest_folder.run(ws, ingest_folder.IngestFolderSettings(samples_dir))
    data = ws.catalog_path.read_bytes()
    ws.catalog_path.write_bytes(data[: len(data) // 2])  # cut to half its bytes
    return ws


def test_a_damaged_catalog_is_named_by_every_stage_with_how_to_restore_it(samples_dir, tmp_path):
    from typer.testing import CliRunner

    from alienstay.cli.commands import app
    from alienstay.workspace.layout import DamagedTable

    ws = _damaged_catalog(samples_dir, tmp_path)
    runner = CliRunner()
    commands = [["tag", "--model", "offline"], ["preprocess"], ["cluster"], ["stats"], ["analyse"],
                ["ingest", "folder", str(samples_dir)], ["edit", "--method", "classical"], ["serve", "--port", "1"]]
    for command in commands:
        result = runner.invoke(app, [*command, "--workspace", str(ws.root)])
        said = result.output + (str(result.exception) if isinstance(result.exception, DamagedTable) else "")
        said = "".join(said.split())  # the console wraps long lines
        assert result.exit_code != 0, command
        assert f"{ws.catalog_path}isdamaged" in said, (command, said, result.exception)
        assert f"alienstayingestfolderDIR--workspace{ws.root}" in said, command
        assert "magicbytes" in said or "Parquet" in said  # what is wrong, in a few words


def test_the_console_script_names_a_damaged_table_without_a_traceback(samples_dir, tmp_path):
    import subprocess
    import sys

    ws = _damaged_catalog(samples_dir, tmp_path)
    result = subprocess.run([sys.executable, "-m", "alienstay.cli.commands", "preprocess", "--workspace", str(ws.root)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2
    assert "catalog.parquetisdamaged" in "".join((result.stdout + result.stderr).split())
    assert "Traceback" not in result.stdout + result.stderr


def test_report_names_a_damaged_table_instead_of_not_run_yet(samples_dir, tmp_path):
    from alienstay.stages import report

    ws = _damaged_catalog(samples_dir, tmp_path)
    ws.edits_path.write_bytes(b"not parquet at all")
    text = report.run(ws).path.read_text()
    assert "Damaged tables" in text and f"{ws.catalog_path} is damaged" in text
    assert f"{ws.edits_path} is damaged" in text
    assert "Not run yet: `alienstay stats" not in text  # the dataset section names the damage instead
    assert "Not run yet: `alienstay edit" not in text


def test_require_names_the_stage_that_writes_a_missing_table(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    with pytest.raises(WorkspaceError, match=r"run `alienstay cluster --workspace"):
        ws.require("clusters")
    assert ws.read("clusters", optional=True) is None
    assert ws.read_captions() is None


def test_save_figure_is_atomic_and_closes_the_figure(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alienstay.workspace.layout import save_figure

    figure = plt.figure()
    target = save_figure(figure, tmp_path / "report" / "a.png")
    assert target.read_bytes()[:4] == b"\x89PNG" and not plt.fignum_exists(figure.number)
    broken = plt.figure()
    monkeypatch.setattr(broken, "savefig", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_figure(broken, tmp_path / "report" / "a.png")
    assert target.read_bytes()[:4] == b"\x89PNG"  # the old figure stays whole
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.png"]  # no temporary left behind


def test_read_catalog_reads_only_the_rows_and_columns_asked_for(tmp_path):
    """Issue 16.10: the tag and caption readers ask for the usable rows' four columns only."""
    import inspect as _inspect

    from alienstay.tagging import local, ray_engine
    from alienstay.workspace import catalog as cat

    ws = Workspace(tmp_path / "ws").ensure()
    ws.write_catalog(cat.conform(pd.DataFrame({
        "image_id": ["a", "b", "c"], "status": [cat.OK, cat.REJECTED, cat.OK],
        "prepared_path": [str(ws.prepared_dir / "a.png"), "", str(ws.prepared_dir / "c.png")], "hotel_name": "h",
    })))  # fmt: skip
    rows = ws.read_catalog(columns=list(cat.TAG_INPUT_COLUMNS), status=cat.OK)
    assert list(rows.columns) == list(cat.TAG_INPUT_COLUMNS) and rows["image_id"].tolist() == ["a", "c"]
    assert rows["prepared_path"].tolist() == [str(ws.prepared_dir / "a.png"), str(ws.prepared_dir / "c.png")]
    for engine in (local, ray_engine):
        assert "read_catalog(columns=list(cat.TAG_INPUT_COLUMNS), status=cat.OK)" in _inspect.getsource(engine)
