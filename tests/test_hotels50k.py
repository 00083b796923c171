from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay import preprocess
from alienstay.stages import preprocess as preprocess_stage
from alienstay.cli.commands import app
from alienstay.sources import hotels50k as h50k
from alienstay.testing.hotels50k_fakes import HOTELS, FaultServer, write_metadata
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace

# A 1 s timeout: short, yet far above a loopback reply even on a loaded CI machine.
FAST = h50k.DownloadSettings(workers=4, timeout=1.0, retries=2, backoff=0.01, checkpoint_every=3)


# ---- metadata ---------------------------------------------------------------------------
@pytest.mark.parametrize("with_header", [True, False])
def test_header_is_detected_and_no_row_is_lost(tmp_path: Path, with_header: bool) -> None:
    counts = write_metadata(tmp_path, with_header=with_header)
    metadata = h50k.read_metadata(tmp_path)
    assert len(metadata.chains) == counts["chain_info.csv"]
    assert len(metadata.hotels) == counts["hotel_info.csv"]
    assert len(metadata.train) == counts["train_set.csv"]
    assert len(metadata.test) == counts["test_set.csv"]
    assert metadata.train["image_id"].iloc[0] == "1"  # the first data row survives either way
    assert "Hotel 100, -1" in set(metadata.hotels["hotel_name"])  # a quoted comma stays in the name


