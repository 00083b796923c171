"""Synthetic images of every troublesome kind, each with the status and reason preprocess owes it.

Used by tests/test_preprocess.py and tests/test_hotels50k.py (the fault server serves them).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo_like(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A smooth random pattern: distinct seeds give perceptual hashes far apart."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def jpeg_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=save_args.pop("quality", 90), **save_args)
    return buffer.getvalue()


def png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas: a decompression bomb by its header."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    # IHDR is the first chunk: 8-byte signature, 4 length, 4 type, then width and height.
    data[16:24] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF
    data[29:33] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated() -> bytes:
    """Stored landscape 300x200 with a red top-left corner, EXIF orientation 6 (turn 90 CW)."""
    image = photo_like(7, (300, 200))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg_bytes(image, exif=exif.tobytes())


def sixteen_bit_grey() -> bytes:
    """A 16-bit greyscale PNG at half scale (32768): 8-bit scaling gives about 128, clipping 255."""
    values = np.full((200, 200), 32768, dtype=np.uint16)
    values[:, :100] = 16384
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def palette_with_alpha() -> bytes:
    """A palette PNG whose left half is transparent: it must come out white, not black."""
    image = Image.new("P", (200, 200), 1)
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    image.paste(0, (0, 0, 100, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


# name -> (expected status, expected reason); files are written in this order
EXPECTED: dict[str, tuple[str, str]] = {
    "a_base.jpg": ("ok", ""),
    "b_other.jpg": ("ok", ""),
    "c_exact_copy.jpg": ("duplicate", "exact_duplicate; kept a_base.jpg: identical file, the first in catalog order"),
    "d_near_copy.jpg": ("duplicate", "near_duplicate; kept a_base.jpg: more pixels (320x240 vs 300x225)"),
    "e_truncated.jpg": ("rejected", "truncated"),
    "f_zero.jpg": ("rejected", "empty_file"),
    "g_text.jpg": ("rejected", "not_an_image"),
    "h_bomb.png": ("rejected", "decompression_bomb"),
    "i_cmyk.jpg": ("ok", ""),
    "j_16bit.png": ("ok", ""),
    "k_palette_alpha.png": ("ok", ""),
    "l_exif_rotated.jpg": ("ok", ""),
    "m_tiny.jpg": ("rejected", "too_small"),
}


def write_troublesome_images(folder: Path) -> dict[str, tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    base = jpeg_bytes(photo_like(1))
    near = photo_like(1).resize((300, 225), Image.Resampling.LANCZOS)  # resized and re-encoded
    files = {
        "a_base.jpg": base,
        "b_other.jpg": jpeg_bytes(photo_like(2)),
        "c_exact_copy.jpg": base,
        "d_near_copy.jpg": jpeg_bytes(near, quality=70),
        "e_truncated.jpg": jpeg_bytes(photo_like(3))[: len(base) // 2],
        "f_zero.jpg": b"",
        "g_text.jpg": b"<html><body>404 Not Found</body></html>\n",
        "h_bomb.png": png_with_declared_size(100_000, 100_000),
        "i_cmyk.jpg": jpeg_bytes(photo_like(4).convert("CMYK")),
        "j_16bit.png": sixteen_bit_grey(),
        "k_palette_alpha.png": palette_with_alpha(),
        "l_exif_rotated.jpg": exif_rotated(),
        "m_tiny.jpg": jpeg_bytes(photo_like(5, (64, 48))),
    }
    assert list(files) == list(EXPECTED)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return dict(EXPECTED)
