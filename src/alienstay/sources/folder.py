"""Ingest any folder of photos (any depth) into the catalog.

Every entry with a photo's name gets a row. What is not a readable file is recorded as
``rejected`` with its reason, never left out in silence:

- a directory named like a photo (``holiday.jpg/``): ``not_a_file``;
- a symbolic link whose target lies outside the folder: ``symlink_outside_folder``, not
  followed unless ``follow_outside_links`` (a photo folder should not read the rest of the
  disk because someone put a link in it);
- a link to nothing: ``broken_symlink``; a cycle of links: ``symlink_loop``;
- a file that cannot be read: ``unreadable``.

Links inside the folder are followed (the target is read; preprocess then finds the copy a
duplicate). Links to directories are not descended into, so a link to a parent cannot loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from alienstay.workspace import catalog as cat

# Decided by extension only; whether a file really decodes is preprocess's question.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

NOT_A_FILE = "not_a_file"
SYMLINK_OUTSIDE = "symlink_outside_folder"
BROKEN_SYMLINK = "broken_symlink"
SYMLINK_LOOP = "symlink_loop"
UNREADABLE = "unreadable"


def find_photos(root: Path) -> list[Path]:
    """Every entry under ``root`` named like a photo (files, links, folders), sorted by path."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*files, *dirs]:
            if Path(name).suffix.lower() in PHOTO_SUFFIXES:
                found.append(Path(folder) / name)
    return sorted(found)


def problem_of(path: Path, root: Path, follow_outside_links: bool = False) -> str:
    """Why ``path`` is not a photo file to read ("" when it is one)."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError:
            return BROKEN_SYMLINK
        except (RuntimeError, OSError):  # RuntimeError: Python's own "symlink loop" report
            return SYMLINK_LOOP
        if not follow_outside_links and not target.is_relative_to(root):
            return SYMLINK_OUTSIDE
    if not path.is_file():
        return f"{NOT_A_FILE}; a directory" if path.is_dir() else NOT_A_FILE
    return ""


def catalog_folder(root: Path, follow_outside_links: bool = False) -> pd.DataFrame:
    """One row a photo entry; the image id is its path relative to ``root``."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: pass a folder of photos.")
    rows = []
    for path in find_photos(root):
        row = {
            "image_id": path.relative_to(root).as_posix(),
            "split": "folder",
            "source": "folder",
            "hotel_id": path.parent.relative_to(root).as_posix() or ".",
            "path": str(path),
            "status": cat.NEW,
            "reason": problem_of(path, root, follow_outside_links),
        }
        if not row["reason"]:
            try:
                row.update(bytes=path.stat().st_size, sha256=cat.sha256_of(path))
            except OSError as error:
                row["reason"] = f"{UNREADABLE}; {type(error).__name__}: {error.strerror}"
        if row["reason"]:
            row["status"] = cat.REJECTED
        rows.append(row)
    return cat.conform(pd.DataFrame(rows)) if rows else cat.empty_catalog()


def merge_into(existing: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows whose image id is not catalogued yet; a re-ingest never duplicates a row."""
    if existing.empty:
        return cat.conform(new_rows)
    fresh = new_rows[~new_rows["image_id"].isin(existing["image_id"])]
    return cat.conform(pd.concat([existing, fresh], ignore_index=True))