def test_both_header_variants_give_the_same_tables(tmp_path: Path) -> None:
    write_metadata(tmp_path / "a", with_header=True)
    write_metadata(tmp_path / "b", with_header=False)
    a, b = h50k.read_metadata(tmp_path / "a"), h50k.read_metadata(tmp_path / "b")
    for name in ("chains", "hotels", "train", "test"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_join_names_every_row_and_normalises_sources(tmp_path: Path) -> None:
    counts = write_metadata(tmp_path)
    full = h50k.join_metadata(h50k.read_metadata(tmp_path))
    assert len(full) == counts["train_set.csv"] + counts["test_set.csv"]
    assert set(full["source"]) == {"travel_website", "traffickcam"}
    assert full["hotel_name"].notna().all() and full["chain_name"].notna().all()
    row = full[full["hotel_id"] == "200"].iloc[0]
    assert (row.chain_id, row.chain_name) == ("3", "Hilton")


def test_archive_and_nested_folder_are_found(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "input" / "dataset"
    write_metadata(folder, with_header=False)
    archive = tmp_path / "dataset.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="dataset")
    from_archive = h50k.locate_metadata(archive, tmp_path / "cache")
    from_root = h50k.locate_metadata(tmp_path / "repo", tmp_path / "cache2")
    assert from_root == folder
    pd.testing.assert_frame_equal(
        h50k.read_metadata(from_archive).train, h50k.read_metadata(from_root).train
    )


def test_unreachable_metadata_url_fails_at_once_saying_what_to_do(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(h50k.MetadataError, match=r"could not reach http://127\.0\.0\.1:9/.*ingest folder"):
        h50k.locate_metadata("http://127.0.0.1:9/dataset.tar.gz", tmp_path)
    assert time.perf_counter() - start < 5
    result = CliRunner().invoke(
        app, ["ingest", "hotels50k", "--metadata", "http://127.0.0.1:9/x.tar.gz", "-w", str(tmp_path / "ws")]
    )
    assert result.exit_code == 2 and "ingest folder" in result.output


def test_missing_csv_is_named(tmp_path: Path) -> None:
    write_metadata(tmp_path)
    (tmp_path / "test_set.csv").unlink()
    with pytest.raises(h50k.MetadataError, match="test_set.csv"):
        h50k.locate_metadata(tmp_path, tmp_path / "cache")



def test_test_split_needs_only_its_csv_and_the_info_files(tmp_path: Path, server: FaultServer) -> None:
    meta, root = tmp_path / "meta", tmp_path / "ws"
    urls = {str(90000 + i): server.url(f"/ok/t{i}.jpg") for i in range(len(HOTELS))}
    write_metadata(meta, test_urls=urls)
    (meta / "train_set.csv").unlink()  # the 1.1 M-row file a user is least likely to have
    args = ["ingest", "hotels50k", "--metadata", str(meta), "--all", "--workers", "2", "-w", str(root)]
    result = CliRunner().invoke(app, [*args, "--split", "test"])
    assert result.exit_code == 0, result.output
    ws = Workspace(root)
    catalog = ws.read_catalog()
    assert sorted(catalog["image_id"]) == sorted(urls) and set(catalog["split"]) == {"test"}
    assert set(catalog["status"]) == {"new"}
    assert len(pd.read_parquet(ws.metadata_path)) == len(urls)

    # The train split does need train_set.csv: named, with where to get it; the test rows are kept.
    result = CliRunner().invoke(app, [*args, "--split", "train"])
    assert result.exit_code == 2 and "train_set.csv" in result.output and "dataset.tar.gz" in result.output
    assert len(ws.read_catalog()) == len(urls)


def test_an_ingest_without_the_other_split_keeps_its_earlier_rows(tmp_path: Path, workspace) -> None:
    write_metadata(tmp_path / "both")
    full = h50k.join_metadata(h50k.read_metadata(tmp_path / "both"))
    full.to_parquet(workspace.metadata_path)  # an earlier ingest with all four CSVs
    write_metadata(tmp_path / "test_only")
    (tmp_path / "test_only" / "train_set.csv").unlink()
    folder = h50k.locate_metadata(tmp_path / "test_only", tmp_path / "cache", split="test")
    assert h50k.read_metadata(folder).train.empty
    from alienstay.sources.hotels50k.ingest import keep_other_split

    kept = keep_other_split(workspace, h50k.join_metadata(h50k.read_metadata(folder)), folder)
    assert kept["split"].value_counts().to_dict() == full["split"].value_counts().to_dict()


def test_same_hotels_draws_the_test_split_from_the_train_samples_hotels(tmp_path: Path, server: FaultServer) -> None:
    meta, root = tmp_path / "meta", tmp_path / "ws"
    train = {str(1000 + i): server.url(f"/ok/r{i}.jpg") for i in range(2 * len(HOTELS))}  # two a hotel
    test = {str(90000 + i): server.url(f"/ok/t{i}.jpg") for i in range(2 * len(HOTELS))}
    write_metadata(meta, train_urls=train, test_urls=test)
    args = ["ingest", "hotels50k", "--metadata", str(meta), "--workers", "2", "-w", str(root)]
    fresh = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "empty"), "--split", "test", "--same-hotels"])
    assert fresh.exit_code == 2 and "ingest the other split first" in " ".join(fresh.output.split())
    assert CliRunner().invoke(app, [*args, "--split", "train", "--hotels", "3", "--per-hotel", "2"]).exit_code == 0
    result = CliRunner().invoke(app, [*args, "--split", "test", "--hotels", "9", "--per-hotel", "5", "--same-hotels"])
    assert result.exit_code == 0, result.output
    catalog = Workspace(root).read_catalog()
    by_split = catalog.groupby("split")["hotel_id"].agg(set)
    assert len(by_split["train"]) == 3 and by_split["test"] == by_split["train"]
    assert (catalog["split"] == "test").sum() == 6  # every test photo of those hotels, none of the others'


# ---- sampling ---------------------------------------------------------------------------
def test_sample_spreads_over_chains_including_no_chain(tmp_path: Path) -> None:
    write_metadata(tmp_path)
    full = h50k.join_metadata(h50k.read_metadata(tmp_path))
    sample = h50k.sample_images(full, "train", hotels=4, per_hotel=2, seed=0)
    assert len(sample) == 8 and sample["hotel_id"].nunique() == 4
    assert set(sample["chain_id"]) == {"-1", "3", "7", "9"}  # one hotel per chain before any second
    again = h50k.sample_images(full, "train", hotels=4, per_hotel=2, seed=0)
    pd.testing.assert_frame_equal(sample, again)
    everything = h50k.sample_images(full, "train", hotels=100, per_hotel=100, seed=1)
    assert len(everything) == (full["split"] == "train").sum()  # asks for more than exists: all, once
    assert everything["image_id"].is_unique


