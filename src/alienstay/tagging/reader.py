"""The reader: catalog rows -> batches of pixel tensors, decoded ahead of the model.

A torch DataLoader whose worker processes decode the prepared JPEGs while the model runs;
photos already tagged are left out before anything is read. The captioner reuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from PIL import Image

from alienstay.workspace import catalog as cat


@dataclass(frozen=True)
class DecodeFailure:
    image_id: str
    path: str
    reason: str


class PreparedImages(torch.utils.data.Dataset):
    """Catalog rows -> (position, image_id, pixels or None, DecodeFailure or None); runs in worker processes."""

    def __init__(self, rows: pd.DataFrame, transform) -> None:
        self.positions = rows["position"].to_numpy()
        self.ids = rows["image_id"].astype(str).tolist()
        self.paths = rows["pixels_path"].astype(str).tolist()
        self.transform = transform
        # The JPEG decoder can scale by 1/2, 1/4, 1/8 while decoding (never below the size
        # asked for): a 640 px photo the model sees at 224 px decodes at 320 px, far cheaper.
        self.draft_side = getattr(transform, "input_size", 0) or None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_id, path = self.ids[index], self.paths[index]
        try:
            with Image.open(path) as image:
                if self.draft_side:
                    image.draft("RGB", (self.draft_side, self.draft_side))
                pixels = self.transform(image.convert("RGB"))
        except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
            return int(self.positions[index]), image_id, None, DecodeFailure(
                image_id, path, f"{type(error).__name__}: {error}"[:300]
            )
        return int(self.positions[index]), image_id, pixels, None


@dataclass
class ImageBatch:
    positions: list[int]
    ids: list[str]
    pixels: torch.Tensor | None  # (B, 3, H, W); None when every photo of the batch failed
    failures: list[DecodeFailure] = field(default_factory=list)


def collate_images(items: list) -> ImageBatch:
    ok = [item for item in items if item[2] is not None]
    failures = [item[3] for item in items if item[2] is None]
    return ImageBatch(
        positions=[item[0] for item in ok],
        ids=[item[1] for item in ok],
        pixels=torch.stack([item[2] for item in ok]) if ok else None,
        failures=failures,
    )


def _single_thread_worker(_: int) -> None:
    # Workers only decode and resize; the main process's threads belong to the model.
    torch.set_num_threads(1)


def pending_images(catalog: pd.DataFrame, done_ids: Iterable[str]) -> pd.DataFrame:
    """Usable catalog rows not yet tagged, with their catalog position and the file to read pixels from."""
    rows = cat.usable(catalog)
    rows = rows.assign(position=np.arange(len(rows)))
    prepared = rows["prepared_path"].astype("string")
    # prepared_path is the agreed input; the original is a fallback for catalogs made without preprocess.
    rows["pixels_path"] = prepared.where(prepared.notna() & (prepared != ""), rows["path"].astype("string"))
    done = set(done_ids)
    if done:
        rows = rows[~rows["image_id"].astype(str).isin(done)]
    return rows[["position", "image_id", "pixels_path"]].reset_index(drop=True)


def fixed_blocks(positions: np.ndarray, batch_size: int) -> list[list[int]]:
    """Row indices grouped by catalog block (position // batch_size), in order.

    A batch is always the rows of one block, whatever was tagged before: a run resumed after a
    kill (shards end at a batch's end) composes its batches as the uninterrupted run did, and on
    a GPU, where a row's bf16 result depends on the batch's shape, gives the same tags bit for bit."""
    positions = np.asarray(positions, dtype=np.int64)
    if not len(positions):
        return []
    cuts = np.flatnonzero(np.diff(positions // max(1, batch_size))) + 1
    return [chunk.tolist() for chunk in np.split(np.arange(len(positions)), cuts)]


def image_batches(rows: pd.DataFrame, transform, batch_size: int = 32, workers: int = 1) -> Iterator[ImageBatch]:
    """The reader: pixel batches of fixed catalog blocks (:func:`fixed_blocks`), decoded ahead by `workers` processes."""
    loader = torch.utils.data.DataLoader(
        PreparedImages(rows, transform),
        batch_sampler=fixed_blocks(rows["position"].to_numpy(), batch_size),
        num_workers=workers,
        collate_fn=collate_images,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    yield from loader
