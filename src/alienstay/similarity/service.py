"""What the gallery asks of the embeddings, with no web code: text search and similar photos.

Held once per server and refreshed when the embeddings, the built index or the catalog change
on disk (a stat per file a request). One tag generation's ids, matrix and index are opened
together into an `Embeddings`, swapped in whole; the gallery takes one into each request's
snapshot, so a request never ranks one generation's rows under another's ids. The query model
is loaded once, by `alienstay serve` before a worker accepts requests (web/serving.py), else on
the first text search; when it cannot be loaded, the reason is kept and returned, and word
search is untouched.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from alienstay.similarity import index as ix
from alienstay.similarity.duplicates import DuplicateKeys
from alienstay.similarity.query import (
    MAX_TEXT,
    QueryModel,
    QueryModelUnavailable,
    load_query_model,
)
from alienstay.workspace.embeddings import Vectors, file_stamp
from alienstay.workspace.layout import DamagedTable, TagOutputs, Workspace
from alienstay.workspace.storage import damaged

log = logging.getLogger("alienstay.gallery")


class NoEmbeddings(LookupError):
    """The workspace has no image embeddings yet; the message says which command makes them."""


@dataclass(frozen=True)
class Ranked:
    """Photos by cosine, best first, with how they were found."""

    ids: list[str]
    scores: list[float]
    index: str  # exact | faiss-ivf-sq8
    model_id: str | None
    note: str | None = None
    total: int | None = None  # photos ranked in all (a page shows some of them)
    rows: np.ndarray | None = None  # the embedding rows of `ids`: the page's chips looked up by row, not by id


@dataclass
class Embeddings:
    """One tag generation's ids, matrix and nearest-neighbour index, opened together and never changed:
    a request ranks with one of these from start to end, so it never pairs one generation's ids with
    another's rows (the ids of a republished set are in another order)."""

    vectors: Vectors
    index: ix.NeighbourIndex
    note: str | None  # the index is stale or could not be opened: exact search, said so
    generation: str | None
    _duplicates: DuplicateKeys | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, ws: Workspace, outputs: TagOutputs) -> "Embeddings | None":
        """None without embeddings; DamagedTable (file and fix named) when a file of the set is not right."""
        vectors = Vectors.open(ws, outputs)
        if vectors is None:
            return None
        index, note = ix.open_index(ws, vectors)
        return cls(vectors, index, note, outputs.generation)

    def duplicates(self, ws: Workspace) -> DuplicateKeys:
        """Which rows are copies of which (from the catalog); DamagedTable when the catalog cannot be read."""
        with self._lock:  # built once per generation, on the first "more like this"
            if self._duplicates is None:
                try:
                    self._duplicates = DuplicateKeys.of(ws, self.vectors)
                except (pa.ArrowException, OSError) as error:
                    raise damaged(ws.catalog_path, error, None, ws.root) from None
        return self._duplicates


class _Current:
    """The embeddings as they are now: for a caller that took no snapshot (benchmarks, notebooks)."""


CURRENT = _Current()