# ---- downloading ------------------------------------------------------------------------
# url path -> (status, reason, server hits) with retries=2
FAULTS = {
    "/ok/a.jpg": ("new", "", 1),
    "/big/b.jpg": ("new", "", 1),
    "/missing/c.jpg": ("failed", "http_404", 1),
    "/flaky/1/d.jpg": ("new", "", 2),
    "/flaky/9/e.jpg": ("failed", "http_500", 3),
    "/down/f.jpg": ("failed", "http_500", 3),
    "/slow/g.jpg": ("failed", "timeout", 3),
    "/truncated/h.jpg": ("failed", "truncated_body", 3),
    "/text/i.jpg": ("failed", "not_an_image", 1),
}


@pytest.fixture
def server():
    with FaultServer(slow_seconds=2.5) as fault:
        yield fault


def fault_metadata(folder: Path, server: FaultServer, paths: list[str]) -> dict[str, str]:
    urls = {str(1000 + i): server.url(path) for i, path in enumerate(paths)}
    write_metadata(folder, train_urls=urls)
    return {image_id: url.split(str(server.server.server_address[1]))[1] for image_id, url in urls.items()}


def test_every_url_ends_downloaded_or_failed_with_reason_and_retries_are_bounded(
    tmp_path: Path, server: FaultServer, workspace
) -> None:
    path_of = fault_metadata(tmp_path / "meta", server, list(FAULTS))
    report = h50k.run(workspace, tmp_path / "meta", take_all=True, settings=FAST)

    catalog = workspace.read_catalog().set_index("image_id")
    assert sorted(catalog.index) == sorted(path_of) and catalog.index.is_unique
    for image_id, path in path_of.items():
        status, reason, hits = FAULTS[path]
        assert (catalog.loc[image_id, "status"], catalog.loc[image_id, "reason"]) == (status, reason), path
        assert server.hits[path] == hits, path
    assert report.failed == 6 and report.fetched == 3
    assert report.retries == sum(h - 1 for _, _, h in FAULTS.values())
    assert dict(report.failures) == {"http_404": 1, "http_500": 2, "timeout": 1, "truncated_body": 1,
                                     "not_an_image": 1}  # fmt: skip

    # official layout, resized like the official script
    big = catalog[catalog["url"].str.endswith("/big/b.jpg")].iloc[0]
    relative = Path(big.path).relative_to(workspace.images_dir)
    assert relative.parts == ("train", big.chain_id, big.hotel_id, big.source, f"{big.name}.jpg")
    assert max(Image.open(big.path).size) == 640
    # full metadata, not only the downloaded rows
    assert len(pd.read_parquet(workspace.metadata_path)) == len(path_of) + len(HOTELS)


def test_rerun_fetches_only_what_is_missing_and_skips_permanent_failures(
    tmp_path: Path, server: FaultServer, workspace
) -> None:
    paths = [p for p in FAULTS if not p.startswith("/slow/")]  # timeouts are covered above; keep it quick
    path_of = fault_metadata(tmp_path / "meta", server, paths)
    h50k.run(workspace, tmp_path / "meta", take_all=True, settings=FAST)
    before = dict(server.hits)
    report = h50k.run(workspace, tmp_path / "meta", take_all=True, settings=FAST)
    new_hits = {p: server.hits[p] - before.get(p, 0) for p in paths}
    assert new_hits["/ok/a.jpg"] == new_hits["/big/b.jpg"] == 0  # on disk already
    assert new_hits["/missing/c.jpg"] == new_hits["/text/i.jpg"] == 0  # permanent
    assert new_hits["/down/f.jpg"] == 3  # transient: worth another bounded try
    assert report.already_catalogued == 5 and report.sampled == len(path_of)
    catalog = workspace.read_catalog()
    assert len(catalog) == len(path_of) and catalog["image_id"].is_unique


