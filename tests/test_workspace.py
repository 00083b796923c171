from pathlib import Path

import pandas as pd
import pytest

from alienstay.sources.folder import catalog_folder, merge_into
from alienstay.workspace import Workspace, WorkspaceError, atomic_path, write_parquet


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

    from alienstay.cli import app
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

    from alienstay.cli import app
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
