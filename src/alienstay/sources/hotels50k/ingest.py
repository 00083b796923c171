"""Hotels-50K ingest: the sample's images downloaded into the workspace and catalogued.

Downloads go through the generic ``alienstay.sources.downloader``; this module adds what is
Hotels-50K's own: the longer side resized to 640 px as the official script does, the
official layout ``images/<split>/<chain>/<hotel>/<source>/<image_id>.jpg``, and the catalog.
Every URL ends as a file on disk (status ``new``, for preprocess to check) or a ``failed``
row with its reason. The catalog is saved atomically every few downloads, so killing the
process loses nothing: a file written before the kill is found on disk by the rerun and
catalogued without refetching, and rows are keyed by image id so a rerun never duplicates one.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from alienstay.preprocess import fit_within, to_rgb
from alienstay.sources import downloader
from alienstay.sources.downloader import Failure, Fetched
from alienstay.sources.hotels50k.metadata import (
    SPLIT_FILES,
    MetadataError,
    join_metadata,
    locate_metadata,
    read_metadata,
)
from alienstay.sources.hotels50k.sampling import sample_images
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace, write_parquet

OFFICIAL_MAX_SIDE = 640
JPEG_QUALITY = 92


@dataclass(frozen=True)
class DownloadSettings(downloader.DownloadSettings):
    """The downloader's settings plus the image size and how often the catalog is saved."""

    max_side: int = OFFICIAL_MAX_SIDE
    checkpoint_every: int = 50  # completed downloads between catalog saves


def safe_part(value: object) -> str:
    text = "unknown" if pd.isna(value) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip(".") or "unknown"


def official_path(images_dir: Path, row: dict) -> Path:
    """``images/<split>/<chain>/<hotel>/<source>/<image_id>.jpg``, as the official script writes."""
    parts = [row["split"], row["chain_id"], row["hotel_id"], row["source"]]
    return images_dir.joinpath(*map(safe_part, parts), f"{safe_part(row['image_id'])}.jpg")


def to_official_jpeg(body: bytes, max_side: int = OFFICIAL_MAX_SIDE) -> bytes:
    """Longer side at most ``max_side``, as a JPEG; small JPEGs are kept byte for byte.

    The EXIF block is carried over so preprocess can still turn the photo upright.
    """
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            if image.format == "JPEG" and max(image.size) <= max_side:
                return body
            exif = image.info.get("exif")
            resized = fit_within(to_rgb(image), max_side)
    except UnidentifiedImageError as error:
        raise Failure("not_an_image", False) from error
    except Image.DecompressionBombError as error:
        raise Failure("decompression_bomb", False) from error
    except (OSError, SyntaxError, ValueError) as error:
        truncated = "truncated" in str(error).lower() or "premature" in str(error).lower()
        raise Failure("truncated_body" if truncated else "decode_error", truncated) from error
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=JPEG_QUALITY, **({"exif": exif} if exif else {}))
    return buffer.getvalue()



