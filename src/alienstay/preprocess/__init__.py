"""Preprocess: decide, for every new catalog row, whether later stages may read it.

Why each step:

1. **Decode-check** (empty file, not an image, unsupported format, truncated, a folder
   where a file was expected). A photo collection always holds some files that only look
   like photos: zero-byte leftovers of interrupted copies, HTML error pages saved with a
   ``.jpg`` name, JPEGs cut short. Decoding every pixel once here means no later stage
   (tagging, editing, the web gallery) ever meets a file it cannot read, and each refusal
   is recorded with its reason instead of crashing a long run half-way.
2. **Decompression-bomb guard.** A tiny file can declare a gigantic canvas (a PNG header
   saying 100,000 x 100,000 pixels needs 30 GB of RAM to decode). The pixel count is read
   from the header and refused *before* decoding, so one hostile or broken file cannot take
   the machine down.
3. **First frame.** An animated GIF / PNG / WebP or a multi-page TIFF is one photo here: its
   first frame, what a viewer shows first, with ``first_frame; frame 1 of N kept`` as the
   row's reason so nobody mistakes it for the whole file.
4. **EXIF orientation.** Cameras store pixels sideways and a tag saying how to turn them.
   Models and the gallery see raw pixels, so a photo taken upright must be turned upright
   here, once, or a bed would be tagged and restyled lying on its side.
5. **RGB conversion.** Models expect three 8-bit channels. CMYK print files, palette
   images, greyscale (with alpha: LA) and 16-bit scans must be mapped to RGB correctly:
   transparency is composited on white (not on black, which a naive conversion produces),
   and 16-bit values are scaled down (not clipped, which turns most of a 16-bit photo white).
6. **Minimum size.** Thumbnails below ``min_side`` pixels (a 1 x 4000 strip included)
   carry too little detail to tag and would be blown up into mush by a 224-px model input
   or a 512-px diffusion edit.
7. **Exact and near duplicates.** The same photo uploaded twice (sha256 equal) or
   re-encoded / resized (perceptual hash within a few bits) would count twice in every
   statistic, bias clusters and show twice in search results. The best copy of each group
   is kept (``duplicates``: the largest, least compressed), the rest point to it
   (``duplicate_of``, and the reason names it) and keep their prepared copy.
8. **A prepared copy** (RGB JPEG, longer side <= ``max_side``) that every later stage
   reads: one decode here instead of one a stage, and a bounded size so memory per image
   is predictable. The original file is never modified or deleted.

The stage is resumable: rows already decided (any status but ``new``) are skipped, and the
catalog is saved after every chunk, so an interrupted run loses at most one chunk of work.

Modules: ``decoding`` (one file), ``duplicates`` (groups and the best copy), ``deciding`` (the catalog in
chunks). The stage itself is ``alienstay.stages.preprocess``.
"""

from alienstay.preprocess.deciding import (
    apply_decisions,
    chunks,
    decide_in_chunks,
    preprocess_catalog,
    requeue_missing_copies,
    summarise,
)
from alienstay.preprocess.decoding import (
    DECODE_ERROR,
    DECOMPRESSION_BOMB,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    DEFAULT_MIN_SIDE,
    DEFAULT_NEAR_THRESHOLD,
    EMPTY_FILE,
    FIRST_FRAME,
    JPEG_QUALITY,
    MISSING_FILE,
    MULTI_FRAME_FORMATS,
    NOT_A_FILE,
    NOT_AN_IMAGE,
    SUPPORTED_FORMATS,
    TOO_SMALL,
    TRUNCATED,
    UNREADABLE,
    UNSUPPORTED_FORMAT,
    PreprocessSettings,
    check_image,
    decode_failure_reason,
    fit_within,
    prepared_name,
    scale_to_uint8,
    to_rgb,
)
from alienstay.preprocess.duplicates import (
    EXACT_DUPLICATE,
    FORMAT_FIDELITY,
    NEAR_DUPLICATE,
    Copy,
    DuplicateIndex,
    duplicate_reason,
    index_kept,
    mark_duplicates,
    phash_bits,
)

__all__ = [name for name in dir() if not name.startswith("_")]
