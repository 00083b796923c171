"""What the gallery asks of the embeddings, with no web code: text search and similar photos.

Held once per server and refreshed when the embeddings, the built index or the catalog change
on disk (a stat per file a request). The query model is loaded once, by `alienstay serve` before a
worker accepts requests (web/serving.py), else on the first text search; when it cannot be loaded,
the reason is kept and returned, and word search is untouched.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from alienstay.similarity import index as ix
from alienstay.similarity.duplicates import DuplicateKeys
from alienstay.similarity.query import MAX_TEXT, QueryModel, QueryModelUnavailable, load_query_model
from alienstay.similarity.vectors import Vectors, file_stamp
from alienstay.workspace import Workspace


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


@dataclass
class Similarity:
    ws: Workspace
    vectors: Vectors | None = field(init=False, default=None)
    index: ix.NeighbourIndex | None = field(init=False, default=None)
    index_note: str | None = field(init=False, default=None)
    duplicates: DuplicateKeys | None = field(init=False, default=None)
    _model: QueryModel | QueryModelUnavailable | None = field(init=False, default=None)
    _stamps: tuple = field(init=False, default=())
    _lock: threading.RLock = field(init=False, default_factory=threading.RLock)
    # Loading the query model takes seconds: under its own lock, so "more like this" and the
    # refresh (self._lock) never wait behind the first search by meaning (issue 23 item 6).
    _model_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def stamps(self) -> tuple:
        ws = self.ws
        paths = (ws.embeddings_matrix_path, ws.embeddings_ids_path, ws.embeddings_meta_path,
                 ix.folder_of(ws) / "meta.json", ws.catalog_path)
        return tuple(tuple(file_stamp(p) or ()) for p in paths)

    def refresh(self) -> None:
        stamps = self.stamps()
        if stamps == self._stamps:
            return
        with self._lock:
            old_model = None if self.vectors is None else self.vectors.meta.get("model_id")
            self.vectors = Vectors.open(self.ws)
            self.index, self.index_note = (None, None) if self.vectors is None else ix.open_index(self.ws, self.vectors)
            self.duplicates = None
            if self.vectors is None or self.vectors.meta.get("model_id") != old_model:
                self._model = None  # another model made the embeddings: load that one next time
            self._stamps = stamps

    def require(self) -> Vectors:
        self.refresh()
        if self.vectors is None or len(self.vectors) == 0:
            raise NoEmbeddings(f"no image embeddings yet: run `alienstay tag --workspace {self.ws.root}`.")
        return self.vectors

    @property
    def model_id(self) -> str | None:
        return None if self.vectors is None else self.vectors.meta.get("model_id")

    # ---- text -------------------------------------------------------------------------
    def query_model(self) -> QueryModel:
        """The model that made the embeddings, loaded once; raises QueryModelUnavailable with the reason."""
        vectors = self.require()
        with self._model_lock:
            if self._model is None:
                try:
                    self._model = load_query_model(vectors.meta)
                except QueryModelUnavailable as error:
                    self._model = error
        if isinstance(self._model, QueryModelUnavailable):
            raise self._model
        return self._model

    def text_search(self, text: str, k: int, within_ids: list[str] | None = None) -> Ranked:
        """Photos ranked by cosine to the phrase; `within_ids` restricts to a word search's photos."""
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise ValueError(f"a phrase of 1 to {MAX_TEXT} characters, please (got {len(text)}).")
        model = self.query_model()
        vectors = self.require()
        query = model.embed(text)
        if query.shape[-1] != vectors.dim:
            raise QueryModelUnavailable(f"{model.model_id} gives {query.shape[-1]}-d text vectors, the photos are {vectors.dim}-d: rerun `alienstay tag`.")
        within = None if within_ids is None else vectors.positions(within_ids)
        if within is not None and len(within) == 0:
            return Ranked([], [], self.index.name, model.model_id, model.note)
        scores, rows = self.index.search(query, k, within)
        return Ranked(vectors.ids_of(rows), [float(s) for s in scores], self.index.name, model.model_id,
                      "; ".join(n for n in (model.note, self.index_note) if n) or None)

    # ---- more like this -------------------------------------------------------------------
    def similar(self, image_id: str, k: int) -> Ranked:
        """The k photos nearest `image_id`, without the photo itself nor its exact and near copies."""
        vectors = self.require()
        me = vectors.position(image_id)
        if me is None:
            raise KeyError(image_id)
        with self._lock:
            if self.duplicates is None:
                self.duplicates = DuplicateKeys.of(self.ws, vectors)
        query = vectors.rows(np.array([me]))[0]
        want = k + 8
        while True:  # ask for a few more than k, more again if copies filled the list
            scores, rows = self.index.search(query, min(want, len(vectors)), None)
            keep = ~self.duplicates.same_photo(me, rows)
            if keep.sum() >= k or want >= len(vectors):
                break
            want *= 4
        scores, rows = scores[keep][:k], rows[keep][:k]
        return Ranked(vectors.ids_of(rows), [float(s) for s in scores], self.index.name, self.model_id, self.index_note)
