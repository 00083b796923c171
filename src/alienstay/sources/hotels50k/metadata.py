"""Hotels-50K metadata: the CSVs of the dataset's ``input/dataset.tar.gz``, joined.

The source may be the archive, its unpacked folder, or a URL to the archive. Header rows
are detected, never assumed, and old source names (``expedia``, ``tcam``) are mapped to
the current ones. A split needs only its own CSV beside ``hotel_info.csv`` and
``chain_info.csv`` (the 1.1 M-row ``train_set.csv`` is the one a user is least likely to
have when ingesting the test split); a split CSV that is absent reads as no rows.
"""

from __future__ import annotations

import csv
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from alienstay.workspace.layout import atomic_path

COLUMNS: dict[str, list[str]] = {
    "chain_info.csv": ["chain_id", "chain_name"],
    "hotel_info.csv": ["hotel_id", "hotel_name", "chain_id", "latitude", "longitude"],
    "train_set.csv": ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"],
    "test_set.csv": ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"],
}
INFO_FILES = ("chain_info.csv", "hotel_info.csv")
SPLIT_FILES = {"train": "train_set.csv", "test": "test_set.csv"}
SOURCE_NAMES = {"expedia": "travel_website", "tcam": "traffickcam"}
FALLBACK = "Without internet, use `alienstay ingest folder DIR` instead."


class MetadataError(RuntimeError):
    """The metadata cannot be found or read; the message says what to pass instead."""


def is_url(source: str) -> bool:
    return re.match(r"^https?://", str(source)) is not None


def fetch_metadata_archive(url: str, target: Path, timeout: float = 30.0, verify: bool = True) -> Path:
    """Download the metadata archive; any network failure is one clear error at once."""
    try:
        with atomic_path(target) as tmp, httpx.stream(
            "GET", url, timeout=httpx.Timeout(timeout, connect=5.0), verify=verify, follow_redirects=True
        ) as response:
            response.raise_for_status()
            with open(tmp, "wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
    except httpx.HTTPError as error:
        raise MetadataError(f"could not reach {url} ({type(error).__name__}: {error}). {FALLBACK}") from error
    if target.read_bytes()[:64].startswith(b"version https://git-lfs"):
        raise MetadataError(
            f"{url} returned a Git LFS pointer, not the archive: use the repository's "
            "media (LFS) URL, or download input/dataset.tar.gz by hand and pass its path."
        )
    return target


def unpack_archive(archive: Path, destination: Path) -> Path:
    """Unpack into a fresh folder (``filter="data"`` refuses paths that leave it)."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", dir=destination.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(destination, ignore_errors=True)
        tmp.rename(destination)
    except (tarfile.TarError, OSError) as error:
        raise MetadataError(f"{archive} is not a readable .tar.gz archive ({error}).") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination


def needed_files(split: str | None) -> list[str]:
    """The CSVs a split needs (its own, hotel and chain info); all four when no split is named."""
    if split is None:
        return list(COLUMNS)
    if split not in SPLIT_FILES:
        raise MetadataError(f"unknown split {split!r}: use --split train or --split test.")
    return [*INFO_FILES, SPLIT_FILES[split]]


def find_csv_folder(root: Path, split: str | None = None) -> Path:
    """The folder holding the CSVs ``split`` needs: ``root`` itself or any folder below it."""
    candidates = [root] if (root / "chain_info.csv").exists() else sorted(p.parent for p in root.rglob("chain_info.csv"))
    if not candidates:
        raise MetadataError(
            f"no chain_info.csv under {root}: pass the dataset's input/dataset folder or dataset.tar.gz."
        )
    folder = candidates[0]
    needed = needed_files(split)
    missing = [name for name in needed if not (folder / name).exists()]
    if missing:
        what = f"the {split} split needs {', '.join(needed)}" if split else "the metadata needs all four CSVs"
        raise MetadataError(f"{folder} lacks {', '.join(missing)}: {what}; add them from the dataset's input/dataset.tar.gz.")
    return folder


def locate_metadata(
    source: str | Path, cache_dir: Path, timeout: float = 30.0, verify: bool = True, split: str | None = None
) -> Path:
    """A folder of the CSVs ``split`` needs (all four if None), from a folder, a .tar.gz, or a URL to it."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if is_url(str(source)):
        source = fetch_metadata_archive(str(source), cache_dir / "dataset.tar.gz", timeout, verify)
    path = Path(source)
    if path.is_dir():
        return find_csv_folder(path, split)
    if path.is_file():
        return find_csv_folder(unpack_archive(path, cache_dir / "dataset"), split)
    raise MetadataError(f"{path} does not exist: pass the metadata folder, dataset.tar.gz, or its URL.")


def has_header(path: Path) -> bool:
    """Every id column holds integers, so a first cell that is not one is a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        first = next(csv.reader(handle), [])
    return bool(first) and re.fullmatch(r"\s*-?\d+\s*", first[0]) is None


def read_csv_file(path: Path, columns: list[str]) -> pd.DataFrame:
    """One CSV as strings, with or without a header row; no row dropped or invented."""
    header = has_header(path)
    try:
        frame = pd.read_csv(
            path, header=0 if header else None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype="string") for name in columns})
    if header:
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MetadataError(f"{path}: header lacks {missing}; expected columns {columns}.")
        frame = frame[columns]
    elif frame.shape[1] != len(columns):
        raise MetadataError(f"{path}: {frame.shape[1]} columns, expected {len(columns)}: {columns}.")
    else:
        frame.columns = columns
    return frame.apply(lambda column: column.str.strip()).astype("string")


@dataclass(frozen=True)
class Metadata:
    chains: pd.DataFrame
    hotels: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame


def read_metadata(folder: Path) -> Metadata:
    """The CSVs of ``folder``; a split CSV that is absent reads as no rows (``find_csv_folder`` checked the rest)."""
    tables = {
        name: read_csv_file(folder / name, columns) if (folder / name).exists() or name in INFO_FILES
        else pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
        for name, columns in COLUMNS.items()
    }
    return Metadata(
        chains=tables["chain_info.csv"],
        hotels=tables["hotel_info.csv"],
        train=tables["train_set.csv"],
        test=tables["test_set.csv"],
    )


def normalise_source(values: pd.Series) -> pd.Series:
    lowered = values.str.strip().str.lower()
    return lowered.replace(SOURCE_NAMES)


def join_metadata(metadata: Metadata) -> pd.DataFrame:
    """Every image row of both splits with its hotel and chain: the full dataset, one row an image.

    Hotel or chain ids listed twice keep their first name (an image row is never
    multiplied by a duplicated lookup row); images whose hotel is unknown keep NA names.
    """
    images = pd.concat(
        [metadata.train.assign(split="train"), metadata.test.assign(split="test")], ignore_index=True
    )
    hotels = metadata.hotels.drop_duplicates("hotel_id")
    chains = metadata.chains.drop_duplicates("chain_id")
    joined = images.merge(hotels, on="hotel_id", how="left").merge(chains, on="chain_id", how="left")
    joined["source"] = normalise_source(joined["image_source"])
    joined = joined.rename(columns={"image_url": "url"})
    order = ["image_id", "split", "hotel_id", "hotel_name", "chain_id", "chain_name", "source", "url",
             "upload_timestamp", "latitude", "longitude"]  # fmt: skip
    return joined[order].astype("string")
