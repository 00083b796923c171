"""One file: decode-check, bomb guard, first frame of an animation, orientation, RGB, size, prepared copy."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import atomic_path

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

NOT_A_FILE = "not_a_file"  # a directory (or a device) where a photo file was expected
UNREADABLE = "unreadable"  # the file exists but cannot be read (permissions, I/O error)
FIRST_FRAME = "first_frame"  # status ok: an animation or multi-page file, its first frame kept

# Multi-frame formats whose first frame is what a viewer shows first; MPO's extra frames are
# a camera's depth map or preview, not more pictures, so they are not worth a remark.
MULTI_FRAME_FORMATS = {"GIF", "TIFF", "PNG", "WEBP"}


@dataclass(frozen=True)
class PreprocessSettings:
    """What the preprocess stage is asked to do (one class for the stage, the CLI and each file's check)."""

    min_side: int = DEFAULT_MIN_SIDE  # reject images whose shorter side is below this
    max_side: int = DEFAULT_MAX_SIDE  # longer side of the prepared copy
    near_threshold: int = DEFAULT_NEAR_THRESHOLD  # perceptual-hash Hamming distance for near duplicates (-1: off)
    max_pixels: int = DEFAULT_MAX_PIXELS  # the decompression-bomb guard
    workers: int = 2  # decoding threads


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


def check_image(path: Path, target: Path, settings: PreprocessSettings) -> dict:
    """Decode one file and write its prepared copy; return the catalog fields it decides.

    Never raises for a bad file: every refusal becomes ``status="rejected"`` and a reason.
    """
    path = Path(path)
    if not path.is_file():
        reason = NOT_A_FILE if path.exists() and str(path) not in {"", "."} else MISSING_FILE
        return {"status": cat.REJECTED, "reason": reason}
    try:
        found: dict = {"bytes": path.stat().st_size, "sha256": cat.sha256_of(path)}
    except OSError as error:
        return {"status": cat.REJECTED, "reason": f"{UNREADABLE}; {type(error).__name__}: {error.strerror}"}
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
            frames = getattr(image, "n_frames", 1)
            image.load()  # the first frame: an animation or a multi-page scan is one photo here
            upright = ImageOps.exif_transpose(image)
            rgb = to_rgb(upright)
    except Exception as error:  # noqa: BLE001 - one broken file must never stop the run
        return {**found, "status": cat.REJECTED, "reason": decode_failure_reason(error)}

    found.update(width=rgb.width, height=rgb.height, phash=str(imagehash.phash(rgb)))
    if min(rgb.size) < settings.min_side:
        return {**found, "status": cat.REJECTED, "reason": TOO_SMALL}
    with atomic_path(target) as tmp:
        fit_within(rgb, settings.max_side).save(tmp, format="JPEG", quality=JPEG_QUALITY)
    note = f"{FIRST_FRAME}; frame 1 of {frames} kept" if frames > 1 and found["format"] in MULTI_FRAME_FORMATS else ""
    return {**found, "prepared_path": str(target), "status": cat.OK, "reason": note}

