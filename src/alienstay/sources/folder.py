"""Ingest any folder of photos (any depth) into the catalog."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from alienstay import catalog as cat

# Decided by extension only; whether a file really decodes is preprocess's question.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def find_photos(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )


def catalog_folder(root: Path) -> pd.DataFrame:
    """One row a photo file; the image id is its path relative to ``root``."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: pass a folder of photos.")
    rows = []
    for path in find_photos(root):
        rows.append(
            {
                "image_id": path.relative_to(root).as_posix(),
                "split": "folder",
                "source": "folder",
                "hotel_id": path.parent.relative_to(root).as_posix() or ".",
                "path": str(path),
                "bytes": path.stat().st_size,
                "sha256": cat.sha256_of(path),
                "status": cat.NEW,
                "reason": "",
            }
        )
    return cat.conform(pd.DataFrame(rows)) if rows else cat.empty_catalog()


def merge_into(existing: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows whose image id is not catalogued yet; a re-ingest never duplicates a row."""
    if existing.empty:
        return cat.conform(new_rows)
    fresh = new_rows[~new_rows["image_id"].isin(existing["image_id"])]
    return cat.conform(pd.concat([existing, fresh], ignore_index=True))
