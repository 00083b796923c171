"""Preprocess: decide, for every new catalog row, whether later stages may read it.

Why each step:

1. **Decode-check** (empty file, not an image, unsupported format, truncated). A photo
   collection always holds some files that only look like photos: zero-byte leftovers of
   interrupted copies, HTML error pages saved with a ``.jpg`` name, JPEGs cut short.
   Decoding every pixel once here means no later stage (tagging, editing, the web
   gallery) ever meets a file it cannot read, and each refusal is recorded with its reason
   instead of crashing a long run half-way.
2. **Decompression-bomb guard.** A tiny file can declare a gigantic canvas (a PNG header
   saying 100,000 x 100,000 pixels needs 30 GB of RAM to decode). The pixel count is read
   from the header and refused *before* decoding, so one hostile or broken file cannot take
   the machine down.
3. **EXIF orientation.** Cameras store pixels sideways and a tag saying how to turn them.
   Models and the gallery see raw pixels, so a photo taken upright must be turned upright
   here, once, or a bed would be tagged and restyled lying on its side.
4. **RGB conversion.** Models expect three 8-bit channels. CMYK print files, palette
   images, greyscale and 16-bit scans must be mapped to RGB correctly: transparency is
   composited on white (not on black, which a naive conversion produces), and 16-bit
   values are scaled down (not clipped, which turns most of a 16-bit photo white).
5. **Minimum size.** Thumbnails below ``min_side`` pixels carry too little detail to tag
   and would be blown up into mush by a 224-px model input or a 512-px diffusion edit.
6. **Exact and near duplicates.** The same photo uploaded twice (sha256 equal) or
   re-encoded / resized (perceptual hash within a few bits) would count twice in every
   statistic, bias clusters and show twice in search results. The first one in catalog
   order is kept, the rest point to it (``duplicate_of``) and keep their prepared copy, so
   a person can compare the two and nothing is lost.
7. **A prepared copy** (RGB JPEG, longer side <= ``max_side``) that every later stage
   reads: one decode here instead of one a stage, and a bounded size so memory per image
   is predictable. The original file is never modified or deleted.

The stage is resumable: rows already decided (any status but ``new``) are skipped, and the
catalog is saved after every chunk, so an interrupted run loses at most one chunk of work.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from alienstay import catalog as cat
from alienstay.workspace import Workspace, atomic_path

DEFAULT_MIN_SIDE = 128
DEFAULT_MAX_SIDE = 640
DEFAULT_NEAR_THRESHOLD = 4
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default limit (about 0.25 GB of RGB a frame)
JPEG_QUALITY = 92

# Formats a browser, Pillow and the models all handle; anything else Pillow can open
# (PSD, ICNS, PCX, ...) is refused rather than half-supported.
SUPPORTED_FORMATS = {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"}

# reasons (the catalog's `reason` column)
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
TRUNCATED = "truncated"
DECOMPRESSION_BOMB = "decompression_bomb"
DECODE_ERROR = "decode_error"
TOO_SMALL = "too_small"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class Settings:
    min_side: int = DEFAULT_MIN_SIDE
    max_side: int = DEFAULT_MAX_SIDE
    near_threshold: int = DEFAULT_NEAR_THRESHOLD
    max_pixels: int = DEFAULT_MAX_PIXELS


# ---- one image -------------------------------------------------------------------------
def prepared_name(image_id: str) -> str:
    """A file name safe on every file system, unique per image id.

    The readable part keeps the id recognisable; the hash suffix keeps ids that differ only
    in characters replaced here (``a/b.jpg`` vs ``a_b.jpg``) apart.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", image_id).strip("._")[:80] or "image"
    digest = hashlib.sha1(image_id.encode("utf-8")).hexdigest()[:10]
    return f"{readable}-{digest}.jpg"


def scale_to_uint8(image: Image.Image) -> Image.Image:
    """Map a 16-bit or 32-bit greyscale image to 8 bits by scaling, not clipping."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else 65535.0
    elif image.mode.startswith("I;16") or values.max(initial=0) > 255:
        top = 65535.0  # 16-bit data, whether Pillow calls the mode "I;16" or "I"
    else:
        top = 255.0  # an "I" image that only holds 8-bit values
    scaled = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Three 8-bit channels; transparency composited on white, high bit depths scaled."""
    if image.mode in {"I", "F"} or image.mode.startswith("I;16"):
        image = scale_to_uint8(image)
    if image.mode == "P":
        # A palette may carry transparency; going through RGBA keeps it for compositing.
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "La", "RGBa"}:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def fit_within(image: Image.Image, max_side: int) -> Image.Image:
    if max(image.size) <= max_side:
        return image
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def decode_failure_reason(error: Exception) -> str:
    if isinstance(error, Image.DecompressionBombError):
        return DECOMPRESSION_BOMB
    if isinstance(error, UnidentifiedImageError):
        return NOT_AN_IMAGE
    message = str(error).lower()
    if "truncated" in message or "premature end" in message or "broken data stream" in message:
        return TRUNCATED
    return DECODE_ERROR