# ---- the catalog -----------------------------------------------------------------------
def upsert(catalog: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows replace those with the same image id in place; new ids are appended. Never a duplicate."""
    position = {image_id: i for i, image_id in enumerate(catalog["image_id"])}
    combined = pd.concat([cat.conform(catalog), cat.conform(rows)], ignore_index=True)
    combined = combined.drop_duplicates("image_id", keep="last")
    rank = [position.get(image_id, len(position) + k) for k, image_id in enumerate(combined["image_id"])]
    return cat.conform(combined.iloc[np.argsort(rank, kind="stable")])


def catalog_rows(sample: pd.DataFrame, results: list[Fetched], images_dir: Path) -> pd.DataFrame:
    by_id = sample.set_index("image_id", drop=False)
    records = []
    for result in results:
        row = by_id.loc[result.key].to_dict()
        records.append(
            {
                **{k: row[k] for k in ("image_id", "split", "hotel_id", "hotel_name", "chain_id",
                                       "chain_name", "source", "url")},  # fmt: skip
                "path": str(official_path(images_dir, row)) if result.ok else pd.NA,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "status": cat.NEW if result.ok else cat.FAILED,
                "reason": result.reason,
            }
        )
    return cat.conform(pd.DataFrame(records))


PERMANENT_REASONS = ("http_4", "not_an_image", "bad_url", "decompression_bomb", "decode_error")


def still_to_fetch(sample: pd.DataFrame, catalog: pd.DataFrame, retry_failed: bool) -> pd.DataFrame:
    """Sampled rows not yet decided; failed rows again if their reason may be transient."""
    decided = dict(zip(catalog["image_id"], zip(catalog["status"], catalog["reason"].fillna(""))))

    def needs_fetching(image_id: str) -> bool:
        if image_id not in decided:
            return True
        status, reason = decided[image_id]
        return status == cat.FAILED and (retry_failed or not reason.startswith(PERMANENT_REASONS))

    return sample[[needs_fetching(image_id) for image_id in sample["image_id"]]]


@dataclass
class DownloadReport:
    sampled: int = 0
    already_catalogued: int = 0
    fetched: int = 0  # files now on disk from this run (including ones found on disk)
    failed: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)

    def add(self, result: Fetched) -> None:
        self.requests += result.attempts
        self.retries += max(0, result.attempts - 1)
        if result.ok:
            self.fetched += 1
        else:
            self.failed += 1
            self.failures[result.reason] += 1

    def as_dict(self) -> dict:
        figures = {k: v for k, v in self.__dict__.items() if k != "failures"}
        figures["images_per_second"] = self.fetched / self.seconds if self.seconds else 0.0
        figures.update({f"failed_{reason}": n for reason, n in sorted(self.failures.items())})
        return figures


class Checkpointer:
    """Collects results and saves the catalog atomically every ``every`` of them."""

    def __init__(self, ws: Workspace, catalog: pd.DataFrame, sample: pd.DataFrame, every: int) -> None:
        self.ws, self.catalog, self.sample, self.every = ws, catalog, sample, every
        self.buffer: list[Fetched] = []
        self.lock = threading.Lock()

    def add(self, result: Fetched) -> None:
        with self.lock:
            self.buffer.append(result)
            # A save rewrites the whole catalog: on a large one, save less often so the total
            # cost stays about 200 rewrites. A file written but not yet catalogued is found on
            # disk by the next run, so a kill between saves costs a hash, not a download.
            if len(self.buffer) >= max(self.every, len(self.catalog) // 200):
                self.flush()

    def flush(self) -> None:
        if self.buffer:
            rows = catalog_rows(self.sample, self.buffer, self.ws.images_dir)
            self.catalog = upsert(self.catalog, rows)
            self.ws.write_catalog(self.catalog)
            self.buffer = []


def keep_other_split(ws: Workspace, full: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """A split whose CSV is not in ``folder`` keeps the rows an earlier ingest wrote (no lost work)."""
    absent = [name for name, file in SPLIT_FILES.items() if not (folder / file).exists()]
    if not absent or not ws.metadata_path.exists():
        return full
    earlier = pd.read_parquet(ws.metadata_path)
    kept = earlier[earlier["split"].isin(absent)].astype("string")
    return pd.concat([full, kept[full.columns]], ignore_index=True) if len(kept) else full


def hotels_already_here(full: pd.DataFrame, catalog: pd.DataFrame, split: str) -> pd.DataFrame:
    """The metadata rows of hotels the workspace already holds photos of (from another split).

    Two samples drawn independently rarely share a hotel (the test split has 5,000 of the 50,000);
    retrieval's paper protocol needs test photos of the train photos' hotels, so the second split is
    drawn from the first one's hotels.
    """
    here = set(catalog.loc[catalog["status"] != cat.FAILED, "hotel_id"].dropna())
    pool = full[full["hotel_id"].isin(here)]
    if not (pool["split"] == split).any():
        raise MetadataError(
            f"--same-hotels: none of the {len(here)} hotels in this workspace has {split} photos in the metadata; "
            "ingest the other split first (or drop --same-hotels)."
        )
    return pool


def run(
    ws: Workspace,
    metadata_source: str | Path,
    *,
    split: str = "train",
    hotels: int = 20,
    per_hotel: int = 5,
    seed: int = 0,
    take_all: bool = False,
    retry_failed: bool = False,
    same_hotels: bool = False,
    settings: DownloadSettings = DownloadSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> DownloadReport:
    """Metadata -> ws.metadata_path, sample -> downloads -> catalog (saved as it goes)."""
    folder = locate_metadata(metadata_source, ws.cache_dir / "hotels50k", verify=settings.verify, split=split)
    full = keep_other_split(ws, join_metadata(read_metadata(folder)), folder)
    write_parquet(full, ws.metadata_path)
    if split not in set(full["split"]):
        raise MetadataError(f"the metadata has no {split!r} rows; use --split train or --split test.")
    catalog = ws.read_catalog() if ws.catalog_path.exists() else cat.empty_catalog()
    pool = hotels_already_here(full, catalog, split) if same_hotels else full
    sample = pool[pool["split"] == split] if take_all else sample_images(pool, split, hotels, per_hotel, seed)
    # The catalog is keyed by image id; an id listed twice in the CSV is fetched once
    # (the metadata file above keeps every row).
    sample = sample.drop_duplicates("image_id").reset_index(drop=True)

    todo = still_to_fetch(sample, catalog, retry_failed)
    report = DownloadReport(sampled=len(sample), already_catalogued=len(sample) - len(todo))
    jobs = [
        (row["image_id"], row["url"], official_path(ws.images_dir, row))
        for row in todo.to_dict("records")
    ]
    checkpoint = Checkpointer(ws, catalog, sample, settings.checkpoint_every)

    def on_result(result: Fetched) -> None:
        report.add(result)
        checkpoint.add(result)
        if progress:
            progress(report.fetched + report.failed, len(jobs))

    start = time.perf_counter()
    try:
        transform = partial(to_official_jpeg, max_side=settings.max_side)
        downloader.download(jobs, settings, on_result, transform)
    finally:
        checkpoint.flush()  # also on Ctrl-C: what finished is kept
        report.seconds = time.perf_counter() - start
        ws.log_run("ingest-hotels50k", metadata=str(metadata_source), split=split, hotels=hotels,
                   per_hotel=per_hotel, seed=seed, all=take_all, same_hotels=same_hotels,
                   **settings.__dict__)  # fmt: skip
    return report