@dataclass
class Similarity:
    """The embeddings as they are on disk (`snapshot()`, a stat per file) and the query model.

    A new generation that is damaged is not swapped in: the last good one keeps answering and
    `damage` says what is wrong (the server logs it once, with the file and the fix).
    """

    ws: Workspace
    current: Embeddings | None = field(init=False, default=None)
    damage: DamagedTable | None = field(init=False, default=None)
    _model: QueryModel | QueryModelUnavailable | None = field(init=False, default=None)
    _stamps: tuple = field(init=False, default=())
    _fixed: tuple = field(init=False, default=())
    _refreshing: threading.Lock = field(init=False, default_factory=threading.Lock)
    # Loading the query model takes seconds: under its own lock, so "more like this" and the
    # refresh (self._refreshing) never wait behind the first search by meaning (issue 23 item 6).
    _model_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def stamps(self, outputs: TagOutputs) -> tuple:
        """What tells one state of the embeddings, the built index and the catalog from the next."""
        if not self._fixed:  # made once: stat on every request
            self._fixed = (self.ws.tag_manifest_path, ix.folder_of(self.ws) / "meta.json", self.ws.catalog_path)
        paths = (*self._fixed, outputs.embeddings_matrix, outputs.embeddings_ids, outputs.embeddings_meta)
        return tuple(tuple(file_stamp(p) or ()) for p in paths)

    def snapshot(self, outputs: TagOutputs | None = None) -> Embeddings | None:
        """The embeddings of one generation (`outputs`: the one the caller read the manifest for)."""
        try:
            outputs = outputs or self.ws.tag_outputs()
        except DamagedTable as error:  # the manifest: keep answering from the generation already open
            self._damaged(error, ())
            return self.current
        stamps = self.stamps(outputs)
        if stamps == self._stamps:
            return self.current
        with self._refreshing:
            if stamps != self._stamps:
                try:
                    opened = Embeddings.open(self.ws, outputs)
                except DamagedTable as error:
                    if self._moved(outputs):  # a newer generation replaced it while it was read: not damage
                        return self.current
                    self._damaged(error, stamps)
                    return self.current
                old_model = self.model_id
                self.current, self.damage, self._stamps = opened, None, stamps  # one assignment: the swap
                if opened is None or opened.vectors.meta.get("model_id") != old_model:
                    self._model = None  # another model made the embeddings: load that one next time
        return self.current

    def _moved(self, outputs: TagOutputs) -> bool:
        try:
            return self.ws.tag_outputs().generation != outputs.generation
        except DamagedTable:
            return False

    def _damaged(self, error: DamagedTable, stamps: tuple) -> None:
        if self.damage is None or str(self.damage) != str(error):
            meanwhile = ("Still answering from the last good tag generation." if self.current is not None
                         else "Search by meaning and \"more like this\" are off until then; word search works.")
            log.warning("%s %s", error, meanwhile)
        self.damage, self._stamps = error, stamps  # not re-read until the files change again

    def require(self) -> Vectors:
        """The current generation's vectors; NoEmbeddings (or the damage) when there are none."""
        return self.state().vectors

    def state(self, embeddings: Embeddings | None | _Current = CURRENT) -> Embeddings:
        """The embeddings a request took (None: it found none; CURRENT: take them now);
        NoEmbeddings (or the damage) when there are none."""
        found = self.snapshot() if isinstance(embeddings, _Current) else embeddings
        if found is None or len(found.vectors) == 0:
            if self.damage is not None and found is None:
                raise self.damage
            raise NoEmbeddings(f"no image embeddings yet: run `alienstay tag --workspace {self.ws.root}`.")
        return found

    # The current generation's parts (benchmarks and the notebook read them).
    @property
    def vectors(self) -> Vectors | None:
        return None if self.current is None else self.current.vectors

    @property
    def index(self) -> ix.NeighbourIndex | None:
        return None if self.current is None else self.current.index

    @property
    def index_note(self) -> str | None:
        return None if self.current is None else self.current.note

    @property
    def model_id(self) -> str | None:
        return None if self.current is None else self.current.vectors.meta.get("model_id")

    # ---- text -------------------------------------------------------------------------
    def model_ready(self) -> bool:
        """Is the query model loaded (a search by meaning then waits for no loading)?"""
        return isinstance(self._model, QueryModel)

    def query_model(self, embeddings: Embeddings | None | _Current = CURRENT) -> QueryModel:
        """The model that made the embeddings, loaded once; raises QueryModelUnavailable with the reason."""
        vectors = self.state(embeddings).vectors
        with self._model_lock:
            if self._model is None:
                try:
                    self._model = load_query_model(vectors.meta)
                except QueryModelUnavailable as error:
                    self._model = error
        if isinstance(self._model, QueryModelUnavailable):
            raise self._model
        return self._model

    def text_search(self, text: str, k: int, within_ids: list[str] | pa.Array | None = None,
                    embeddings: Embeddings | None | _Current = CURRENT, usable: np.ndarray | None = None, skip: int = 0) -> Ranked:
        """Photos ranked by cosine to the phrase, ranks skip..skip+k, among `usable` rows (None: all)
        and `within_ids` (a word search's photos); `total` counts every photo ranked."""
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise ValueError(f"a phrase of 1 to {MAX_TEXT} characters, please (got {len(text)}).")
        state = self.state(embeddings)  # one generation for the whole request
        vectors = state.vectors
        model = self.query_model(state)
        query = model.embed(text)
        if query.shape[-1] != vectors.dim:
            raise QueryModelUnavailable(f"{model.model_id} gives {query.shape[-1]}-d text vectors, the photos are {vectors.dim}-d: rerun `alienstay tag`.")
        within = None if within_ids is None else vectors.positions(within_ids)
        if within is not None and usable is not None:
            within = within[is_usable(within, usable)]
        total = len(vectors) if within is None and usable is None else len(within if within is not None else usable)
        note = "; ".join(n for n in (model.note, state.note) if n) or None
        if total <= skip:
            return Ranked([], [], state.index.name, model.model_id, note, total, np.zeros(0, np.int64))
        if within is not None:
            scores, rows = state.index.search(query, min(skip + k, total), within)
        else:
            scores, rows = best_usable(state.index, len(vectors), query, min(skip + k, total), usable)
        return Ranked(vectors.ids_of(rows[skip:]), [float(s) for s in scores[skip:]], state.index.name,
                      model.model_id, note, total, rows[skip:])

    # ---- more like this -------------------------------------------------------------------
    def similar(self, image_id: str, k: int, embeddings: Embeddings | None | _Current = CURRENT,
                usable: np.ndarray | None = None) -> Ranked:
        """The k photos nearest `image_id` among `usable` rows (None: all), without the photo itself
        nor its exact and near copies: the filter comes before the top k, so k are returned when k exist."""
        state = self.state(embeddings)
        vectors = state.vectors
        me = vectors.position(image_id)
        if me is None:
            raise KeyError(image_id)
        duplicates = state.duplicates(self.ws)
        query = vectors.rows(np.array([me]))[0]
        pool = len(vectors) if usable is None else len(usable)
        want = k + 8
        while True:  # ask for a few more than k, more again if copies filled the list
            scores, rows = best_usable(state.index, len(vectors), query, min(want, pool), usable)
            keep = ~duplicates.same_photo(me, rows)
            if keep.sum() >= k or want >= pool:
                break
            want *= 4
        scores, rows = scores[keep][:k], rows[keep][:k]
        return Ranked(vectors.ids_of(rows), [float(s) for s in scores], state.index.name,
                      state.vectors.meta.get("model_id"), state.note, rows=rows)


def is_usable(rows: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Mask over `rows`: in the sorted `usable` rows (a binary search each, not a pass over all)."""
    if len(usable) == 0:
        return np.zeros(len(rows), dtype=bool)
    at = np.searchsorted(usable, rows).clip(max=len(usable) - 1)
    return usable[at] == rows


def best_usable(index: ix.NeighbourIndex, n: int, query: np.ndarray, k: int,
                usable: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows among `usable` (sorted rows; None: all). When few rows are left out (a few
    duplicates found after tagging), the unfiltered top k + (left out) is searched and they are
    dropped: every left-out row could take a place, so k usable ones remain, and the search scans
    contiguous blocks instead of gathering a filter's rows. Many left out: the index filters."""
    if usable is None:
        return index.search(query, k, None)
    left_out = n - len(usable)
    if left_out > max(1024, n // 20):
        return index.search(query, k, usable)
    scores, rows = index.search(query, min(n, k + left_out), None)
    keep = is_usable(rows, usable)
    return scores[keep][:k], rows[keep][:k]
