"""Distinct-hotel top-K: is a photo's own hotel (chain) among the first K *hotels* it ranks?

An extra table beside the headline figures, NOT the Hotels-50K paper's metric: the dataset's
evaluator counts the first K *images* (``retrieval_images``). Here a query ranks the gallery's
hotels, each by its best-matching photo, and scores a hit at K when its own hotel is among the
first K hotels (top-1/10/100 by hotel, top-1/3/5 by chain; chain -1 photos are left out of the
chain figures). Counting distinct hotels can only raise top-10/100 and chain top-3/5 above the
image-level figures, the more so the more photos a hotel has. A query's own exact and near
copies are left out of its gallery; a query whose hotel has no other photo there cannot be
answered and is not counted. Ties count against the query: a hotel tied with the right one ranks first.

Cost: a block of queries against the gallery sorted by label, a running maximum per label,
so memory is (queries in a block) x (labels), whatever the number of photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alienstay.workspace.embeddings import normalise

HOTEL_KS = (1, 10, 100)
CHAIN_KS = (1, 3, 5)
QUERY_BLOCK = 64
GALLERY_BLOCK = 1 << 15
UNKNOWN_LABELS = frozenset({"", "-1", "nan", "None", "<NA>"})  # Hotels-50K's chain -1 is "no chain"


@dataclass(frozen=True)
class Accuracy:
    ks: tuple[int, ...]
    hits: dict[int, float]  # k -> share of answered queries whose label is in the top k
    queries: int  # answered queries
    unanswerable: int  # queries whose label has no other photo
    labels: int  # distinct labels in the gallery

    def chance(self, k: int) -> float:
        """What ranking the labels at random would score (k labels of `labels`)."""
        return min(1.0, k / self.labels) if self.labels else 0.0


def label_codes(labels: pd.Series) -> tuple[np.ndarray, int]:
    """Labels -> codes; unknown labels (missing, chain -1) -> -1 (neither queried nor in the gallery)."""
    text = labels.astype("string").fillna("")
    known = ~text.isin(UNKNOWN_LABELS).to_numpy(dtype=bool)
    codes = np.full(len(text), -1, dtype=np.int64)
    factor, uniques = pd.factorize(text[known])
    codes[known] = factor
    return codes, len(uniques)


def best_per_label(scores: np.ndarray, codes_sorted: np.ndarray, order: np.ndarray, n_labels: int) -> np.ndarray:
    """(Q, L): for each query, the best score among each label's gallery photos (-inf when none)."""
    best = np.full((scores.shape[0], n_labels), -np.inf, dtype=np.float32)
    for start in range(0, len(order), GALLERY_BLOCK):
        part = order[start : start + GALLERY_BLOCK]
        codes = codes_sorted[start : start + GALLERY_BLOCK]
        runs = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        block_best = np.maximum.reduceat(scores[:, part], runs, axis=1)
        labels = codes[runs]
        best[:, labels] = np.maximum(best[:, labels], block_best)
    return best


def top_k_accuracy(
    features: np.ndarray, labels: pd.Series, ks: tuple[int, ...], copies: "CopyMask | None" = None,
    queries: np.ndarray | None = None, gallery: np.ndarray | None = None,
) -> Accuracy:
    """Every (or each given) row as a query against the gallery rows (default: all) with a known label."""
    codes, n_labels = label_codes(labels)
    in_gallery = (codes >= 0) if gallery is None else (codes >= 0) & np.asarray(gallery, dtype=bool)
    gallery_rows = np.flatnonzero(in_gallery)
    labels_here = len(np.unique(codes[gallery_rows]))
    if labels_here < 2:  # one class: every neighbour is of it; the figure would be 100 % by construction
        return Accuracy(ks, {k: float("nan") for k in ks}, 0, len(gallery_rows), labels_here)
    order = gallery_rows[np.argsort(codes[gallery_rows], kind="stable")]
    codes_sorted = codes[order]
    known = np.flatnonzero(codes >= 0)
    asked = gallery_rows if queries is None else np.intersect1d(np.asarray(queries, dtype=np.int64), known)
    features = normalise(features)
    hits = {k: 0 for k in ks}
    answered = unanswerable = 0
    for start in range(0, len(asked), QUERY_BLOCK):
        block = asked[start : start + QUERY_BLOCK]
        scores = features[block] @ features.T
        for row, q in enumerate(block):  # the query and its copies are not in its gallery
            same = copies(q, np.arange(len(features))) if copies else np.arange(len(features)) == q
            scores[row, same] = -np.inf
        best = best_per_label(scores, codes_sorted, order, n_labels)
        own = best[np.arange(len(block)), codes[block]]
        ok = np.isfinite(own)  # its hotel has a photo in its gallery besides itself and its copies
        # Ties count against the query: every other label at least as close ranks before its own.
        rank = (best >= own[:, None]).sum(axis=1) - 1
        answered += int(ok.sum())
        unanswerable += int((~ok).sum())
        for k in ks:
            hits[k] += int(((rank < k) & ok).sum())
    return Accuracy(ks, {k: hits[k] / answered if answered else float("nan") for k in ks}, answered, unanswerable, labels_here)


class CopyMask:
    """Adapter: DuplicateKeys.same_photo over all rows (rows of the features = rows of the keys)."""

    def __init__(self, keys) -> None:
        self.keys = keys

    def __call__(self, query: int, rows: np.ndarray) -> np.ndarray:
        return self.keys.same_photo(int(query), rows)
