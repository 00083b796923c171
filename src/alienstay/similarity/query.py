"""The text side of the tag stage's own model: a free phrase -> a vector beside the photos.

The embeddings' `meta.json` records the model that made them (id, revision, dtype). Search
must embed the phrase with that same model, or the cosine means nothing; so the model is
loaded again through the encoder loader, and a different revision is reported.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from alienstay.runtime.models import ModelUnavailable

MAX_TEXT = 300  # characters of a phrase; longer is refused (a search box, not a document)


_LOADED: dict[tuple, object] = {}
_LOADING = threading.Lock()


def cached_encoder(model: str, device: str = "cpu", dtype: str = "float32", text_only: bool = False):
    """One loaded encoder a process for each (registry entry, model, device, dtype): loaded once.
    `text_only`: its text side alone where the entry has one (a gallery worker embeds phrases only)."""
    from alienstay.encoders import entry_for, load_entry

    entry, model_id = entry_for(model)
    key = (entry.name, model_id if entry.takes_model else None, device, dtype, text_only)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load_entry(entry, model_id, device, dtype, text_only=text_only)
    return _LOADED[key]


class QueryModelUnavailable(RuntimeError):
    """The model that made the embeddings cannot be loaded here; the message says what to do."""


def encoder_spec(meta: dict) -> tuple[str, str]:
    """(what to hand the encoder registry, dtype) for the model recorded in the embeddings' meta.

    `load_as` is written by the tag stage from the encoder registry; embeddings from before it
    name their model by id, which the registry reads too (`offline:...` names the offline entry,
    a hub id or folder the hf entry). An entry without the `search` role is refused.
    """
    from alienstay.encoders import entry_for

    spec = str(meta.get("load_as") or meta.get("model_id") or "")
    if not spec:
        raise QueryModelUnavailable("the embeddings do not record which model made them: rerun `alienstay tag`.")
    entry, _ = entry_for(spec)
    if "search" not in entry.roles:
        raise QueryModelUnavailable(f"the {entry.name} encoder that made the embeddings has no text side for search.")
    dtype = str(meta.get("dtype") or "float32")
    return spec, dtype if dtype in entry.dtypes else "float32"


CACHED_PHRASES = 2048  # phrases a worker remembers the vector of (1.5 KB each at 384-d)


@dataclass
class QueryModel:
    """The query model, with the vectors of the phrases searched last: people repeat searches (the
    home page's examples, a phrase paged through), and a repeat then costs no forward pass.
    `hits` / `misses` count how often that happened."""

    encoder: object
    model_id: str
    note: str | None  # e.g. a revision other than the one that embedded the photos
    hits: int = 0
    misses: int = 0
    _recent: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def embed(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._recent.get(text)
            if vector is not None:
                self._recent.move_to_end(text)
                self.hits += 1
                return vector
            self.misses += 1
        vector = self.encode(text)
        vector.flags.writeable = False  # shared by every request that searches this phrase
        with self._lock:
            self._recent[text] = vector
            if len(self._recent) > CACHED_PHRASES:
                self._recent.popitem(last=False)
        return vector

    def encode(self, text: str) -> np.ndarray:
        """The phrase through the model, uncached."""
        vector = self.encoder.encode_texts([text])
        return np.asarray(vector.detach().cpu().float().numpy() if hasattr(vector, "detach") else vector, np.float32)[0]


def load_query_model(meta: dict, device: str = "cpu") -> QueryModel:
    """The recorded model, or QueryModelUnavailable saying why and that word search still works."""
    spec, dtype = encoder_spec(meta)
    try:
        encoder = cached_encoder(spec, device, dtype, text_only=True)
    except (ModelUnavailable, ImportError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QueryModelUnavailable(
            f"search by meaning needs the model that embedded the photos ({meta.get('model_id')}), "
            f"and it cannot be loaded here: {first} Search by alien words still works."
        ) from error
    recorded = meta.get("model_revision")
    note = None
    if recorded and getattr(encoder, "revision", recorded) != recorded:
        note = f"the photos were embedded with revision {recorded}, the phrase with {encoder.revision}"
    return QueryModel(encoder, str(meta.get("model_id")), note)
