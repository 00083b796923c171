"""The text side of the tag stage's own model: a free phrase -> a vector beside the photos.

The embeddings' `meta.json` records the model that made them (id, revision, dtype). Search
must embed the phrase with that same model, or the cosine means nothing; so the model is
loaded again through the encoder loader, and a different revision is reported.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from alienstay.models import ModelUnavailable

OFFLINE_PREFIX = "offline:"
MAX_TEXT = 300  # characters of a phrase; longer is refused (a search box, not a document)


_LOADED: dict[tuple[str, str, str], object] = {}
_LOADING = threading.Lock()


def cached_encoder(spec: str, device: str = "cpu", dtype: str = "float32"):
    """One loaded encoder a process for each (model, device, dtype): a server, or a test session, loads it once."""
    from alienstay.encoders import load_encoder

    key = (spec, device, dtype)
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = load_encoder(spec, device=device, dtype=dtype)
    return _LOADED[key]


class QueryModelUnavailable(RuntimeError):
    """The model that made the embeddings cannot be loaded here; the message says what to do."""


def encoder_spec(meta: dict) -> str:
    """What to hand the encoder loader for the model recorded in the embeddings' meta."""
    if meta.get("load_as"):  # written by the tag stage from the encoder registry
        return str(meta["load_as"])
    model_id = str(meta.get("model_id") or "")  # embeddings from before `load_as`
    return "offline" if model_id.startswith(OFFLINE_PREFIX) else model_id


@dataclass
class QueryModel:
    encoder: object
    model_id: str
    note: str | None  # e.g. a revision other than the one that embedded the photos

    def embed(self, text: str) -> np.ndarray:
        vector = self.encoder.encode_texts([text])
        return np.asarray(vector.detach().cpu().float().numpy() if hasattr(vector, "detach") else vector, np.float32)[0]


def load_query_model(meta: dict, device: str = "cpu") -> QueryModel:
    """The recorded model, or QueryModelUnavailable saying why and that word search still works."""
    spec = encoder_spec(meta)
    if not spec:
        raise QueryModelUnavailable("the embeddings do not record which model made them: rerun `alienstay tag`.")
    dtype = str(meta.get("dtype") or "float32")
    try:
        encoder = cached_encoder(spec, device, dtype if spec != "offline" else "float32")
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
