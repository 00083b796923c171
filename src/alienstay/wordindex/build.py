"""Building the gallery's word index (the files are described in `wordindex/layout.py`).

Two streaming passes over tags.parquet: the first learns the ids, the words and each photo's
row count; the second writes every row straight to its place in the per-photo arrays (a stable
counting sort, into memory-mapped files) and keeps only the selected rows, from which the
posting lists, the dense columns and the chips are made. A generation folder is written whole,
then current.json is pointed at it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.wordindex.layout import CHIP, FORMAT, ROW, index_root, source_stamp
from alienstay.wordindex.lookup import WordIndex
from alienstay.workspace.layout import Workspace, write_json
from alienstay.workspace.locking import hold

BATCH_ROWS = 1 << 18
BUILD_LOG = "builds.jsonl"


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
    judged = ["judged"] if "judged" in parquet.schema_arrow.names else []  # absent from tables before evidence.py
    return parquet.iter_batches(batch_size=BATCH_ROWS, columns=COLUMNS + judged)


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


def build(ws: Workspace) -> Path | None:
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
    _remove_abandoned_builds(root)
    building = root / f".building-{uuid.uuid4().hex[:8]}"
    building.mkdir(parents=True)
    out = np.lib.format.open_memmap(building / "rows.npy", mode="w+", dtype=ROW, shape=(max(total, 1),))
    filled = ptr[:-1].copy()  # the next free row of each photo
    selected: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    judged_words = np.zeros(len(codes.words), bool)  # words the tagger judged on some photo (evidence.py)
    for batch in _batches(ws.tags_path):
        id_codes, word = codes.batch(batch)
        judged = _column(batch, "judged", bool) if "judged" in batch.schema.names else np.ones(len(word), bool)
        judged_words[word[judged]] = True
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
        "words": [{"facet": f, "tag": t, "photos": int(n), "judged": bool(j)}
                  for (f, t), n, j in zip(words, counts, judged_words)],
        "keys": keys,
        "tagger": _tagger(ws.tags_path),
    }
    return _publish(ws, building, provisional.take(pa.array(by_id)), meta)


def _tagger(path: Path) -> dict:
    """The model (and revision) that tagged the table, for the gallery's banner: its first row says it."""
    parquet = pq.ParquetFile(path)
    wanted = [c for c in ("model_id", "model_revision") if c in parquet.schema_arrow.names]
    if not wanted or parquet.metadata.num_row_groups == 0 or parquet.metadata.num_rows == 0:
        return {}
    first = parquet.read_row_group(0, columns=wanted).slice(0, 1).to_pylist()
    return {k: str(v) for k, v in first[0].items()} if first else {}


def _remove_abandoned_builds(root: Path, older_than_s: float = 6 * 3600) -> None:
    """A build killed halfway leaves its folder: gone once it is older than any build runs."""
    if not root.is_dir():
        return
    for folder in root.glob(".building-*"):
        if time.time() - folder.stat().st_mtime > older_than_s:
            shutil.rmtree(folder, ignore_errors=True)


def _write_chips(building: Path, s_ords: np.ndarray, s_word: np.ndarray, s_prob: np.ndarray, photos: int) -> None:
    """The selected rows by photo (table order within a photo: the sort is stable)."""
    order = np.argsort(s_ords, kind="stable")
    chips = np.empty(len(order), CHIP)
    chips["word"], chips["prob"] = s_word[order], s_prob[order]
    np.save(building / "chips.npy", chips)
    np.save(building / "chips_ptr.npy", np.r_[0, np.cumsum(np.bincount(s_ords, minlength=photos))].astype(np.int64))


def _write_dense(building: Path, keys: dict[str, list[int]], post_ord: np.ndarray, post_prob: np.ndarray, photos: int) -> dict:
    """Per posting list, a column of every photo's probability (NaN: not selected) and one of
    bits (set: selected), so an AND is a byte-wise AND and a photo's probability one lookup.

    Returns the keys as [start, end, column]."""
    spans = sorted({tuple(span) for span in keys.values()})
    dense = np.lib.format.open_memmap(building / "dense.npy", mode="w+", dtype=np.float32, shape=(max(len(spans), 1), max(photos, 1)))
    for column, (start, end) in enumerate(spans):
        dense[column] = np.nan
        dense[column, post_ord[start:end]] = post_prob[start:end]
    dense.flush()
    bits = np.lib.format.open_memmap(building / "bits.npy", mode="w+", dtype=np.uint8, shape=(dense.shape[0], -(-max(photos, 1) // 8)))
    for column in range(len(spans)):
        bits[column] = np.packbits(~np.isnan(dense[column]))
    bits.flush()
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
    with open(root / BUILD_LOG, "a", encoding="utf-8") as log:  # who built which generation, of which tags
        log.write(json.dumps({"generation": generation, "source": meta["source"], "photos": meta["photos"],
                              "pid": os.getpid(), "at": time.time()}) + "\n")
    for old in root.iterdir():  # a reader that still maps an old file keeps it until it closes it
        if old.is_dir() and old.name != generation and not old.name.startswith(".building-"):
            shutil.rmtree(old, ignore_errors=True)
    return root / generation


def build_word_index(ws: Workspace) -> Path | None:
    """The word index of ws's tags.parquet, built unless the current build is already of it; its folder
    (None without tags). See `build`.

    Under the index's own lock (`index/words/.build.lock`): the tag stage and every gallery worker
    that finds the index stale take turns, and one that waited opens what the one before it built,
    so new tags are indexed once. Each build appends a line to `index/words/builds.jsonl`.
    """
    if not ws.tags_path.exists():
        return None
    with hold(index_root(ws) / ".build.lock", "word index"):
        existing = WordIndex.open(ws)
        return existing.folder if existing is not None else build(ws)
