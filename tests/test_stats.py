from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.notes.dataset import (
    build_note,
    describe_counts,
    gini,
    imbalance_ratio,
    normalised_entropy,
)
from alienstay.sources import hotels50k as h50k
from alienstay.testing.hotels50k_fakes import HOTELS, write_metadata
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace


def test_gini_on_hand_made_counts() -> None:
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 8]) == pytest.approx(0.75)  # one of four holds everything: (n-1)/n
    assert gini([4, 1, 3, 2]) == pytest.approx(0.25)  # order does not matter
    assert math.isnan(gini([]))


def test_normalised_entropy_on_hand_made_counts() -> None:
    assert normalised_entropy([3, 3, 3]) == pytest.approx(1.0)
    assert normalised_entropy([10, 0, 0, 0]) == pytest.approx(0.0)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    assert normalised_entropy([1, 3]) == pytest.approx(expected)  # 0.811
    assert math.isnan(normalised_entropy([7]))


def test_imbalance_ratio_on_hand_made_counts() -> None:
    assert imbalance_ratio([10, 5, 2]) == 5.0
    assert imbalance_ratio([3, 3]) == 1.0
    assert imbalance_ratio([4, 0]) == math.inf


def test_describe_counts_spread() -> None:
    figures = describe_counts(pd.Series([1, 2, 3, 10]))
    assert (figures["classes"], figures["images"], figures["min"], figures["max"]) == (4, 16, 1, 10)
    assert figures["median"] == 2.5


def hotels50k_workspace(tmp_path: Path, workspace) -> pd.DataFrame:
    """Full metadata written, only a small sample catalogued (as after a partial download)."""
    write_metadata(tmp_path / "meta")
    full = h50k.join_metadata(h50k.read_metadata(tmp_path / "meta"))
    full.to_parquet(workspace.metadata_path)
    sample = h50k.sample_images(full, "train", hotels=2, per_hotel=2, seed=0)
    rows = sample[[c for c in sample.columns if c in cat.COLUMNS]].assign(status=cat.NEW, reason="")
    workspace.write_catalog(cat.conform(rows))
    return full


def test_note_describes_the_full_metadata_not_only_the_sample(tmp_path: Path, workspace) -> None:
    reference = tmp_path / "ref.tsv"
    reference.write_text("chain_id\timages\n-1\t600\n3\t300\n7\t100\n")
    full = hotels50k_workspace(tmp_path, workspace)
    note = build_note(workspace, reference)
    balance = note.balance.set_index(["classes of", "source"])
    train = full[full["split"] == "train"]
    assert balance.loc[("hotel", "the metadata CSVs (train)"), "classes"] == len(HOTELS)
    assert balance.loc[("hotel", "the metadata CSVs (train)"), "images"] == len(train)
    sample_row = balance.loc[("hotel", "the downloaded Hotels-50K sample (catalog.parquet), all catalogued rows (preprocess has not run)")]
    assert sample_row["images"] == 4
    ref = balance.loc[("chain", "the reference TSV (full train download)")]
    assert ref["gini"] == pytest.approx(gini([600, 300, 100]))
    text = note.path.read_text()
    assert "chain -1 (no chain) holds 60.0%" in text
    assert "TraffickCam" in text and "travel website" in text
    assert all(f.exists() and f.stat().st_size > 0 for f in note.figures)
    assert all(f"]({f.name})" in text for f in note.figures)


def test_missing_reference_is_said_in_the_note(tmp_path: Path, workspace) -> None:
    hotels50k_workspace(tmp_path, workspace)
    note = build_note(workspace, tmp_path / "nowhere.tsv")
    assert "NOT FOUND" in note.path.read_text()
    assert "reference TSV" not in set(note.balance["source"])


def test_real_photos_ingest_preprocess_stats(samples_dir: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    runner = CliRunner()
    for command in (["ingest", "folder", str(samples_dir)], ["preprocess"], ["stats"]):
        result = runner.invoke(app, [*command, "-w", str(ws)])
        assert result.exit_code == 0, result.output
    catalog = Workspace(ws).read_catalog()  # paths located under the workspace
    assert len(catalog) == 8 and (catalog["status"] == cat.OK).sum() == 8
    assert catalog["prepared_path"].map(lambda p: Path(p).is_file()).all()
    note = (ws / "report" / "dataset.md").read_text()
    assert "this photo folder" in note and "| 8 " in note
    figures = {p.name for p in (ws / "report").glob("*.png")}
    assert {"dataset_images_per_hotel.png", "dataset_sizes.png"} <= figures
    assert all(f"]({name})" in note for name in figures)


def test_without_reference_the_packaged_counts_are_used_from_any_folder(tmp_path: Path, workspace, monkeypatch) -> None:
    from alienstay.notes.dataset import PACKAGED_REFERENCE

    hotels50k_workspace(tmp_path, workspace)
    monkeypatch.chdir(tmp_path)  # no ../shared from here: the default must not depend on the folder
    note = build_note(workspace)
    ref = note.balance.set_index(["classes of", "source"]).loc[("chain", "the reference TSV (full train download)")]
    assert ref["images"] == 1_124_214  # the full train download's file count (docs/dataset.md)
    assert str(PACKAGED_REFERENCE) in note.path.read_text()
    assert "alienstay/data/" in PACKAGED_REFERENCE.as_posix()
