"""Which photos are the same photo, by the catalog's own evidence, aligned to embedding rows.

"More like this" must not answer with the photo itself: an exact copy (same sha256), a near
copy (perceptual hashes within preprocess's Hamming threshold) or a row preprocess tied to it
(`duplicate_of`). Held as numpy columns (8 bytes a photo each), not strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from alienstay.preprocess import DEFAULT_NEAR_THRESHOLD
from alienstay.workspace.embeddings import Vectors
from alienstay.workspace.layout import Workspace

NO_HASH = np.uint64(0)


def _hex64(values: pd.Series, digits: int = 16) -> np.ndarray:
    """First 64 bits of hex strings (sha256 or phash) as uint64; missing -> 0 (matches nothing)."""
    out = np.zeros(len(values), dtype=np.uint64)
    for i, text in enumerate(values.tolist()):
        if isinstance(text, str) and text:
            try:
                out[i] = np.uint64(int(text[:digits], 16))
            except ValueError:
                pass
    return out


@dataclass
class DuplicateKeys:
    sha: np.ndarray  # uint64 a row: the sha256's first 64 bits
    phash: np.ndarray  # uint64 a row
    group: np.ndarray  # int64 a row: rows tied by duplicate_of share a group
    near_threshold: int = DEFAULT_NEAR_THRESHOLD

    @classmethod
    def of(cls, ws: Workspace, vectors: Vectors) -> "DuplicateKeys":
        n = len(vectors)
        keys = cls(np.zeros(n, np.uint64), np.zeros(n, np.uint64), np.arange(n, dtype=np.int64))
        if not ws.catalog_path.exists():
            return keys
        present = set(pq.read_schema(ws.catalog_path).names)
        columns = [c for c in ("image_id", "sha256", "phash", "duplicate_of") if c in present]
        catalog = pd.read_parquet(ws.catalog_path, columns=columns).drop_duplicates("image_id")
        ids = pd.Series(vectors.ids.to_pylist(), dtype="string")
        aligned = pd.DataFrame({"image_id": ids}).merge(catalog, on="image_id", how="left")
        if "sha256" in aligned:
            keys.sha = _hex64(aligned["sha256"])
        if "phash" in aligned:
            keys.phash = _hex64(aligned["phash"])
        if "duplicate_of" in catalog:
            # A kept photo and the rows pointing at it are one group, named by the kept photo.
            root = catalog["duplicate_of"].astype("string").fillna(catalog["image_id"].astype("string"))
            group_of = dict(zip(catalog["image_id"].astype(str), root.astype(str)))
            names = pd.Series([group_of.get(i, i) for i in ids.tolist()])
            keys.group = pd.factorize(names)[0].astype(np.int64)
        return keys

    def same_photo(self, me: int, rows: np.ndarray) -> np.ndarray:
        """Mask over `rows`: True where the row is the photo `me` or a copy of it."""
        rows = np.asarray(rows, dtype=np.int64)
        same = (rows == me) | (self.group[rows] == self.group[me])
        if self.sha[me] != NO_HASH:
            same |= self.sha[rows] == self.sha[me]
        if self.phash[me] != NO_HASH:
            distance = np.bitwise_count(self.phash[rows] ^ self.phash[me])
            same |= (distance <= self.near_threshold) & (self.phash[rows] != NO_HASH)
        return same