def check_image(path: Path, target: Path, settings: Settings) -> dict:
    """Decode one file and write its prepared copy; return the catalog fields it decides.

    Never raises for a bad file: every refusal becomes ``status="rejected"`` and a reason.
    """
    path = Path(path)
    if not path.is_file():
        return {"status": cat.REJECTED, "reason": MISSING_FILE}
    found: dict = {"bytes": path.stat().st_size, "sha256": cat.sha256_of(path)}
    if found["bytes"] == 0:
        return {**found, "status": cat.REJECTED, "reason": EMPTY_FILE}
    try:
        with Image.open(path) as image:
            found["format"] = image.format
            if image.format not in SUPPORTED_FORMATS:
                return {**found, "status": cat.REJECTED, "reason": f"{UNSUPPORTED_FORMAT}:{image.format}"}
            # The header alone gives the canvas size: refuse before allocating it.
            if image.width * image.height > settings.max_pixels:
                return {**found, "status": cat.REJECTED, "reason": DECOMPRESSION_BOMB}
            image.load()
            upright = ImageOps.exif_transpose(image)
            rgb = to_rgb(upright)
    except Exception as error:  # noqa: BLE001 - one broken file must never stop the run
        return {**found, "status": cat.REJECTED, "reason": decode_failure_reason(error)}

    found.update(width=rgb.width, height=rgb.height, phash=str(imagehash.phash(rgb)))
    if min(rgb.size) < settings.min_side:
        return {**found, "status": cat.REJECTED, "reason": TOO_SMALL}
    with atomic_path(target) as tmp:
        fit_within(rgb, settings.max_side).save(tmp, format="JPEG", quality=JPEG_QUALITY)
    return {**found, "prepared_path": str(target), "status": cat.OK, "reason": ""}


# ---- duplicates --------------------------------------------------------------------------
def phash_bits(phash: str) -> np.uint64:
    return np.uint64(int(phash, 16))


class DuplicateIndex:
    """The images kept so far, to find exact (sha256) and near (phash) duplicates of a new one.

    Near duplicates compare a 64-bit perceptual hash with every kept hash by XOR and a bit
    count, vectorised: a million kept images take a few milliseconds a query.
    """

    def __init__(self, near_threshold: int) -> None:
        self.near_threshold = near_threshold
        self.by_sha: dict[str, str] = {}
        self.ids: list[str] = []
        self.hashes = np.zeros(1024, dtype=np.uint64)  # grown by doubling: appends stay O(1)

    def add(self, image_id: str, sha256: str, phash: str) -> None:
        self.by_sha.setdefault(sha256, image_id)
        if len(self.ids) == self.hashes.size:
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
        self.hashes[len(self.ids)] = phash_bits(phash)
        self.ids.append(image_id)

    def match(self, sha256: str, phash: str) -> tuple[str, str] | None:
        """(kept image id, reason) if this image duplicates a kept one, else None."""
        if sha256 in self.by_sha:
            return self.by_sha[sha256], EXACT_DUPLICATE
        hashes = self.hashes[: len(self.ids)]
        if self.near_threshold < 0 or hashes.size == 0:
            return None
        distances = np.bitwise_count(hashes ^ phash_bits(phash))
        nearest = int(np.argmin(distances))
        if distances[nearest] <= self.near_threshold:
            return self.ids[nearest], NEAR_DUPLICATE
        return None


def index_kept(catalog: pd.DataFrame, near_threshold: int) -> DuplicateIndex:
    index = DuplicateIndex(near_threshold)
    for row in catalog[catalog["status"] == cat.OK].itertuples(index=False):
        index.add(row.image_id, row.sha256, row.phash)
    return index


def mark_duplicates(decided: list[dict], index: DuplicateIndex) -> list[dict]:
    """Turn every decoded row that repeats a kept one into a duplicate, in stable order."""
    for row in decided:
        if row["status"] != cat.OK:
            continue
        match = index.match(row["sha256"], row["phash"])
        if match is None:
            index.add(row["image_id"], row["sha256"], row["phash"])
        else:
            row.update(status=cat.DUPLICATE, reason=match[1], duplicate_of=match[0])
    return decided


# ---- the stage -------------------------------------------------------------------------
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
    settings: Settings = Settings(),
    *,
    workers: int = 2,
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
        return decide_in_chunks(catalog, todo, index, prepared_dir, settings, workers, chunk_size,
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
    settings: Settings,
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
    """Kept and dropped, and why: one row per (status, reason), whole catalog and this run."""
    decided_ids = set(decided_ids)
    frame = catalog.assign(
        reason=catalog["reason"].fillna("").replace("", "-"),
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


def run(
    ws: Workspace,
    settings: Settings = Settings(),
    *,
    workers: int = 2,
    show_progress: bool = True,
) -> pd.DataFrame:
    """The stage: read the catalog, decide new rows, save as it goes; return the summary."""
    from rich.progress import Progress

    catalog = ws.read_catalog()
    new_ids = catalog.loc[catalog["status"] == cat.NEW, "image_id"].tolist()
    ws.prepared_dir.mkdir(parents=True, exist_ok=True)
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("preprocess", total=len(new_ids))
        catalog = preprocess_catalog(
            catalog,
            ws.prepared_dir,
            settings,
            workers=workers,
            on_chunk=ws.write_catalog,
            on_progress=lambda n: progress.advance(task, n),
        )
    ws.write_catalog(catalog)
    ws.log_run("preprocess", **settings.__dict__, decided=len(new_ids))
    return summarise(catalog, new_ids)
