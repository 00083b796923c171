"""What the gallery shows, as plain functions on the workspace tables (no web code here).

The server's memory does not grow with the tag table: tags are read through the word index
(`alienstay.wordindex`, memory-mapped posting lists, built at tag/index time or here when missing or
older than tags.parquet), the catalog and clusters are held as Arrow columns (`tables.py`),
and the edits table is small. Each table is re-read when its file changes on disk, so a gallery
left running while `alienstay tag` or `alienstay edit` works picks up their output on the next
request. Every table but the catalog is optional: a missing one is an empty state, never an error.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from alienstay.similarity.service import Embeddings, Similarity
from alienstay.web import tables
from alienstay.web.edit_views import edit_records
from alienstay.web.tables import CATALOG_INFO, jsonable  # noqa: F401  (re-exported for the app)
from alienstay.wordindex import lookup as wordindex
from alienstay.wordindex.build import build_word_index
from alienstay.wordindex.layout import index_root
from alienstay.wordindex.lookup import WordIndex
from alienstay.workspace.embeddings import file_stamp
from alienstay.workspace.layout import (
    DamagedTable,
    TagOutputs,
    Workspace,
    read_optional,
)
from alienstay.workspace.storage import damaged, without_paths

log = logging.getLogger("alienstay.gallery")

METRIC_COLUMNS = ["structure_ssim", "edge_ssim", "lpips", "dino_distance", "outside_mask_change", "clip_direction"]


@dataclass
class Snapshot:
    """The gallery's tables as they were read together: a request reads one snapshot, start to end.

    A changed table never changes a snapshot; `Gallery.refresh` makes a new one and swaps it in
    with one assignment, so a request on the event loop never pairs the old index's ordinals
    with the new index's ids, or an old usable-photo mask with a new index.
    """

    ws: Workspace
    catalog: tables.Keyed  # usable photos
    index: WordIndex | None = None  # the word index of tags.parquet
    usable: np.ndarray | None = None  # index ordinal -> in the catalog (None: all are)
    clusters: tables.Clusters | None = None
    edits: pd.DataFrame | None = None
    edit_records: list[dict] = field(default_factory=list)  # JSON-ready, without file paths
    embeddings: Embeddings | None = None  # the same tag generation's vectors and neighbour index
    damage: str | None = None  # a file that changed and could not be read: these tables are the last good ones
    _counts: dict[str, int] = field(default_factory=dict)  # this snapshot's own caches
    _browse: dict[int, tuple] = field(default_factory=dict)

    def browse(self, limit: int) -> tuple[list[str], dict[str, list[dict]]]:
        """The first photos of the catalog with their chips: the home page without words (cached)."""
        if limit not in self._browse:
            ids = tables.first_ids(self.catalog, limit)
            if len(self._browse) >= 8:  # a few page sizes are asked for; past that, start again
                self._browse.clear()
            self._browse[limit] = (ids, self.selected_tags_of(ids))
        return self._browse[limit]

    @functools.cached_property
    def embedding_rows(self) -> np.ndarray | None:
        """Rows of the embeddings whose photo is usable in this snapshot's catalog (None: every row is),
        so search by meaning and "more like this" take their top k after this filter, not before."""
        if self.embeddings is None:
            return None
        rows = np.unique(self.embeddings.vectors.positions(self.catalog.ids))  # sorted, each row once
        return None if len(rows) == len(self.embeddings.vectors) else rows

    @functools.cached_property
    def embedding_ordinals(self) -> np.ndarray | None:
        """Per embedding row, its photo's word-index ordinal (-1: not in the index), matched once a snapshot:
        a page of ranked photos then finds its chips by row (an id's binary search over Arrow strings
        cost ~20 us a photo, a page of 120 ~3 ms)."""
        if self.embeddings is None or self.index is None:
            return None
        return self.index.ordinals(self.embeddings.vectors.ids)

    def ordinals_of_rows(self, rows: np.ndarray) -> list[int | None]:
        """The word-index ordinals of these embedding rows (None where a photo has no tags)."""
        table = self.embedding_ordinals
        if table is None:
            return [None] * len(rows)
        return [o if o >= 0 else None for o in table[np.asarray(rows, np.int64)].tolist()]

    def count(self, word: str) -> int:
        """Usable photos with this word selected (cached for the snapshot)."""
        if word not in self._counts:
            self._counts[word] = wordindex.count(self.index, word, self.usable)
        return self._counts[word]

    @property
    def word_pairs(self) -> list[tuple[str, str]]:
        """(facet, tag) of each word code."""
        return [] if self.index is None else self.index.word_pairs

    @property
    def words(self) -> list[dict]:
        """facet, tag, photos (selected count) in vocabulary order: the summary written with the index."""
        return [] if self.index is None else self.index.meta["words"]

    @property
    def tagger(self) -> dict:
        """model_id and model_revision of the tags behind the index (empty for indexes built before it)."""
        tagger = {} if self.index is None else dict(self.index.meta.get("tagger") or {})
        return {key: without_paths(str(value)) for key, value in tagger.items()}  # a local folder: its name only

    def example_words(self, n: int = 3) -> list[str]:
        """The judged words selected on the most photos: the search box's examples exist and find photos."""
        used = [w for w in self.words if w.get("judged", True) and w["photos"] > 0]
        return [w["tag"] for w in sorted(used, key=lambda w: -w["photos"])[:n]]

    def known_words(self) -> set[str] | dict:
        """A word is a bare tag (any facet) or `facet:tag` (one facet)."""
        return {} if self.index is None else self.index.keys()

    # ---- files the gallery may serve: only those a table names, only inside the workspace
    def photo_file(self, image_id: str) -> Path | None:
        row = self.catalog.find(image_id)
        if row is None or "prepared_path" not in self.catalog.table.column_names:
            return None
        return inside_workspace(self.ws.root, self.catalog.table.column("prepared_path")[row].as_py())

    def edit_file(self, edit_id: str) -> Path | None:
        if self.edits is None:
            return None
        rows = self.edits[self.edits["edit_id"].astype(str) == edit_id]
        return inside_workspace(self.ws.root, rows["output_path"].iloc[0]) if len(rows) else None

    # ---- a photo
    def catalog_info(self, image_id: str) -> dict:
        row = self.catalog.find(image_id)
        info = {} if row is None else self.catalog.row(row, CATALOG_INFO)
        return {c: v for c, v in info.items() if v is not None}

    def cluster_of(self, image_id: str) -> dict | None:
        row = None if self.clusters is None else self.clusters.find(image_id)
        return None if row is None else self.clusters.row(row)

    def cluster_neighbours(self, image_id: str, limit: int = 8) -> list[str]:
        return [] if self.clusters is None else self.clusters.neighbours(image_id, limit)

    def selected_tags_of(self, image_ids: list[str], ordinals: list[int] | None = None) -> dict[str, list[dict]]:
        """Each photo's selected tags (table order), for the chips under a result."""
        chips: dict[str, list[dict]] = {i: [] for i in image_ids}
        if self.index is None:
            return chips
        found = ordinals if ordinals is not None else [o if o >= 0 else None for o in self.index.ordinals(image_ids).tolist()]
        present = [(i, o) for i, o in zip(image_ids, found) if o is not None]
        if not present:
            return chips
        bounds, codes, probs = self._chips_by_photo([o for _, o in present])
        names = self.word_pairs
        codes, probs = codes.tolist(), probs.tolist()
        for k, (image_id, _) in enumerate(present):
            chips[image_id] = [{"facet": names[c][0], "tag": names[c][1], "prob": p}
                               for c, p in zip(codes[bounds[k]:bounds[k + 1]], probs[bounds[k]:bounds[k + 1]])]
        return chips

    def chip_codes_of(self, ordinals: list[int]) -> list[tuple[list[int], list[int]]]:
        """Each photo's selected tags as (word codes, probabilities in whole percent), for chips built as HTML."""
        if self.index is None or not ordinals:
            return [([], []) for _ in ordinals]
        bounds, codes, probs = self._chips_by_photo(ordinals)
        # rint rounds half to even, as the "{:.0f}" a chip's title was formatted with
        codes, percents = codes.tolist(), np.rint(probs.astype(np.float64) * 100).astype(np.int64).tolist()
        return [(codes[a:b], percents[a:b]) for a, b in zip(bounds, bounds[1:])]

    def _chips_by_photo(self, ordinals: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
        """Selected rows of these photos: photo k's are [bounds[k], bounds[k + 1]) of codes and probs."""
        owner, codes, probs = self.index.chips_of(ordinals)
        return np.searchsorted(owner, np.arange(len(ordinals) + 1)).tolist(), codes, probs  # owner ascends

    def tags_by_facet(self, image_id: str) -> list[dict]:
        """All of a photo's judged tags per facet, most probable first: the photo page's full view.

        A word the tagger does not judge (evidence.py: a silenced facet or word) shows no
        probability; a facet with no judged word is listed with `judged: False`, as "not judged".
        """
        ordinal = None if self.index is None else self.index.ordinal(image_id)
        if ordinal is None:
            return []
        rows = self.index.rows(ordinal)
        words, groups = self.words, {}
        for c, p, s, sel in zip(*(rows[f].tolist() for f in ("word", "prob", "score", "sel"))):
            group = groups.setdefault(words[c]["facet"], [])
            if words[c].get("judged", True):  # indexes built before the flag judged every word
                group.append({"tag": words[c]["tag"], "prob": p, "score": s, "selected": sel})
        return [
            {"facet": facet, "judged": bool(rows), "tags": sorted(rows, key=lambda r: -r["prob"])}  # stable sort
            for facet, rows in groups.items()
        ]


class Gallery:
    """The workspace's tables, each re-read when its file changes on disk: `current` is the latest snapshot.

    Every tag-generation file of a snapshot (the word index of tags.parquet, the embeddings and
    their index) comes from one read of the manifest, so a request never mixes generations. A file
    that changed and cannot be read is logged once with its fix, and the last good table stays.
    """

    def __init__(self, ws: Workspace, similarity: Similarity | None = None) -> None:
        self.ws, self.similarity = ws, similarity
        self._paths = {"catalog": ws.catalog_path, "clusters": ws.clusters_path, "edits": ws.edits_path,
                       "index": index_root(ws) / "current.json"}  # made once: stat on every request
        self.current = Snapshot(ws, tables.empty_keyed())
        self._stamps: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.refresh()

    def outputs(self) -> TagOutputs | DamagedTable:
        try:
            return self.ws.tag_outputs()
        except DamagedTable as error:
            return error

    def stamps(self, outputs: TagOutputs | DamagedTable | None = None) -> dict[str, Any]:
        outputs = outputs or self.outputs()
        good = isinstance(outputs, TagOutputs)
        found: dict[str, Any] = {name: file_stamp(path) for name, path in self._paths.items()}
        found["tags"] = file_stamp(outputs.tags) if good else ["damaged", str(outputs)]
        if self.similarity is not None:
            found["embeddings"] = self.similarity.stamps(outputs) if good else found["tags"]
        return found

    def stale(self) -> bool:
        """Has a table changed on disk since the last read? (a stat per file)"""
        return self.stamps() != self._stamps

    def refresh(self) -> Snapshot:
        """Re-read each table that changed since the last read, into a new snapshot; returns the current one."""
        if not self.stale():
            return self.current
        with self._lock:
            for _ in range(5):  # a tag run published again while the files were read: read them again
                outputs = self.outputs()
                now = self.stamps(outputs)
                if now == self._stamps:  # another thread refreshed while this one waited for the lock
                    return self.current
                snapshot = self._read(now, outputs)
                if generation_of(self.outputs()) == generation_of(outputs):  # nothing moved under the read
                    break
            else:
                return self.current  # publishing faster than a read: the last whole snapshot answers
            pa.default_memory_pool().release_unused()  # the decode buffers go back
            if snapshot.damage and snapshot.damage != self.current.damage:
                log.warning("%s Still answering from the last good tables.", snapshot.damage)
            self.current, self._stamps = snapshot, now
        return self.current

    def _read(self, now: dict[str, Any], outputs: TagOutputs | DamagedTable) -> Snapshot:
        """A new snapshot: changed tables read, the others (and any that cannot be read) kept."""
        old, damage = self.current, []
        changed = {name for name, stamp in now.items() if self._stamps.get(name, ()) != stamp}

        def read(name: str, reader, previous, *names: str):
            if not changed & {name, *names}:
                return previous
            try:
                return reader()
            except DamagedTable as error:
                damage.append(str(error))
                return previous

        if isinstance(outputs, DamagedTable):
            damage.append(str(outputs))
        catalog = read("catalog", lambda: guarded(tables.read_catalog, self.ws.catalog_path, self.ws), old.catalog)
        index = old.index if isinstance(outputs, DamagedTable) else read("tags", lambda: current_index(self.ws), old.index, "index")
        usable = usable_mask(index, catalog) if index is not old.index or catalog is not old.catalog else old.usable
        clusters = read("clusters", lambda: guarded(read_clusters, self.ws.clusters_path, self.ws), old.clusters)
        edits = read("edits", lambda: read_optional(self.ws.edits_path), old.edits)
        records = edit_records(edits) if edits is not old.edits else old.edit_records
        embeddings = old.embeddings
        if self.similarity is not None and "embeddings" in changed:
            embeddings = self.similarity.snapshot(outputs if isinstance(outputs, TagOutputs) else None)
            if self.similarity.damage is not None:
                damage.append(str(self.similarity.damage))
        return Snapshot(self.ws, catalog, index, usable, clusters, edits, records, embeddings, "; ".join(damage) or None)


def generation_of(outputs: TagOutputs | DamagedTable) -> str | None:
    return outputs.generation if isinstance(outputs, TagOutputs) else str(outputs)


def guarded(reader, path: Path, ws: Workspace):
    """A table reader whose library errors become DamagedTable naming the file and its fix."""
    try:
        return reader(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise damaged(path, error, None, ws.root) from None


def read_clusters(path: Path) -> tables.Clusters | None:
    """clusters.parquet with its neighbour trees built: a refresh runs in the thread pool, a request on the event loop."""
    clusters = tables.Clusters.read(path)
    if clusters is not None:
        clusters.build_trees()
    return clusters


def usable_mask(index: WordIndex | None, catalog: tables.Keyed) -> np.ndarray | None:
    """Per index ordinal: is the photo usable in the catalog? None when every one is (nothing to filter)."""
    mask = None if index is None else catalog.rows.rows(index.ids) >= 0
    return None if mask is None or mask.all() else mask


def current_index(ws: Workspace) -> WordIndex | None:
    """The word index of ws's tags.parquet as it is now, built (once, under its lock) when missing or stale;
    DamagedTable (the file and its fix named) when tags.parquet cannot be read."""
    index = WordIndex.open(ws)
    if index is None:
        try:
            built = build_word_index(ws)
        except (pa.ArrowException, OSError, KeyError, ValueError) as error:
            raise damaged(ws.tags_path, error, "tag", ws.root) from None
        index = WordIndex.open(ws) if built is not None else None
    return index


def inside_workspace(root: Path, path: Any) -> Path | None:
    """The file, resolved, if it exists inside the workspace; None for anything else."""
    if not isinstance(path, str) or not path:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved, root = candidate.resolve(), root.resolve()
    return resolved if resolved.is_relative_to(root) and resolved.is_file() else None


# ---- vocabulary and words -----------------------------------------------------------------
def vocabulary_groups(words: list[dict], definitions: dict[tuple[str, str], str]) -> list[dict]:
    """The words the photos were tagged with, grouped by facet (in vocabulary order), with photo counts.
    A word the tagger does not judge is marked (its 0 says nothing about the photos); a facet none of
    whose words it judges is marked as a whole and shows no chips."""
    groups: dict[str, list[dict]] = {}
    for w in words:
        groups.setdefault(w["facet"], []).append(
            {"tag": w["tag"], "photos": w["photos"], "judged": w.get("judged", True),
             "definition": definitions.get((w["facet"], w["tag"]), "")}
        )
    return [{"facet": facet, "tags": entries, "judged": any(t["judged"] for t in entries)}
            for facet, entries in groups.items()]


def parse_words(text: str | None) -> list[str]:
    """`"pool, night,pool"` -> ["pool", "night"]: comma-separated, trimmed, in order, once each."""
    return list(dict.fromkeys(w.strip() for w in (text or "").split(",") if w.strip()))
