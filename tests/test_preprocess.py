from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay import preprocess
from alienstay.stages import preprocess as preprocess_stage
from alienstay.cli.commands import app
from alienstay.sources.folder import catalog_folder
from alienstay.testing.imagefactory import EXPECTED, write_troublesome_images
from alienstay.workspace import catalog as cat


@pytest.fixture
def decided(tmp_path: Path) -> pd.DataFrame:
    folder = tmp_path / "photos"
    write_troublesome_images(folder)
    result = preprocess.preprocess_catalog(catalog_folder(folder), tmp_path / "prepared")
    return result.set_index("image_id")


def test_every_troublesome_image_gets_its_status_and_reason(decided: pd.DataFrame) -> None:
    got = {name: (row.status, row.reason) for name, row in decided.iterrows()}
    assert got == EXPECTED


def test_duplicates_point_to_the_first_kept(decided: pd.DataFrame) -> None:
    assert decided.loc["c_exact_copy.jpg", "duplicate_of"] == "a_base.jpg"
    assert decided.loc["d_near_copy.jpg", "duplicate_of"] == "a_base.jpg"
    assert decided["duplicate_of"].notna().sum() == 2


def test_exif_rotated_comes_out_upright(decided: pd.DataFrame) -> None:
    row = decided.loc["l_exif_rotated.jpg"]
    assert (row.width, row.height) == (200, 300)  # stored 300x200, orientation 6
    prepared = np.asarray(Image.open(row.prepared_path))
    assert prepared.shape == (300, 200, 3)
    # The stored top-left red block turns to the top-right when rotated 90 degrees clockwise.
    top_right, top_left = prepared[10, -10], prepared[10, 10]
    assert top_right[0] > 200 and top_right[1] < 60
    assert not (top_left[0] > 200 and top_left[1] < 60)


def test_sixteen_bit_is_scaled_not_clipped(decided: pd.DataFrame) -> None:
    pixels = np.asarray(Image.open(decided.loc["j_16bit.png", "prepared_path"])).astype(int)
    assert abs(pixels[:, 150].mean() - 128) < 4
    assert abs(pixels[:, 30].mean() - 64) < 4


def test_transparent_palette_is_composited_on_white(decided: pd.DataFrame) -> None:
    pixels = np.asarray(Image.open(decided.loc["k_palette_alpha.png", "prepared_path"])).astype(int)
    assert pixels[100, 30].min() > 245  # transparent half -> white
    assert pixels[100, 170, 2] > 200 and pixels[100, 170, 0] < 40  # opaque half stays blue


def test_prepared_copies_are_rgb_jpegs_within_max_side(tmp_path: Path, decided: pd.DataFrame) -> None:
    ok = decided[decided["status"] == cat.OK]
    assert len(ok) == 6
    for path in ok["prepared_path"]:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert max(image.size) <= preprocess.DEFAULT_MAX_SIDE
    assert decided.loc[decided["status"] == cat.REJECTED, "prepared_path"].isna().all()
    # Duplicates keep their prepared copy so a person can compare them side by side.
    assert decided.loc[decided["status"] == cat.DUPLICATE, "prepared_path"].notna().all()
    assert decided.loc["i_cmyk.jpg", "format"] == "JPEG"


def test_prepared_name_is_safe_and_unique() -> None:
    a, b = preprocess.prepared_name("a/b.jpg"), preprocess.prepared_name("a_b.jpg")
    assert a != b and "/" not in a and a.endswith(".jpg")


def test_large_images_are_capped_and_sizes_are_of_the_original(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    Image.new("RGB", (1600, 900), (10, 200, 30)).save(folder / "big.png")
    result = preprocess.preprocess_catalog(
        catalog_folder(folder), tmp_path / "prepared", preprocess.PreprocessSettings(max_side=400)
    )
    row = result.iloc[0]
    assert (row.width, row.height) == (1600, 900)
    assert Image.open(row.prepared_path).size == (400, 225)


def test_cli_is_resumable_and_never_touches_sources(tmp_path: Path) -> None:
    folder, ws = tmp_path / "photos", tmp_path / "ws"
    write_troublesome_images(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "folder", str(folder), "-w", str(ws)]).exit_code == 0
    first = runner.invoke(app, ["preprocess", "-w", str(ws)])
    assert first.exit_code == 0, first.output
    catalog = pd.read_parquet(ws / "catalog.parquet")
    assert (catalog["status"] == cat.NEW).sum() == 0 and len(catalog) == len(EXPECTED)
    # A rerun decides nothing again, and keeps every decision.
    again = runner.invoke(app, ["preprocess", "-w", str(ws)])
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(ws / "catalog.parquet"), catalog)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_summary_counts_kept_and_dropped_by_reason(tmp_path: Path, workspace) -> None:
    folder = tmp_path / "photos"
    write_troublesome_images(folder)
    workspace.write_catalog(catalog_folder(folder))
    summary = preprocess_stage.run(workspace, show_progress=False).table
    counts = {(r.status, r.reason): r.images for r in summary.itertuples()}
    assert counts[("ok", "-")] == 6
    assert counts[("duplicate", "exact_duplicate")] == 1
    assert counts[("rejected", "too_small")] == 1
    assert summary["images"].sum() == len(EXPECTED) == summary["this_run"].sum()


def test_duplicate_index_finds_near_hashes_past_its_first_allocation() -> None:
    rng = np.random.default_rng(0)
    index = preprocess.DuplicateIndex(near_threshold=4)
    hashes = [f"{int(v):016x}" for v in rng.integers(0, 2**63, size=1500, dtype=np.int64)]
    for k, phash in enumerate(hashes):
        index.add(f"id{k}", f"sha{k}", phash)
    flipped = f"{int(hashes[1400], 16) ^ 0b1011:016x}"  # three bits away from id1400
    assert index.match("other", flipped) == ("id1400", preprocess.NEAR_DUPLICATE)
    assert index.match("sha7", "0" * 16) == ("id7", preprocess.EXACT_DUPLICATE)


def test_a_format_pillow_reads_but_we_do_not_support_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    Image.new("RGB", (200, 200), (1, 2, 3)).save(folder / "scan.bmp", format="PCX")
    row = preprocess.preprocess_catalog(catalog_folder(folder), tmp_path / "prepared").iloc[0]
    assert (row.status, row.reason) == ("rejected", "unsupported_format:PCX")


def test_rerun_rebuilds_a_prepared_copy_that_was_deleted(samples_dir, tmp_path) -> None:
    from alienstay.workspace.layout import Workspace

    ws = Workspace(tmp_path / "ws")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", "folder", str(samples_dir), "-w", str(ws.root)]).exit_code == 0
    assert runner.invoke(app, ["preprocess", "-w", str(ws.root)]).exit_code == 0
    first = ws.read_catalog()
    gone = Path(first["prepared_path"].iloc[0])
    gone.unlink()
    assert runner.invoke(app, ["preprocess", "-w", str(ws.root)]).exit_code == 0
    again = ws.read_catalog()
    assert gone.is_file()
    assert len(again) == len(first) and (again["status"] == "ok").all()
