"""The gallery's word index: per-word posting lists and per-photo tag rows, memory-mapped.

Chosen by measurement (`python -m benchmarks gallery`): reading `tags.parquet` whole into
pandas costs 5.6 GB and 400 ms a search at 100,000 photos; DuckDB over the Parquet file answers
a two-word AND in about a second at a million photos. Posting lists sorted by probability and
mapped from disk answer any word in milliseconds and keep the server's memory flat: only the
pages a request touches are read.

One build lives in `<workspace>/index/words/<generation>/`; `current.json` (written last, by
rename) names the generation, so a reader sees the old build or the new one, never a mix.

- `ids.arrow`: every tagged image id, sorted (code point order). A photo is its position, the
  *ordinal*, so "ties broken by image id" is "ties broken by ordinal".
- `post_ord.npy`, `post_prob.npy`: for every search key (`facet:tag`, and the bare `tag`) the
  photos that have it **selected**, best first (probability descending, then ordinal). A bare
  tag in several facets keeps, per photo, its highest probability.
- `rows.npy` with `rows_ptr.npy`: every tag row of photo i (word code, prob, score, selected,
  packed in 11 bytes, so a photo's 70 rows are one page) at `rows_ptr[i]:rows_ptr[i+1]`, in the
  table's order: the photo page. `chips.npy`, `chips_ptr.npy`: the selected rows only (word,
  prob), for the chips under each result.
- `meta.json`: the words in vocabulary order with their photo counts (the home page's chips),
  the keys' spans, and the stamp of the `tags.parquet` it was built from.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.workspace import Workspace, write_json

FORMAT = 3
ARRAYS = ("post_ord", "post_prob", "dense", "rows_ptr", "rows", "chips_ptr", "chips")
ROW = np.dtype([("word", "<i2"), ("prob", "<f4"), ("score", "<f4"), ("sel", "?")])  # packed: 11 bytes
CHIP = np.dtype([("word", "<i2"), ("prob", "<f4")])
BATCH_ROWS = 1 << 18
DENSE_SCAN_FRACTION = 16  # an AND whose rarest word is on more than 1/16 of the photos scans the columns


def index_root(ws: Workspace) -> Path:
    return ws.root / "index" / "words"


def source_stamp(path: Path) -> list[int] | None:
    """What identifies one version of tags.parquet: size and modification time."""
    if not path.exists():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


# ---- build ------------------------------------------------------------------------------------
COLUMNS = ["image_id", "facet", "tag", "prob", "score", "selected"]


class _Codes:
    """Strings to codes across batches: image ids (first sighting) and (facet, tag) words (vocabulary order)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: dict[tuple[str, str], int] = {}

    def batch(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """This batch's rows as (id code, word code), through each column's dictionary."""
        image_id, facet, tag = (batch.column(n) for n in ("image_id", "facet", "tag"))
        id_idx = image_id.indices.to_numpy(zero_copy_only=False)
        used = np.flatnonzero(np.bincount(id_idx, minlength=len(image_id.dictionary)))
        local = np.full(len(image_id.dictionary), -1, np.int64)
        names = image_id.dictionary.take(pa.array(used)).to_pylist()
        local[used] = [self.ids.setdefault(i, len(self.ids)) for i in names]
        pair = facet.indices.to_numpy(zero_copy_only=False).astype(np.int64) * len(tag.dictionary) + tag.indices.to_numpy(
            zero_copy_only=False)
        _, first = np.unique(pair, return_index=True)
        facets, tags = facet.dictionary.to_pylist(), tag.dictionary.to_pylist()
        lookup = np.zeros(len(facets) * len(tags), np.int16)
        for p in pair[np.sort(first)]:  # in order of first appearance, as the table lists the vocabulary
            lookup[p] = self.words.setdefault((facets[p // len(tags)], tags[p % len(tags)]), len(self.words))
        return local[id_idx], lookup[pair]


def _batches(path: Path):
    parquet = pq.ParquetFile(path, read_dictionary=["image_id", "facet", "tag"])
    return parquet.iter_batches(batch_size=BATCH_ROWS, columns=COLUMNS)


def _column(batch: pa.RecordBatch, name: str, dtype) -> np.ndarray:
    column = batch.column(name)
    if name == "selected":
        column = column.fill_null(False)
    return column.to_numpy(zero_copy_only=False).astype(dtype)


def _postings(ords: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One key's photos, each once with its highest probability, best first (ties: ordinal)."""
    order = np.lexsort((-probs.astype(np.float64), ords))
    ords, probs = ords[order], probs[order]
    first = np.r_[True, ords[1:] != ords[:-1]] if len(ords) else np.zeros(0, bool)
    ords, probs = ords[first], probs[first]
    order = np.lexsort((ords, -probs.astype(np.float64)))
    return ords[order], probs[order]


def build_word_index(ws: Workspace) -> Path | None:
    """Build the word index of ws's tags.parquet; returns its folder (None without tags).

    Two streaming passes over the file: the first learns the ids, the words and each photo's
    row count; the second writes every row straight to its place in the per-photo arrays
    (a stable counting sort, into memory-mapped files) and keeps only the selected rows.
    """
    stamp = source_stamp(ws.tags_path)
    if stamp is None:
        return None
    codes = _Codes()
    per_photo = np.zeros(0, np.int64)
    for batch in _batches(ws.tags_path):
        id_codes, _ = codes.batch(batch)
        counts = np.bincount(id_codes, minlength=len(codes.ids))
        per_photo = np.r_[per_photo, np.zeros(len(counts) - len(per_photo), np.int64)] + counts
    # Final ordinals: ids in code point order (Python's str order, as pandas sorts them).
    provisional = pa.array(list(codes.ids), pa.string())
    by_id = pc.array_sort_indices(provisional).to_numpy() if len(provisional) else np.zeros(0, np.int64)
    rank = np.empty(len(by_id), np.int64)
    rank[by_id] = np.arange(len(by_id))
    ptr = np.r_[0, np.cumsum(per_photo[by_id])].astype(np.int64)
    total = int(ptr[-1])

    root = index_root(ws)
    building = root / f".building-{uuid.uuid4().hex[:8]}"
    building.mkdir(parents=True)
    out = np.lib.format.open_memmap(building / "rows.npy", mode="w+", dtype=ROW, shape=(max(total, 1),))
    filled = ptr[:-1].copy()  # the next free row of each photo
    selected: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for batch in _batches(ws.tags_path):
        id_codes, word = codes.batch(batch)
        ords = rank[id_codes]
        prob, score, sel = _column(batch, "prob", np.float32), _column(batch, "score", np.float32), _column(batch, "selected", bool)
        order = np.argsort(ords, kind="stable")  # within the batch, rows of one photo keep their order
        sorted_ords = ords[order]
        starts = np.flatnonzero(np.r_[True, sorted_ords[1:] != sorted_ords[:-1]])
        within = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        position = filled[sorted_ords] + within
        filled[sorted_ords[starts]] += np.diff(np.r_[starts, len(order)])
        record = np.empty(len(order), ROW)
        for name, values in (("word", word), ("prob", prob), ("score", score), ("sel", sel)):
            record[name] = values[order]
        out[position] = record
        selected.append((ords[sel].astype(np.int32), word[sel], prob[sel]))
    out.flush()
    del out

    s_ords, s_word, s_prob = (np.concatenate(c) for c in zip(*selected)) if selected else (
        np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.float32))
    del selected
    words = list(codes.words)
    post_ord, post_prob, keys = _all_postings(words, s_ords, s_word, s_prob)
    keys = _write_dense(building, keys, post_ord, post_prob, len(by_id))
    np.save(building / "rows_ptr.npy", ptr)
    _write_chips(building, s_ords, s_word, s_prob, len(by_id))
    np.save(building / "post_ord.npy", post_ord)
    np.save(building / "post_prob.npy", post_prob)
    counts = np.bincount(s_word, minlength=len(words)) if len(s_word) else np.zeros(len(words), int)
    meta = {
        "format": FORMAT, "source": stamp, "photos": len(by_id), "rows": total,
        "words": [{"facet": f, "tag": t, "photos": int(n)} for (f, t), n in zip(words, counts)],
        "keys": keys,
    }
    return _publish(ws, building, provisional.take(pa.array(by_id)), meta)


def _write_chips(building: Path, s_ords: np.ndarray, s_word: np.ndarray, s_prob: np.ndarray, photos: int) -> None:
    """The selected rows by photo (table order within a photo: the sort is stable)."""
    order = np.argsort(s_ords, kind="stable")
    chips = np.empty(len(order), CHIP)
    chips["word"], chips["prob"] = s_word[order], s_prob[order]
    np.save(building / "chips.npy", chips)
    np.save(building / "chips_ptr.npy", np.r_[0, np.cumsum(np.bincount(s_ords, minlength=photos))].astype(np.int64))


def _write_dense(building: Path, keys: dict[str, list[int]], post_ord: np.ndarray, post_prob: np.ndarray, photos: int) -> dict:
    """Per posting list, a column of every photo's probability (NaN: not selected): an AND looks a photo up in O(1).

    Returns the keys as [start, end, column]."""
    spans = sorted({tuple(span) for span in keys.values()})
    dense = np.lib.format.open_memmap(building / "dense.npy", mode="w+", dtype=np.float32, shape=(max(len(spans), 1), max(photos, 1)))
    for column, (start, end) in enumerate(spans):
        dense[column] = np.nan
        dense[column, post_ord[start:end]] = post_prob[start:end]
    dense.flush()
    column_of = {span: column for column, span in enumerate(spans)}
    return {key: [*span, column_of[tuple(span)]] for key, span in keys.items()}


def _all_postings(
    words: list[tuple[str, str]], s_ords: np.ndarray, s_word: np.ndarray, s_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, list[int]]]:
    """Every key's posting list, one after another, and where each key's list sits."""
    by_word = np.argsort(s_word, kind="stable")
    s_ords, s_word, s_prob = s_ords[by_word], s_word[by_word], s_prob[by_word]
    bounds = np.searchsorted(s_word, np.arange(len(words) + 1))
    keys: dict[str, list[int]] = {}
    post_ord, post_prob, at = [], [], 0

    def add(key: str, word_codes: list[int]) -> None:
        nonlocal at
        o = np.concatenate([s_ords[bounds[c] : bounds[c + 1]] for c in word_codes])
        p = np.concatenate([s_prob[bounds[c] : bounds[c + 1]] for c in word_codes])
        o, p = _postings(o, p)
        post_ord.append(o), post_prob.append(p)
        keys[key] = [at, at + len(o)]
        at += len(o)

    facets_of: dict[str, list[int]] = {}
    for code, (facet, tag) in enumerate(words):
        add(f"{facet}:{tag}", [code])
        facets_of.setdefault(tag, []).append(code)
    for tag, word_codes in facets_of.items():
        if len(word_codes) == 1:  # a tag of one facet: the bare word shares that facet's list
            keys[tag] = keys[f"{words[word_codes[0]][0]}:{tag}"]
        else:
            add(tag, word_codes)
    ords = np.concatenate(post_ord).astype(np.int32) if post_ord else np.zeros(0, np.int32)
    probs = np.concatenate(post_prob).astype(np.float32) if post_prob else np.zeros(0, np.float32)
    return ords, probs, keys


def _publish(ws: Workspace, building: Path, ids: pa.Array, meta: dict) -> Path:
    """Finish the generation folder, then point current.json at it; older generations go."""
    root = index_root(ws)
    with pa.OSFile(str(building / "ids.arrow"), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("image_id", pa.string())])) as out:
        out.write_table(pa.table({"image_id": ids.cast(pa.string())}))
    (building / "meta.json").write_text(json.dumps(meta))
    generation = f"g{meta['source'][1]}-{building.name.rsplit('-', 1)[1]}"
    os.replace(building, root / generation)
    write_json({"generation": generation, "source": meta["source"]}, root / "current.json")
    for old in root.iterdir():  # a reader that still maps an old file keeps it until it closes it
        if old.is_dir() and old.name != generation and not old.name.startswith(".building-"):
            shutil.rmtree(old, ignore_errors=True)
    return root / generation


# ---- read -------------------------------------------------------------------------------------
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

    @property
    def size(self) -> int:
        return len(self.ids)

    def keys(self) -> dict[str, list[int]]:
        return self.meta["keys"]

    def posting(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        start, end, _ = self.meta["keys"][key]
        return self.arrays["post_ord"][start:end], self.arrays["post_prob"][start:end]

    def dense_column(self, key: str) -> np.ndarray:
        """The word's probability for every photo, by ordinal; NaN where it is not selected."""
        return self.arrays["dense"][self.meta["keys"][key][2]]

    def probs_of(self, key: str, ordinals: np.ndarray) -> np.ndarray:
        """The word's probability for each of these photos; NaN where it is not selected."""
        return self.arrays["dense"][self.meta["keys"][key][2]][ordinals]

    def id_of(self, ordinal: int) -> str:
        return self.ids[int(ordinal)].as_py()

    def ids_of(self, ordinals: np.ndarray) -> list[str]:
        return self.ids.take(pa.array(np.asarray(ordinals, dtype=np.int64))).to_pylist()

    def ordinal(self, image_id: str) -> int | None:
        """Binary search over the sorted ids (no table of a million Python strings)."""
        lo, hi = 0, len(self.ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.ids[mid].as_py() < image_id:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self.ids) and self.ids[lo].as_py() == image_id else None

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
    Cost: one word is a slice of its posting list; several words look the shortest list's
    photos up in the others (one dense array a word), then rank only what the page needs.
    """
    if index is None or not words or any(w not in index.keys() for w in words):
        return NOTHING
    postings = [index.posting(w) for w in words]
    if len(words) == 1:
        ords, probs = postings[0]
        if usable is not None:
            keep = usable[ords]
            ords, probs = ords[keep], probs[keep]
        page = slice(start, start + count)
        return Found(len(ords), np.asarray(ords[page], np.int64), np.asarray(probs[page], np.float64))
    shortest = min(len(ords) for ords, _ in postings)
    if shortest * DENSE_SCAN_FRACTION >= index.size:
        # Common words: one pass over every photo's column, in memory order, beats looking up
        # hundreds of thousands of scattered photos. NaN (not selected) survives the sums.
        total = np.zeros(index.size, np.float64)
        for w in words:  # in the words' order, as today's pandas sum adds them
            np.add(total, index.dense_column(w), out=total)
        hit = ~np.isnan(total)
        if usable is not None:
            hit &= usable
        candidates = np.flatnonzero(hit)
        scores = total[candidates]
    else:
        # A rare word: its photos, narrowed by each other word (rarest first), then summed in order.
        order = sorted(range(len(words)), key=lambda i: len(postings[i][0]))
        candidates = np.asarray(postings[order[0]][0], np.int64)
        if usable is not None:
            candidates = candidates[usable[candidates]]
        for i in order[1:]:
            candidates = candidates[~np.isnan(index.probs_of(words[i], candidates))]
        scores = np.zeros(len(candidates), np.float64)
        for w in words:
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