def test_downloads_then_preprocess_keeps_the_images(tmp_path: Path, server: FaultServer, workspace) -> None:
    fault_metadata(tmp_path / "meta", server, ["/ok/a.jpg", "/big/b.jpg", "/flaky/1/d.jpg"])
    h50k.run(workspace, tmp_path / "meta", take_all=True, settings=FAST)
    summary = preprocess_stage.run(workspace, show_progress=False).table
    catalog = workspace.read_catalog()
    # a.jpg and d.jpg are the same image bytes from the server: one kept, one exact duplicate
    assert sorted(catalog["status"]) == [cat.DUPLICATE, cat.OK, cat.OK]
    assert summary["images"].sum() == 3


def test_killed_run_then_rerun_completes_without_duplicates(tmp_path: Path, server: FaultServer) -> None:
    paths = [f"/ok/{i}.jpg" for i in range(60)]
    urls = {str(5000 + i): server.url(p) + "?delay=0.15" for i, p in enumerate(paths)}
    write_metadata(tmp_path / "meta", train_urls=urls)
    ws = tmp_path / "ws"
    command = [sys.executable, "-m", "alienstay.cli.commands", "ingest", "hotels50k", "--metadata",
               str(tmp_path / "meta"), "--all", "--workers", "2", "--checkpoint-every", "4",
               "--timeout", "5", "-w", str(ws)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None:
        if (ws / "catalog.parquet").exists() and len(pd.read_parquet(ws / "catalog.parquet")) >= 8:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the first run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = pd.read_parquet(ws / "catalog.parquet")
    assert 8 <= len(partial) < len(urls)

    result = CliRunner().invoke(
        app, ["ingest", "hotels50k", "--metadata", str(tmp_path / "meta"), "--all", "--workers", "4", "-w", str(ws)]
    )
    assert result.exit_code == 0, result.output
    catalog = Workspace(ws).read_catalog()  # paths located under the workspace
    assert len(catalog) == len(urls) and catalog["image_id"].is_unique
    assert set(catalog["status"]) == {cat.NEW}
    assert all(Path(p).is_file() for p in catalog["path"])
    # every image fetched once, plus at most the requests in flight when the first run was killed
    assert all(server.hits[p] >= 1 for p in paths)
    assert sum(server.hits[p] for p in paths) <= len(paths) + 2


def test_insecure_warns_and_is_recorded(tmp_path: Path, server: FaultServer) -> None:
    fault_metadata(tmp_path / "meta", server, ["/ok/a.jpg"])
    ws = tmp_path / "ws"
    result = CliRunner().invoke(
        app, ["ingest", "hotels50k", "--metadata", str(tmp_path / "meta"), "--all", "--insecure", "-w", str(ws)]
    )
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "NOT verified" in result.output
    assert '"verify": false' in (ws / "runs.jsonl").read_text()


def test_small_jpeg_kept_byte_for_byte_and_large_resized_with_exif() -> None:
    from alienstay.testing.imagefactory import exif_rotated, jpeg_bytes, photo_like

    small = exif_rotated()
    assert h50k.to_official_jpeg(small) == small
    exif = Image.Exif()
    exif[0x0112] = 6
    big = jpeg_bytes(photo_like(3, (1280, 960)), exif=exif.tobytes())
    out = Image.open(io.BytesIO(h50k.to_official_jpeg(big)))
    assert out.size == (640, 480) and out.getexif()[0x0112] == 6
    with pytest.raises(h50k.Failure, match="not_an_image"):
        h50k.to_official_jpeg(b"<html>")
