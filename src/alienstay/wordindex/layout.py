"""The gallery's word index: per-word posting lists and per-photo tag rows, memory-mapped.

Chosen by measurement (`python -m benchmarks gallery`): reading `tags.parquet` whole into
pandas cost 5.6 GB and 400 ms a search at 100,000 photos (issue 15). Posting lists sorted by
probability and columns mapped from disk answer a word in milliseconds at a million photos and
keep the server's memory flat: only the pages a request touches are read.

One build lives in `<workspace>/index/words/<generation>/`; `current.json` (written last, by
rename) names the generation, so a reader sees the old build or the new one, never a mix.

- `ids.arrow`: every tagged image id, sorted (code point order). A photo is its position, the
  *ordinal*, so "ties broken by image id" is "ties broken by ordinal".
- `post_ord.npy`, `post_prob.npy`: for every search key (`facet:tag`, and the bare `tag`) the
  photos that have it **selected**, best first (probability descending, then ordinal). A bare
  tag in several facets keeps, per photo, its highest probability.
- `bits.npy`: per posting list, one bit a photo (set: selected), packed 8 photos a byte: an
  AND of words is a byte-wise AND of 125 KB a word at a million photos, whose set bits are the
  matching photos in ordinal order.
- `dense.npy`: per posting list, every photo's probability by ordinal (NaN: not selected), so
  the matching photos' scores are looked up in one step.
- `rows.npy` with `rows_ptr.npy`: every tag row of photo i (word code, prob, score, selected,
  packed in 11 bytes, so a photo's 70 rows are one page) at `rows_ptr[i]:rows_ptr[i+1]`, in the
  table's order: the photo page. `chips.npy`, `chips_ptr.npy`: the selected rows only (word,
  prob), for the chips under each result.
- `meta.json`: the words in vocabulary order with their photo counts (the home page's chips),
  the keys' spans, and the stamp of the `tags.parquet` it was built from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alienstay.workspace.layout import Workspace

FORMAT = 4
ARRAYS = ("post_ord", "post_prob", "bits", "dense", "rows_ptr", "rows", "chips_ptr", "chips")
ROW = np.dtype([("word", "<i2"), ("prob", "<f4"), ("score", "<f4"), ("sel", "?")])  # packed: 11 bytes
CHIP = np.dtype([("word", "<i2"), ("prob", "<f4")])


def index_root(ws: Workspace) -> Path:
    return ws.root / "index" / "words"


def source_stamp(path: Path) -> list[int] | None:
    """What identifies one version of tags.parquet: size and modification time."""
    if not path.exists():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]
