"""Reading the gallery's word index: one build memory-mapped, a word's photos, a photo's rows.

The files are described in ``wordindex/layout.py``; ``wordindex/build.py`` writes them.
"""


from __future__ import annotations

import functools
import json
import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from alienstay.wordindex.layout import (
    ARRAYS,
    FORMAT,
    index_root,
    source_stamp,
)
from alienstay.workspace.ids import IdRows
from alienstay.workspace.layout import Workspace


def mapped(path: Path) -> np.ndarray:
    """A .npy file mapped read-only, read ahead of nothing: a request touches a few scattered
    pages, and the kernel's default read-ahead would map hundreds of kilobytes around each."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
        mm = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mm, "madvise"):
        mm.madvise(mmap.MADV_RANDOM)
    count = int(np.prod(shape)) if shape else 1
    array = np.frombuffer(mm, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")


@dataclass
class WordIndex:
    """One generation of the index, memory-mapped."""

    folder: Path
    meta: dict
    ids: pa.StringArray
    arrays: dict[str, np.ndarray]

    @classmethod
    def open(cls, ws: Workspace) -> "WordIndex | None":
        """The current build, or None when there is none or it is not of tags.parquet as it is now."""
        current = index_root(ws) / "current.json"
        try:
            pointer = json.loads(current.read_text())
            folder = index_root(ws) / pointer["generation"]
            meta = json.loads((folder / "meta.json").read_text())
            ids = pa.ipc.open_file(pa.memory_map(str(folder / "ids.arrow"))).read_all().column("image_id").combine_chunks()
            arrays = {name: mapped(folder / f"{name}.npy") for name in ARRAYS}
        except (OSError, ValueError, KeyError, pa.ArrowInvalid):
            return None
        if meta.get("format") != FORMAT or meta.get("source") != source_stamp(ws.tags_path):
            return None
        return cls(folder, meta, ids, arrays)

    @functools.cached_property
    def word_pairs(self) -> list[tuple[str, str]]:
        """(facet, tag) of each word code."""
        return [(w["facet"], w["tag"]) for w in self.meta["words"]]

    @property
    def size(self) -> int:
        return len(self.ids)

    def keys(self) -> dict[str, list[int]]:
        return self.meta["keys"]

    def posting(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        start, end, _ = self.meta["keys"][key]
        return self.arrays["post_ord"][start:end], self.arrays["post_prob"][start:end]

    def having_all(self, keys: list[str]) -> np.ndarray:
        """Ordinals (ascending) of the photos with every key selected: a byte-wise AND of bit columns."""
        bits = self.arrays["bits"]
        both = bits[self.meta["keys"][keys[0]][2]].copy()
        for key in keys[1:]:
            np.bitwise_and(both, bits[self.meta["keys"][key][2]], out=both)
        # Only the bytes with a match are unpacked; nonzero() on booleans is numpy's fast path
        # (on uint8 it is several times slower).
        nonzero = np.flatnonzero(both != 0)
        position = np.flatnonzero(np.unpackbits(both[nonzero]).view(bool))
        ordinals = nonzero[position >> 3] * 8 + (position & 7)  # packbits' order: a byte's high bit first
        return ordinals[ordinals < self.size]

    def probs_of(self, key: str, ordinals: np.ndarray) -> np.ndarray:
        """The word's probability for each of these photos; NaN where it is not selected."""
        return self.arrays["dense"][self.meta["keys"][key][2]][ordinals]

    def id_of(self, ordinal: int) -> str:
        return self.ids[int(ordinal)].as_py()

    def ids_of(self, ordinals: np.ndarray) -> list[str]:
        return self.ids.take(pa.array(np.asarray(ordinals, dtype=np.int64))).to_pylist()

    @functools.cached_property
    def id_rows(self) -> IdRows:
        """id -> ordinal (workspace/ids.py); the build writes the ids sorted, so no sort is made."""
        return IdRows(self.ids, sorted_already=True)

    def ordinal(self, image_id: str) -> int | None:
        return self.id_rows.row(image_id)

    def ordinals(self, image_ids: pa.Array | list[str]) -> np.ndarray:
        """The ordinal of each id (-1 where it has no tags), in the order given."""
        return self.id_rows.rows(image_ids)

    def chips_of(self, ordinals: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Several photos' selected rows at once: owner (position in `ordinals`), word codes, probs."""
        ptr = self.arrays["chips_ptr"]
        ords = np.asarray(ordinals, np.int64)
        starts, lengths = ptr[ords], ptr[ords + 1] - ptr[ords]
        owner = np.repeat(np.arange(len(ords)), lengths)
        rows = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(int(lengths.sum()))
        chips = self.arrays["chips"][rows]
        return owner, chips["word"], chips["prob"]

    def rows(self, ordinal: int) -> np.ndarray:
        """A photo's tag rows (fields word, prob, score, sel), in table order."""
        return np.array(self.arrays["rows"][self.arrays["rows_ptr"][ordinal] : self.arrays["rows_ptr"][ordinal + 1]])


# ---- search -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """One page of a search: how many photos match in all, and this page's ordinals and scores."""

    total: int
    ordinals: np.ndarray
    scores: np.ndarray


NOTHING = Found(0, np.zeros(0, np.int64), np.zeros(0, np.float64))


def search(index: WordIndex | None, words: list[str], usable: np.ndarray | None, start: int = 0, count: int = 120) -> Found:
    """Photos that have EVERY word among their selected tags, best first; rows [start, start+count).

    Rank: the sum of the matched words' probabilities (float64, added in the order the words
    are given); ties by image id. Only photos where `usable[ordinal]` is set are counted.
    Cost: one word is a slice of its posting list; several words AND their bit columns (microseconds
    at a million photos, whatever the words' frequency), unpack the matches (grows with their
    number: about a millisecond for two common words), look their probabilities up in the dense
    columns and rank only what the page needs.
    """
    if index is None or not words or any(w not in index.keys() for w in words):
        return NOTHING
    if len(words) == 1:
        ords, probs = index.posting(words[0])
        if usable is not None:
            keep = usable[ords]
            ords, probs = ords[keep], probs[keep]
        page = slice(start, start + count)
        return Found(len(ords), np.asarray(ords[page], np.int64), np.asarray(probs[page], np.float64))
    candidates = index.having_all(words)
    if usable is not None:
        candidates = candidates[usable[candidates]]
    scores = np.zeros(len(candidates), np.float64)
    for w in words:  # in the words' order, as today's pandas sum adds them
        scores += index.probs_of(w, candidates)
    return Found(len(candidates), *_page(candidates, scores, start, count))


def _page(ordinals: np.ndarray, scores: np.ndarray, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [start, start+count) of the order (score descending, ordinal ascending), ranking only the top."""
    wanted = start + count
    if wanted < len(ordinals):
        kth = np.partition(-scores, wanted - 1)[wanted - 1]
        top = np.flatnonzero(-scores <= kth)  # the best `wanted`, and every tie at the boundary
        ordinals, scores = ordinals[top], scores[top]
    order = np.lexsort((ordinals, -scores))[start:wanted]
    return ordinals[order], scores[order]


def count(index: WordIndex | None, word: str, usable: np.ndarray | None) -> int:
    """How many (usable) photos have this word selected."""
    if index is None or word not in index.keys():
        return 0
    ords, _ = index.posting(word)
    return int(len(ords) if usable is None else np.count_nonzero(usable[ords]))
