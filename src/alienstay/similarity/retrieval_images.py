"""Hotels-50K's own counting rule: image-level top-K, as the dataset's `evaluate/retrieval.py` counts.

Each query ranks the gallery *images* by cosine, best first; its first 100 are its list (the
evaluator's input file: the query's image id, then 100 gallery image ids). Hotel top-K is the
share of queries with an image of their own hotel among the first K images of their list; chain
top-K the same for the chain, over the queries that have a chain. Chain -1 ("no chain") images
stay in the lists, where they can only miss, and chain -1 queries are skipped for the chain
figures: the official rule. The paper's variant drops chain -1 throughout: chain -1 images leave
the lists and chain -1 queries leave both figures.

Chance at K: the probability that K gallery images drawn at random include one of the query's
hotel (chain), hypergeometric over that query's own gallery, averaged over the counted queries.
Ties never help a query: among equal scores, other hotels' and chains' images rank first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alienstay.workspace.embeddings import normalise

HOTEL_KS = (1, 10, 100)
CHAIN_KS = (1, 3, 5)
LIST_LENGTH = 100  # what the evaluator reads: a query id and 100 result ids
SCORE_CELLS = 1 << 26  # query block x photos scored at once (256 MiB of float32): fewer passes over the features
NO_LABEL = -1


@dataclass(frozen=True)
class Lists:
    """Each counted query's ranked gallery rows, and what chance needs about its gallery."""

    queries: np.ndarray  # row numbers of the queries kept (their hotel has a photo in their gallery)
    rows: np.ndarray  # (queries, <= 100) gallery row numbers, best first; -1 pads a short gallery
    gallery: np.ndarray  # per query: photos in its gallery
    same_hotel: np.ndarray  # per query: of them, photos of its hotel
    same_chain: np.ndarray  # per query: of them, photos of its chain (0 when it has none)
    left_out: int  # queries whose hotel has no photo in their gallery: they cannot be answered


@dataclass(frozen=True)
class Figures:
    """Percent of counted queries with a hit in the first K images, and chance beside it."""

    hotel: dict[int, float]
    chain: dict[int, float]
    hotel_chance: dict[int, float]
    chain_chance: dict[int, float]
    queries: int  # counted for the hotel figures
    chain_queries: int  # counted for the chain figures (queries with a chain)

    def as_dict(self) -> dict:
        return {"hotel": _keyed(self.hotel), "chain": _keyed(self.chain), "queries": self.queries,
                "chain_queries": self.chain_queries,
                "chance": {"hotel": _keyed(self.hotel_chance), "chain": _keyed(self.chain_chance)}}


def _keyed(values: dict[int, float]) -> dict[str, float]:
    return {str(k): v for k, v in values.items()}


