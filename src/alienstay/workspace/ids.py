"""Image id -> row of a table: the one mapping the gallery's catalog and clusters, the word index and the
embeddings use (`IdRows`), vectorised.

The ids are held once as fixed-width bytes (UTF-8, zero-padded), sorted, with the permutation
back to table rows; `rows(ids)` answers a whole array with one `np.searchsorted`, `row(id)` is
the same for one id. No dict of a million Python strings (about 100 MB a process), and no
hand-written binary search over Arrow strings (~20 us an id). UTF-8's byte order is the code
points' order, so the sort is the one Python's `sorted` gives.

A table's ids must be distinct (`DuplicateIds` otherwise: which row would an id mean?); a
table that may list a photo twice keeps its first row of each (`first_rows`) before it is
mapped. An id containing a NUL character cannot be told from a shorter one in this form: such
ids are refused when mapped and never found when looked up.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MISSING = -1  # the row `rows` gives an id the table does not have


class DuplicateIds(ValueError):
    """A table lists an image id more than once: its rows cannot be found by id."""


def as_strings(ids: pa.Array | pa.ChunkedArray | Iterable[str]) -> pa.StringArray:
    """Ids as one Arrow string array (a list, a chunked or large-string column all become one)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks() if ids.num_chunks else pa.array([], pa.string())
    if not isinstance(ids, pa.Array):
        ids = pa.array(list(ids), pa.string())
    return ids.cast(pa.string())


def fixed_width(ids: pa.StringArray, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ids as a numpy bytes array of `width` (default: the longest id), and a mask of those that do
    not fit (longer than `width`) or contain a NUL byte: those can only be told apart as strings."""
    n = len(ids)
    raw = pc.binary_length(ids).to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
    lengths = np.nan_to_num(np.asarray(raw, np.float64)).astype(np.int64)  # a null id is empty (and refused)
    width = max(int(lengths.max(initial=0)) if width is None else width, 1)
    offsets = np.frombuffer(ids.buffers()[1], np.int32, n + 1, ids.offset * 4) if n else np.zeros(1, np.int32)
    data = np.frombuffer(ids.buffers()[2], np.uint8) if n and ids.buffers()[2] is not None else np.zeros(0, np.uint8)
    unfit = lengths > width
    kept = np.where(unfit, 0, lengths)
    starts = offsets[:-1].astype(np.int64)
    if n and (kept == width).all():  # every id the same length (generated ids): the bytes already are the grid
        # A view on the Arrow buffer, no copy (the caller keeps `ids` alive): a mapped word index's ids
        # stay in the shared page cache instead of 28 MB a million ids in every worker.
        grid = data[starts[0] : starts[0] + n * width].reshape(n, width)
        nul = pc.match_substring(ids, "\0").to_numpy(zero_copy_only=False)  # no n x width temporary
        return grid.view(f"S{width}").reshape(n), np.asarray(nul, bool)
    # A byte position at a time (n-sized steps, no n x width temporaries), into rows of the transposed
    # grid so each step writes contiguously; one transposing copy at the end.
    columns = np.zeros((width, n), np.uint8)
    for column in range(int(kept.max(initial=0))):
        has = kept > column
        if has.all():
            columns[column] = data[starts + column]
        else:
            columns[column, has] = data[starts[has] + column]
    grid = np.ascontiguousarray(columns.T)
    unfit |= (grid == 0).sum(axis=1) > width - kept  # a NUL among an id's own bytes
    return grid.view(f"S{width}").reshape(n), unfit


class IdRows:
    """Distinct image ids (in table order) and their sorted form: id -> row, one or many at a time."""

    def __init__(self, ids: pa.Array | pa.ChunkedArray | Iterable[str], sorted_already: bool = False) -> None:
        """`sorted_already`: the ids are in ascending order (the word index writes them so): no sort made."""
        self.ids = as_strings(ids)
        if self.ids.null_count:
            raise ValueError(f"{self.ids.null_count} rows have no image id: every row needs one to be found by id.")
        keys, unfit = fixed_width(self.ids)
        if unfit.any():
            bad = self.ids[int(np.flatnonzero(unfit)[0])].as_py()
            raise ValueError(f"image id {bad!r} contains a NUL character: rename the file it stands for and ingest it again.")
        # sorted position -> row; None when they are the same (the word index: 8 MB a million ids saved)
        self.order: np.ndarray | None = None
        if not sorted_already:
            rows = pc.array_sort_indices(self.ids).to_numpy()
            self.order = rows.astype(np.int32 if len(rows) < 2**31 else np.int64)  # 4 MB a million ids, not 8
        self.sorted = keys if self.order is None else keys[self.order]
        if len(self.sorted) > 1 and not (self.sorted[1:] > self.sorted[:-1]).all():
            same = np.flatnonzero(self.sorted[1:] <= self.sorted[:-1])
            if sorted_already and (self.sorted[1:][same] < self.sorted[:-1][same]).any():
                raise ValueError("ids said to be sorted are not: map them without sorted_already.")
            example = self.sorted[int(same[0])].decode()
            raise DuplicateIds(f"{len(same)} image ids appear more than once (e.g. {example!r}): "
                               f"keep one row each (`first_rows`) before mapping them.")

    def __len__(self) -> int:
        return len(self.sorted)

    @property
    def width(self) -> int:
        return self.sorted.dtype.itemsize

    def rows(self, image_ids: pa.Array | pa.ChunkedArray | Iterable[str]) -> np.ndarray:
        """The row of each id, in the order given (int64; MISSING where the table has no such id)."""
        asked = as_strings(image_ids)
        if not len(self.sorted) or not len(asked):
            return np.full(len(asked), MISSING, np.int64)
        keys, unfit = fixed_width(asked.fill_null(""), self.width)
        at = np.searchsorted(self.sorted, keys).clip(max=len(self.sorted) - 1)
        found = (self.sorted[at] == keys) & ~unfit
        if asked.null_count:
            found &= asked.is_valid().to_numpy(zero_copy_only=False)
        return np.where(found, at if self.order is None else self.order[at], MISSING).astype(np.int64, copy=False)

    def row(self, image_id: str) -> int | None:
        """The row of one id, or None: the same search as `rows`, without building arrays for one id."""
        if not isinstance(image_id, str) or not len(self.sorted):
            return None
        key = image_id.encode("utf-8", "surrogatepass")
        if len(key) > self.width or b"\0" in key:
            return None
        at = min(int(np.searchsorted(self.sorted, np.bytes_(key))), len(self.sorted) - 1)
        if self.sorted[at] != key:
            return None
        return at if self.order is None else int(self.order[at])

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.row(image_id) is not None


def first_rows(ids: pa.Array | pa.ChunkedArray | Iterable[str]) -> np.ndarray:
    """Rows (ascending) that keep the first of each distinct id: what a table that may list a photo twice
    is cut to before `IdRows` maps it (the first row is the one a lookup by id always gave)."""
    ids = as_strings(ids)
    if len(ids) < 2:
        return np.arange(len(ids), dtype=np.int64)
    order = pc.array_sort_indices(ids).to_numpy().astype(np.int64)  # stable: equal ids in table order
    keys, _ = fixed_width(ids.fill_null(""))
    ranked = keys[order]
    valid = ids.is_valid().to_numpy(zero_copy_only=False)[order]
    first = np.r_[True, (ranked[1:] != ranked[:-1]) | (valid[1:] != valid[:-1])]
    return np.sort(order[first])
