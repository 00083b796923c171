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
- `rows_*.npy` with `rows_ptr.npy`: every tag row of photo i (word code, prob, score, selected)
  at `rows_ptr[i]:rows_ptr[i+1]`, in the table's order: the photo page and the result chips.
- `meta.json`: the words in vocabulary order with their photo counts (the home page's chips),
  the keys' spans, and the stamp of the `tags.parquet` it was built from.
"""

from __future__ import annotations

import json
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

FORMAT = 1
ARRAYS = ("post_ord", "post_prob", "rows_ptr", "rows_word", "rows_prob", "rows_score", "rows_sel")
BATCH_ROWS = 1 << 20


def index_root(ws: Workspace) -> Path:
    return ws.root / "index" / "words"


def source_stamp(path: Path) -> list[int] | None:
    """What identifies one version of tags.parquet: size and modification time."""
    if not path.exists():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


# ---- build ------------------------------------------------------------------------------------
@dataclass
class _Rows:
    """tags.parquet as compact columns: ordinal (provisional), word code, prob, score, selected."""

    ids: list[str]
    words: list[tuple[str, str]]
    ords: np.ndarray
    word: np.ndarray
    prob: np.ndarray
    score: np.ndarray
    sel: np.ndarray


def _read_rows(path: Path) -> _Rows:
    """Stream tags.parquet batch by batch; strings become codes through each batch's dictionary."""
    columns = ["image_id", "facet", "tag", "prob", "score", "selected"]
    parquet = pq.ParquetFile(path, read_dictionary=["image_id", "facet", "tag"])
    id_code: dict[str, int] = {}
    word_code: dict[tuple[str, str], int] = {}
    parts: list[tuple[np.ndarray, ...]] = []
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        image_id, facet, tag = (batch.column(n) for n in ("image_id", "facet", "tag"))
        id_idx = image_id.indices.to_numpy(zero_copy_only=False)
        used = np.flatnonzero(np.bincount(id_idx, minlength=len(image_id.dictionary)))
        local_ids = np.full(len(image_id.dictionary), -1, np.int32)
        local_ids[used] = [id_code.setdefault(i, len(id_code)) for i in image_id.dictionary.take(pa.array(used)).to_pylist()]
        ords = local_ids[id_idx]
        f_idx = facet.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        t_idx = tag.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        pair = f_idx * len(tag.dictionary) + t_idx
        # Word codes in order of first appearance, as the table lists the vocabulary.
        _, first = np.unique(pair, return_index=True)
        facets, tags = facet.dictionary.to_pylist(), tag.dictionary.to_pylist()
        lookup = np.zeros(len(facets) * len(tags), np.int16)
        for p in pair[np.sort(first)]:
            lookup[p] = word_code.setdefault((facets[p // len(tags)], tags[p % len(tags)]), len(word_code))
        codes = lookup[pair]
        parts.append((
            ords, codes,
            batch.column("prob").to_numpy(zero_copy_only=False).astype(np.float32),
            batch.column("score").to_numpy(zero_copy_only=False).astype(np.float32),
            batch.column("selected").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
        ))
    cat = [np.concatenate(c) if parts else np.zeros(0, d) for c, d in
           zip(zip(*parts) if parts else [[]] * 5, (np.int32, np.int16, np.float32, np.float32, bool))]
    return _Rows(list(id_code), list(word_code), *cat)


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

    Memory: about 20 bytes a tag row while building (a million photos: about 1.4 GB, once);
    the gallery that reads it maps the files and holds almost nothing.
    """
    stamp = source_stamp(ws.tags_path)
    if stamp is None:
        return None
    rows = _read_rows(ws.tags_path)
    # Final ordinals: ids in code point order (Python's str order, as pandas sorts them).
    provisional = pa.array(rows.ids, pa.string())
    by_id = pc.array_sort_indices(provisional).to_numpy()
    rank = np.empty(len(by_id), np.int32)
    rank[by_id] = np.arange(len(by_id), dtype=np.int32)
    ords = rank[rows.ords] if len(rows.ords) else rows.ords
    arrays: dict[str, np.ndarray] = {}
    by_photo = np.argsort(ords, kind="stable")
    arrays["rows_ptr"] = np.r_[0, np.cumsum(np.bincount(ords, minlength=len(by_id)))].astype(np.int64)
    for name, values in (("rows_word", rows.word), ("rows_prob", rows.prob), ("rows_score", rows.score), ("rows_sel", rows.sel)):
        arrays[name] = values[by_photo]
    del by_photo

    sel = rows.sel
    s_ords, s_word, s_prob = ords[sel], rows.word[sel], rows.prob[sel]
    by_word = np.argsort(s_word, kind="stable")
    s_ords, s_word, s_prob = s_ords[by_word], s_word[by_word], s_prob[by_word]
    bounds = np.searchsorted(s_word, np.arange(len(rows.words) + 1))
    keys: dict[str, list[int]] = {}
    post_ord, post_prob, at = [], [], 0
    facets_of: dict[str, list[int]] = {}
    for code, (facet, tag) in enumerate(rows.words):
        facets_of.setdefault(tag, []).append(code)
    spans = {code: (bounds[code], bounds[code + 1]) for code in range(len(rows.words))}

    def add(key: str, codes: list[int]) -> None:
        nonlocal at
        o = np.concatenate([s_ords[slice(*spans[c])] for c in codes])
        p = np.concatenate([s_prob[slice(*spans[c])] for c in codes])
        o, p = _postings(o, p)
        post_ord.append(o), post_prob.append(p)
        keys[key] = [at, at + len(o)]
        at += len(o)

    for code, (facet, tag) in enumerate(rows.words):
        add(f"{facet}:{tag}", [code])
    for tag, codes in facets_of.items():
        if len(codes) == 1:
            keys[tag] = keys[f"{rows.words[codes[0]][0]}:{tag}"]
        else:
            add(tag, codes)
    arrays["post_ord"] = np.concatenate(post_ord).astype(np.int32) if post_ord else np.zeros(0, np.int32)
    arrays["post_prob"] = np.concatenate(post_prob).astype(np.float32) if post_prob else np.zeros(0, np.float32)
    counts = np.bincount(s_word, minlength=len(rows.words)) if len(s_word) else np.zeros(len(rows.words), int)
    meta = {
        "format": FORMAT, "source": stamp, "photos": len(by_id), "rows": int(len(ords)),
        "words": [{"facet": f, "tag": t, "photos": int(n)} for (f, t), n in zip(rows.words, counts)],
        "keys": keys,
    }
    return _publish(ws, provisional.take(pa.array(by_id)), arrays, meta)


def _publish(ws: Workspace, ids: pa.Array, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write a generation folder, then point current.json at it; older generations go."""
    root = index_root(ws)
    root.mkdir(parents=True, exist_ok=True)
    generation = f"g{meta['source'][1]}-{uuid.uuid4().hex[:8]}"
    building = root / f".building-{generation}"
    building.mkdir()
    with pa.OSFile(str(building / "ids.arrow"), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("image_id", pa.string())])) as out:
        out.write_table(pa.table({"image_id": ids.cast(pa.string())}))
    for name, values in arrays.items():
        np.save(building / f"{name}.npy", values)
    (building / "meta.json").write_text(json.dumps(meta))
    os.replace(building, root / generation)
    write_json({"generation": generation, "source": meta["source"]}, root / "current.json")
    for old in root.iterdir():  # a reader that still maps an old file keeps it until it closes it
        if old.is_dir() and old.name != generation and not old.name.startswith(".building-"):
            shutil.rmtree(old, ignore_errors=True)
    return root / generation


# ---- read -------------------------------------------------------------------------------------
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
            arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in ARRAYS}
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
        start, end = self.meta["keys"][key]
        return self.arrays["post_ord"][start:end], self.arrays["post_prob"][start:end]

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

    def rows(self, ordinal: int) -> tuple[np.ndarray, ...]:
        """A photo's tag rows: word codes, probs, scores, selected (table order)."""
        start, end = self.arrays["rows_ptr"][ordinal], self.arrays["rows_ptr"][ordinal + 1]
        return tuple(np.asarray(self.arrays[n][start:end]) for n in ("rows_word", "rows_prob", "rows_score", "rows_sel"))


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
    shortest = min(range(len(words)), key=lambda i: len(postings[i][0]))
    candidates = np.asarray(postings[shortest][0], np.int64)
    values = []
    for i, (ords, probs) in enumerate(postings):
        if i == shortest:
            values.append(np.asarray(probs, np.float32))
            continue
        dense = np.full(index.size, np.nan, np.float32)
        dense[ords] = probs
        values.append(dense[candidates])
    keep = ~np.isnan(np.vstack(values)).any(axis=0)
    if usable is not None:
        keep &= usable[candidates]
    candidates = candidates[keep]
    scores = np.zeros(len(candidates), np.float64)
    for v in values:  # in the words' order, as today's pandas sum adds them
        scores += v[keep].astype(np.float64)
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