def ranked_lists(
    features: np.ndarray,
    hotel: np.ndarray,
    chain: np.ndarray,
    queries: np.ndarray,
    gallery: np.ndarray,
    exclude: Callable[[int], np.ndarray] | None = None,
    length: int = LIST_LENGTH,
) -> Lists:
    """Each query's first `length` gallery rows (`gallery`: a mask over rows), best first.

    `hotel`/`chain` are integer codes per row (-1: none); `exclude(q)` masks the rows left out of
    query q's gallery (itself and its copies) when queries and gallery share photos.
    """
    features = normalise(features)
    block = max(1, SCORE_CELLS // max(1, len(features)))
    outside = np.flatnonzero(~gallery)  # rows no query may find
    size = int(gallery.sum())
    per_hotel = np.bincount(hotel[gallery & (hotel >= 0)], minlength=int(hotel.max()) + 1)
    per_chain = np.bincount(chain[gallery & (chain >= 0)], minlength=int(chain.max()) + 1)
    kept, lists, sizes, hotels, chains = [], [], [], [], []
    for start in range(0, len(queries), block):
        part = np.asarray(queries[start : start + block], dtype=np.int64)
        scores = features[part] @ features.T
        scores[:, outside] = -np.inf
        for row, q in enumerate(part):
            left = np.flatnonzero(exclude(int(q)) & gallery) if exclude is not None else outside[:0]
            scores[row, left] = -np.inf
            same_hotel = int(per_hotel[hotel[q]] - (hotel[left] == hotel[q]).sum())
            if same_hotel == 0:
                continue
            same_chain = int(per_chain[chain[q]] - (chain[left] == chain[q]).sum()) if chain[q] != NO_LABEL else 0
            kept.append(q)
            lists.append(_first(scores[row], hotel, chain, q, min(length, size - len(left))))
            sizes.append(size - len(left))
            hotels.append(same_hotel)
            chains.append(same_chain)
    rows = np.full((len(kept), length), -1, dtype=np.int64)
    for i, ranked in enumerate(lists):
        rows[i, : len(ranked)] = ranked
    return Lists(np.asarray(kept, dtype=np.int64), rows, np.asarray(sizes), np.asarray(hotels),
                 np.asarray(chains), len(queries) - len(kept))  # fmt: skip


def _first(scores: np.ndarray, hotel: np.ndarray, chain: np.ndarray, q: int, k: int) -> np.ndarray:
    """The k best rows (rows out of q's gallery score -inf); among equal scores q's chain's, then hotel's, last."""
    cut = np.partition(scores, len(scores) - k)[len(scores) - k]
    # Every row scoring at least the k-th best is a candidate, so ties at the cut are ordered too.
    candidates = np.flatnonzero(scores >= cut)
    own_hotel = hotel[candidates] == hotel[q]
    own_chain = (chain[candidates] == chain[q]) & (chain[q] != NO_LABEL)
    tie_rank = 2 * own_hotel.astype(np.int8) + own_chain.astype(np.int8)
    order = np.lexsort((candidates, tie_rank, -scores[candidates]))[:k]
    return candidates[order]


def first_hit(lists: Lists, labels: np.ndarray) -> np.ndarray:
    """Per query, the position of the first image of its own label in its list (the list length: none)."""
    own = labels[lists.queries][:, None]
    found = (lists.rows >= 0) & (labels[np.maximum(lists.rows, 0)] == own)
    return np.where(found.any(axis=1), found.argmax(axis=1), lists.rows.shape[1])


def chance(gallery: np.ndarray, same: np.ndarray, k: int) -> np.ndarray:
    """P(at least one of `same` photos among k drawn without replacement from `gallery`), per query."""
    m = gallery[:, None].astype(np.float64)
    i = np.arange(k, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        miss = np.where(i < m, np.clip((m - same[:, None] - i) / (m - i), 0.0, 1.0), 1.0)
    return 1.0 - miss.prod(axis=1)


def figures(lists: Lists, hotel: np.ndarray, chain: np.ndarray) -> Figures:
    """The evaluator's counting on `lists`: hotel over every query, chain over queries with a chain."""
    hotel_first = first_hit(lists, hotel)
    chain_first = first_hit(lists, chain)
    with_chain = chain[lists.queries] != NO_LABEL

    def share(first: np.ndarray, counted: np.ndarray, k: int) -> float:
        return 100.0 * float((first[counted] < k).mean()) if counted.any() else float("nan")

    def expected(same: np.ndarray, counted: np.ndarray, k: int) -> float:
        return 100.0 * float(chance(lists.gallery[counted], same[counted], k).mean()) if counted.any() else float("nan")

    everyone = np.ones(len(lists.queries), dtype=bool)
    return Figures(
        hotel={k: share(hotel_first, everyone, k) for k in HOTEL_KS},
        chain={k: share(chain_first, with_chain, k) for k in CHAIN_KS},
        hotel_chance={k: expected(lists.same_hotel, everyone, k) for k in HOTEL_KS},
        chain_chance={k: expected(lists.same_chain, with_chain, k) for k in CHAIN_KS},
        queries=int(everyone.sum()),
        chain_queries=int(with_chain.sum()),
    )


def official_and_variant(
    features: np.ndarray, hotel: np.ndarray, chain: np.ndarray, queries: np.ndarray, gallery: np.ndarray,
    exclude: Callable[[int], np.ndarray] | None = None,
) -> tuple[Lists, Figures, Figures]:
    """The official rule's lists and figures, and the paper's variant (chain -1 dropped throughout)."""
    lists = ranked_lists(features, hotel, chain, queries, gallery, exclude)
    official = figures(lists, hotel, chain)
    known = chain != NO_LABEL
    variant_lists = ranked_lists(features, hotel, chain, queries[known[queries]], gallery & known, exclude)
    return lists, official, figures(variant_lists, hotel, chain)
