"""Exact (sha256) and near (perceptual hash) duplicates; of each group the best copy is kept.

The best copy is the largest (most pixels), then the least lossy format (PNG / TIFF / BMP
over JPEG / WebP over a 256-colour GIF), then the least compressed (more bytes for the same
pixels); on a tie, the first in catalog order stays. A better copy arriving later (in a
later chunk or a later run) takes the group over: the copy kept so far, and every copy that
pointed to it, become duplicates of the new one. Each duplicate's reason names the copy
kept and why (``near_duplicate; kept b.jpg: more pixels (800x533 vs 400x300)``), and keeps
its prepared copy, so a person can compare the two and nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alienstay.workspace import catalog as cat

EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"

# How faithfully a format stores the same pixels: lossless > lossy > palette (256 colours).
FORMAT_FIDELITY = {"PNG": 2, "TIFF": 2, "BMP": 2, "JPEG": 1, "MPO": 1, "WEBP": 1, "GIF": 0}


def phash_bits(phash: str) -> np.uint64:
    return np.uint64(int(phash, 16))


def _int(value: object) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


@dataclass(frozen=True, slots=True)  # one a catalogued photo: slots keep a million of them small
class Copy:
    """What decides which copy of a photo to keep."""

    image_id: str
    sha256: str
    phash: str
    width: int = 0
    height: int = 0
    format: str = ""
    bytes: int = 0

    @classmethod
    def of(cls, row: dict) -> "Copy":
        fmt = row.get("format")
        return cls(
            str(row["image_id"]), str(row["sha256"]), str(row["phash"]), _int(row.get("width")),
            _int(row.get("height")), "" if fmt is None or pd.isna(fmt) else str(fmt), _int(row.get("bytes")),
        )  # fmt: skip

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def quality(self) -> tuple[int, int, int]:
        return self.pixels, FORMAT_FIDELITY.get(self.format, 1), self.bytes


def duplicate_reason(duplicate: Copy, kept: Copy) -> str:
    """``<kind>; kept <id>: <why that copy and not this one>``."""
    if duplicate.sha256 == kept.sha256:
        return f"{EXACT_DUPLICATE}; kept {kept.image_id}: identical file, the first in catalog order"
    if kept.pixels > duplicate.pixels:
        why = f"more pixels ({kept.width}x{kept.height} vs {duplicate.width}x{duplicate.height})"
    elif FORMAT_FIDELITY.get(kept.format, 1) > FORMAT_FIDELITY.get(duplicate.format, 1):
        why = f"same size, a less lossy format ({kept.format} vs {duplicate.format})"
    elif kept.bytes > duplicate.bytes:
        why = f"same size, less compressed ({kept.bytes} vs {duplicate.bytes} bytes)"
    else:
        why = "same size and quality, the first in catalog order"
    return f"{NEAR_DUPLICATE}; kept {kept.image_id}: {why}"


class DuplicateIndex:
    """The copies kept so far and their groups, to find exact and near duplicates of a new one.

    Near duplicates compare a 64-bit perceptual hash with every kept hash by XOR and a bit
    count, vectorised: a million kept images take a few milliseconds a query.
    """

    def __init__(self, near_threshold: int) -> None:
        self.near_threshold = near_threshold
        self.by_sha: dict[str, str] = {}  # sha256 of any copy in a group -> the group's kept id
        self.ids: list[str] = []  # kept ids, one a slot of ``hashes``
        self.slot: dict[str, int] = {}
        self.hashes = np.zeros(1024, dtype=np.uint64)  # grown by doubling: appends stay O(1)
        self.copies: dict[str, Copy] = {}
        self.members: dict[str, list[str]] = {}  # kept id -> the duplicates pointing to it

    def add(self, image_id: str, sha256: str, phash: str, copy: Copy | None = None) -> None:
        """Keep a copy: it starts a group of its own."""
        self.by_sha.setdefault(sha256, image_id)
        if len(self.ids) == self.hashes.size:
            self.hashes = np.concatenate([self.hashes, np.zeros_like(self.hashes)])
        self.hashes[len(self.ids)] = phash_bits(phash)
        self.slot[image_id] = len(self.ids)
        self.ids.append(image_id)
        self.copies[image_id] = copy or Copy(image_id, sha256, phash)
        self.members[image_id] = []

    def add_member(self, kept_id: str, copy: Copy) -> None:
        self.copies[copy.image_id] = copy
        self.members[kept_id].append(copy.image_id)
        self.by_sha.setdefault(copy.sha256, kept_id)

    def promote(self, copy: Copy, kept_id: str) -> list[str]:
        """``copy`` becomes the group's kept copy; returns the ids that now point to it."""
        moved = [kept_id, *self.members.pop(kept_id)]
        slot = self.slot.pop(kept_id)
        self.ids[slot], self.hashes[slot], self.slot[copy.image_id] = copy.image_id, phash_bits(copy.phash), slot
        self.copies[copy.image_id] = copy
        self.members[copy.image_id] = moved
        for member in [copy.image_id, *moved]:
            self.by_sha[self.copies[member].sha256] = copy.image_id
        return moved

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


def _copies(rows: pd.DataFrame) -> list[Copy]:
    # Column by column into plain lists, then one Copy a row: no dict of every column a row.
    text = [rows[c].astype(str).tolist() for c in ("image_id", "sha256", "phash")]
    size = [rows[c].fillna(0).astype("int64").tolist() for c in ("width", "height")]
    fmt, nbytes = rows["format"].fillna("").astype(str).tolist(), rows["bytes"].fillna(0).astype("int64").tolist()
    return [Copy(*values) for values in zip(*text, *size, fmt, nbytes)]


def index_kept(catalog: pd.DataFrame, near_threshold: int) -> DuplicateIndex:
    """The groups decided by earlier chunks and runs: kept rows and the duplicates pointing to them."""
    index = DuplicateIndex(near_threshold)
    for copy in _copies(catalog[catalog["status"] == cat.OK]):
        index.add(copy.image_id, copy.sha256, copy.phash, copy)
    duplicates = catalog[(catalog["status"] == cat.DUPLICATE) & catalog["duplicate_of"].isin(list(index.members))]
    for kept_id, copy in zip(duplicates["duplicate_of"], _copies(duplicates)):
        index.add_member(kept_id, copy)
    return index


def mark_duplicates(decided: list[dict], index: DuplicateIndex) -> list[dict]:
    """Mark every decoded row that repeats a kept one, keeping the best copy of each group.

    Returns ``decided`` plus one update a row decided earlier (an earlier chunk or run) that
    a better copy in this batch has demoted or re-pointed.
    """
    in_batch = {row["image_id"]: row for row in decided}
    earlier: dict[str, dict] = {}
    for row in decided:
        if row["status"] != cat.OK:
            continue
        copy = Copy.of(row)
        match = index.match(copy.sha256, copy.phash)
        if match is None:
            index.add(copy.image_id, copy.sha256, copy.phash, copy)
            continue
        kept = index.copies[match[0]]
        if copy.quality() > kept.quality():
            for member in index.promote(copy, kept.image_id):
                target = in_batch.get(member) or earlier.setdefault(member, {"image_id": member})
                reason = duplicate_reason(index.copies[member], copy)
                target.update(status=cat.DUPLICATE, duplicate_of=copy.image_id, reason=reason)
        else:
            index.add_member(kept.image_id, copy)
            row.update(status=cat.DUPLICATE, reason=duplicate_reason(copy, kept), duplicate_of=kept.image_id)
    return decided + list(earlier.values())
