"""What a photo is for clustering: its tag vector or its embedding, and its known classes.

``tags`` (default): ``tags.parquet`` pivoted to an image x word matrix of **per-facet
probabilities** (``prob``: a softmax within each facet). Why probabilities and not the raw
cosine ``score``: CLIP cosines sit in a narrow band (about 0.15 to 0.35) with a
model-dependent offset, so distances between raw scores are mostly noise; a probability is
bounded, comparable across words, and every facet sums to one, so each facet carries the
same weight whatever its number of words. No further scaling: standardising columns would
blow up words no photo ever shows.

``embeddings``: the image embeddings of the tag stage (L2-normalised). They see more than
the vocabulary can name (a hotel's carpet, its furniture line): the natural contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from alienstay.runtime.registry import Registry
from alienstay.workspace.layout import Workspace

CLASS_KINDS = ("hotel", "chain", "place")
PLACE_FACET = "place"  # the default facet whose top tag is the "place" pseudo-class


class ClusteringError(ValueError):
    """The input cannot be clustered; the message says why and what to do."""


def tag_feature_matrix(tags: pd.DataFrame, value: str = "prob") -> tuple[list[str], list[str], np.ndarray]:
    """Pivot tags.parquet to (image ids, words "facet:tag", image x word matrix of `value`: prob or selected)."""
    if tags.empty:
        raise ClusteringError("tags.parquet has no rows: run `alienstay tag` on a catalog with usable photos.")
    for column in ("model_id", "vocab_hash"):
        if column in tags and tags[column].nunique() > 1:
            raise ClusteringError(
                f"tags.parquet mixes several values of {column} ({sorted(tags[column].unique())}): "
                "re-run `alienstay tag` so every photo is tagged by one model and one vocabulary."
            )
    # Scatter by integer codes rather than pivot_table: flat memory at millions of rows.
    # Rows sorted by image id; columns in the vocabulary's own order (as first seen).
    image_codes, image_ids = pd.factorize(tags["image_id"].astype(str), sort=True)
    word_codes, words = pd.factorize(tags["facet"].astype(str) + ":" + tags["tag"].astype(str))
    matrix = np.zeros((len(image_ids), len(words)), dtype=np.float32)
    matrix[image_codes, word_codes] = tags[value].to_numpy(dtype=np.float32)
    return list(image_ids), list(words), matrix


def place_pseudo_classes(tags: pd.DataFrame, facet: str = PLACE_FACET) -> pd.Series:
    """The top tag of ``facet`` for every photo (selected or not): a pseudo-class from the alien's view."""
    place = tags[tags["facet"] == facet]
    if place.empty:
        return pd.Series(dtype="string", name="place")
    top = place.sort_values(["image_id", "prob"], ascending=[True, False]).drop_duplicates("image_id")
    return top.set_index("image_id")["tag"].astype("string").rename("place")


def known_classes(
    catalog: pd.DataFrame, tags: pd.DataFrame | None, image_ids: list[str], place_facet: str = PLACE_FACET
) -> pd.DataFrame:
    """One row a photo: its hotel, chain and top ``place_facet`` tag (missing values stay <NA>).

    For a plain folder the hotel is the parent folder (the folder source already stores it
    as ``hotel_id``; a catalog without it falls back to the image id's folder).
    """
    rows = catalog.drop_duplicates("image_id").set_index("image_id").reindex(image_ids)
    parent = pd.Series(
        [Path(i).parent.as_posix() for i in image_ids], index=rows.index, dtype="string"
    )
    hotel = rows["hotel_id"].astype("string") if "hotel_id" in rows else pd.Series(pd.NA, index=rows.index)
    classes = pd.DataFrame(index=pd.Index(image_ids, name="image_id"))
    classes["hotel"] = hotel.fillna(parent).astype("string").to_numpy()
    chain = rows["chain_id"] if "chain_id" in rows else pd.Series(pd.NA, index=rows.index)
    classes["chain"] = chain.astype("string").to_numpy()
    place = place_pseudo_classes(tags, place_facet) if tags is not None else pd.Series(dtype="string")
    classes["place"] = place.reindex(image_ids).astype("string").to_numpy()
    return classes


def check_clusterable(features: np.ndarray) -> None:
    """Refuse inputs no clustering can say anything about, with the reason."""
    if features.ndim != 2:
        raise ClusteringError(f"features must be a 2-D image x feature matrix, got shape {features.shape}.")
    n = len(features)
    if n < 2:
        raise ClusteringError(
            f"{n} photo(s) to cluster: clustering needs at least 2 (ingest and tag more photos)."
        )
    if not np.isfinite(features).all():
        raise ClusteringError("features hold NaN or infinite values: re-run `alienstay tag`.")
    if np.allclose(features, features[0], atol=1e-7):
        raise ClusteringError(
            f"all {n} feature vectors are identical: there is nothing to cluster "
            "(were the photos tagged by a real model? are they all the same photo?)."
        )


# ---- kinds of feature: one registration each ------------------------------------------------
@dataclass(frozen=True)
class FeatureKind:
    name: str
    # (workspace, tags of the usable photos) -> (image ids, image x feature matrix)
    load: Callable[[Workspace, pd.DataFrame], tuple[list[str], np.ndarray]]
    description: str = ""


def _tag_features(ws: Workspace, tags: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    ids, _, matrix = tag_feature_matrix(tags)
    return ids, matrix


def _embedding_features(ws: Workspace, tags: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    ids, matrix, _ = ws.read_embeddings()
    return [str(i) for i in ids], np.asarray(matrix, dtype=np.float32)


FEATURE_KINDS: Registry[FeatureKind] = Registry("feature kind", group="alienstay.feature_kinds")
# the built-in ones, in order (named without a lookup: importing this module loads no outside entry)
FEATURES = tuple(FEATURE_KINDS.register(kind).name for kind in (
    FeatureKind("tags", _tag_features, "per-facet tag probabilities, one vector a photo"),
    FeatureKind("embeddings", _embedding_features, "the tagger's image embeddings"),
))


def load_features(ws: Workspace, features: str, tags: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The feature matrix registered under ``features``."""
    if features not in FEATURE_KINDS:
        raise ClusteringError(f"--features {features!r}: choose one of {', '.join(FEATURE_KINDS.names())}.")
    return FEATURE_KINDS.get(features).load(ws, tags)


# ---- synthetic data (tests and the benchmark) -----------------------------------------------
def planted_tag_vectors(
    n: int, groups: int, facets: int = 10, words_per_facet: int = 10, concentration: float = 30.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-facet probability vectors drawn around ``groups`` hidden profiles: (features, true groups).

    ``groups=0`` draws every photo from its own random profile: no structure at all.
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, max(groups, 1), size=n) if groups else np.arange(n)
    profiles = rng.dirichlet(np.full(words_per_facet, 0.3), size=(max(groups, 1) if groups else n, facets))
    alpha = profiles[truth] * concentration + 1e-3  # (n, facets, words)
    gamma = rng.standard_gamma(alpha)
    probs = gamma / gamma.sum(axis=2, keepdims=True)
    return probs.reshape(n, facets * words_per_facet).astype(np.float32), truth
