"""Deciding a catalog: every new row checked in chunks on a thread pool, the catalog saved after each chunk."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from alienstay.preprocess.decoding import PreprocessSettings, check_image, prepared_name
from alienstay.preprocess.duplicates import DuplicateIndex, index_kept, mark_duplicates
from alienstay.workspace import catalog as cat


def apply_decisions(catalog: pd.DataFrame, decided: list[dict]) -> pd.DataFrame:
    """Write decided fields into their rows (matched by image id); other rows untouched."""
    if not decided:
        return catalog
    updates = pd.DataFrame(decided).set_index("image_id")
    catalog = catalog.set_index("image_id", drop=False)
    for column in updates.columns:
        values = updates[column].dropna()
        catalog.loc[values.index, column] = values.astype(catalog[column].dtype)
    return cat.conform(catalog.reset_index(drop=True))


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def preprocess_catalog(
    catalog: pd.DataFrame,
    prepared_dir: Path,
    settings: PreprocessSettings = PreprocessSettings(),
    *,
    chunk_size: int = 64,
    on_chunk: Callable[[pd.DataFrame], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Decide every ``new`` row; return the updated catalog.

    ``on_chunk`` receives the catalog after each chunk (the CLI saves it there), so work
    done before an interruption is kept. Decoding runs on a thread pool: Pillow releases
    the GIL while decoding and resizing, and threads share the process-wide Pillow limits.
    """
    catalog = requeue_missing_copies(cat.conform(catalog))
    todo = catalog[catalog["status"] == cat.NEW][["image_id", "path"]].to_dict("records")
    index = index_kept(catalog, settings.near_threshold)
    # A catalog save rewrites the whole table: on a large catalog, fewer and larger chunks.
    chunk_size = max(chunk_size, len(todo) // 200)
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, settings.max_pixels
    try:
        return decide_in_chunks(catalog, todo, index, prepared_dir, settings, settings.workers, chunk_size,
                                on_chunk, on_progress)  # fmt: skip
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit


def requeue_missing_copies(catalog: pd.DataFrame) -> pd.DataFrame:
    """An ``ok`` row whose prepared copy has gone is decided again, so rerunning preprocess mends it."""
    ok = catalog["status"] == cat.OK
    present = catalog["prepared_path"].map(lambda p: isinstance(p, str) and Path(p).is_file())
    catalog.loc[ok & ~present.astype(bool), "status"] = cat.NEW
    return catalog


def decide_in_chunks(
    catalog: pd.DataFrame,
    todo: list[dict],
    index: DuplicateIndex,
    prepared_dir: Path,
    settings: PreprocessSettings,
    workers: int,
    chunk_size: int,
    on_chunk: Callable[[pd.DataFrame], None] | None,
    on_progress: Callable[[int], None] | None,
) -> pd.DataFrame:
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        # Our own header check rejects these first; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for batch in chunks(todo, chunk_size):
            checked = pool.map(
                lambda row: check_image(
                    Path(row["path"]) if pd.notna(row["path"]) else Path(""),
                    prepared_dir / prepared_name(row["image_id"]),
                    settings,
                ),
                batch,
            )
            decided = []
            for row, fields in zip(batch, checked):
                decided.append({"image_id": row["image_id"], "duplicate_of": pd.NA, **fields})
                if on_progress:
                    on_progress(1)
            catalog = apply_decisions(catalog, mark_duplicates(decided, index))
            if on_chunk:
                on_chunk(catalog)
    return catalog


def summarise(catalog: pd.DataFrame, decided_ids: Iterable[str] = ()) -> pd.DataFrame:
    """Kept and dropped, and why: one row per (status, reason code), whole catalog and this run.

    A reason's detail (which copy was kept, how many frames) stays in the catalog; the
    summary counts by its code, so it has a handful of rows whatever the catalog's size.
    """
    decided_ids = set(decided_ids)
    frame = catalog.assign(
        reason=cat.reason_codes(catalog["reason"]).replace("", "-"),
        this_run=catalog["image_id"].isin(decided_ids).astype(int),
    )
    summary = (
        frame.groupby(["status", "reason"], dropna=False)
        .agg(images=("image_id", "size"), this_run=("this_run", "sum"))
        .reset_index()
        .sort_values(["status", "images"], ascending=[True, False])
        .reset_index(drop=True)
    )
    return summary
