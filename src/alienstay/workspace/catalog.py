"""The catalog: one row an image. Column names and status values live here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

# status values
NEW = "new"  # ingested, not yet checked by preprocess
OK = "ok"  # usable: later stages read only these rows
FAILED = "failed"  # could not be fetched (download error); `reason` says why
REJECTED = "rejected"  # fetched but unusable (corrupt, too small, ...); `reason` says why
DUPLICATE = "duplicate"  # exact or near duplicate of `duplicate_of`

COLUMNS: dict[str, str] = {
    "image_id": "string",  # stable: relative path for a folder, the dataset's id for Hotels-50K
    "split": "string",  # train / test / folder
    "hotel_id": "string",
    "hotel_name": "string",
    "chain_id": "string",
    "chain_name": "string",
    "source": "string",  # folder, travel_website, traffickcam
    "url": "string",
    "path": "string",  # the original file (never modified)
    "prepared_path": "string",  # the decoded RGB copy written by preprocess
    "bytes": "Int64",
    "width": "Int64",
    "height": "Int64",
    "format": "string",
    "sha256": "string",
    "phash": "string",
    "status": "string",
    "reason": "string",
    "duplicate_of": "string",
}


# What the tag and caption readers need of a catalog row (read alone, so a big catalog stays cheap).
TAG_INPUT_COLUMNS = ("image_id", "status", "path", "prepared_path")


def empty_catalog() -> pd.DataFrame:
    return conform(pd.DataFrame({name: [] for name in COLUMNS}))


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Every catalog column present, in order, with its type; extra columns kept after them."""
    frame = frame.copy(deep=False)  # copy-on-write: columns already of their type are shared, not copied
    for name, dtype in COLUMNS.items():
        if name not in frame.columns:
            frame[name] = pd.Series([pd.NA] * len(frame), dtype=dtype, index=frame.index)
        else:
            frame[name] = frame[name].astype(dtype)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + extra].reset_index(drop=True)


def reason_codes(reasons: pd.Series) -> pd.Series:
    """The code of each reason: ``near_duplicate; kept a.jpg: more pixels`` -> ``near_duplicate``.

    A reason is a code, then optionally ``; `` and its detail; tables count by the code.
    """
    return reasons.fillna("").astype("string").str.split(";", n=1).str[0].str.strip()


def usable(catalog: pd.DataFrame) -> pd.DataFrame:
    """The rows later stages work on."""
    return catalog[catalog["status"] == OK].reset_index(drop=True)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
