"""Clusters against the known classes (ARI, NMI, similarity), cluster names, the whole run on arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.metrics.cluster import contingency_matrix

from alienstay.clustering.features import CLASS_KINDS, check_clusterable
from alienstay.clustering.methods import (
    CLUSTER_METHODS,
    NOISE,
    PAIRWISE_LIMIT,
    PRIMARY_METHOD,
    choose_k_by_silhouette,
    cluster_count,
    map_2d,
)

SIMILARITY_SAMPLE = 3_000  # photos used to compare within-class and between-class similarity


def compare_with_classes(labels: np.ndarray, classes: pd.Series) -> dict[str, float]:
    """ARI, NMI, homogeneity and completeness of clusters vs one kind of class (rows with a class only)."""
    known = classes.notna().to_numpy()
    truth = classes[known].astype(str).to_numpy()
    found = labels[known]
    return {
        "photos": int(known.sum()),
        "clusters": cluster_count(found),
        "classes": int(len(np.unique(truth))),
        "ari": float(metrics.adjusted_rand_score(truth, found)),
        "nmi": float(metrics.normalized_mutual_info_score(truth, found)),
        "homogeneity": float(metrics.homogeneity_score(truth, found)),
        "completeness": float(metrics.completeness_score(truth, found)),
    }


def similarity_within_between(
    features: np.ndarray, classes: pd.Series, seed: int = 0, sample: int = SIMILARITY_SAMPLE
) -> dict[str, float]:
    """Mean cosine similarity of two photos of the same class vs two of different classes."""
    known = np.flatnonzero(classes.notna().to_numpy())
    rng = np.random.default_rng(seed)
    if len(known) > sample:
        known = np.sort(rng.choice(known, size=sample, replace=False))
    x = features[known].astype(np.float64)
    x = x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)
    sims = x @ x.T
    truth = classes.to_numpy()[known].astype(str)
    same = truth[:, None] == truth[None, :]
    off_diagonal = ~np.eye(len(known), dtype=bool)
    within, between = sims[same & off_diagonal], sims[~same]
    return {
        "within": float(within.mean()) if within.size else float("nan"),
        "between": float(between.mean()) if between.size else float("nan"),
        "pairs_within": int(within.size // 2),
    }


def spread_of_classes(labels: np.ndarray, classes: pd.Series) -> tuple[float, float]:
    """(mean number of classes a cluster holds, mean number of clusters a class is split over)."""
    known = classes.notna().to_numpy()
    table = contingency_matrix(classes[known].astype(str).to_numpy(), labels[known])
    return float((table > 0).sum(axis=0).mean()), float((table > 0).sum(axis=1).mean())



NO_NAME = "(no selected tag)"


def cluster_names(
    tag_matrix: np.ndarray,
    words: list[str],
    labels: np.ndarray,
    top: int = 2,
    min_mean: float = 0.15,
    min_lift: float = 1.2,
) -> dict[int, str]:
    """Name each cluster by its most distinctive words: highest lift (cluster mean / overall mean).

    Only words the cluster actually shows (mean prob >= ``min_mean``) may name it, so a
    word that is rare everywhere cannot win on a tiny denominator.
    """
    overall = tag_matrix.mean(axis=0) + 1e-6
    names = {}
    for cluster in sorted(set(labels.tolist())):
        if cluster == NOISE:
            names[cluster] = "noise"
            continue
        mean = tag_matrix[labels == cluster].mean(axis=0)
        lift = np.where((mean >= min(min_mean, mean.max())) & (mean > 0), mean / overall, -np.inf)
        if not np.isfinite(lift).any():
            names[cluster] = NO_NAME  # nothing was selected on these photos: no word may name them
            continue
        best = np.argsort(-lift, kind="stable")[:top]
        # The first word always names the cluster; later ones only if they really stand out.
        chosen = [i for rank, i in enumerate(best) if np.isfinite(lift[i]) and (rank == 0 or lift[i] >= min_lift)]
        names[cluster] = " + ".join(words[i].split(":", 1)[1] for i in chosen)
    return names


# ---- the whole analysis on arrays ---------------------------------------------------------
@dataclass
class ClusteringResult:
    image_ids: list[str]
    features_name: str
    labels: dict[str, np.ndarray]  # method -> labels
    names: dict[str, dict[int, str]]  # method -> cluster -> name
    best_k: int
    silhouettes: dict[int, float]
    xy: np.ndarray
    map_method: str
    map_reason: str
    comparison: pd.DataFrame  # method x class kind -> scores
    similarity: pd.DataFrame  # class kind -> within / between
    skipped: dict[str, str] = field(default_factory=dict)  # method or class kind -> reason


def run_clustering(
    image_ids: list[str],
    features: np.ndarray,
    classes: pd.DataFrame,
    features_name: str = "tags",
    naming: tuple[np.ndarray, list[str]] | None = None,
    k_min: int = 2,
    k_max: int = 30,
    seed: int = 0,
) -> ClusteringResult:
    """Every method on one feature matrix, each compared with each kind of known class.

    ``naming`` is the (tag matrix, words) used to name clusters (the tag features
    themselves, or the tags of the same photos when clustering embeddings).
    """
    check_clusterable(features)
    n = len(features)
    best_k, silhouettes = choose_k_by_silhouette(features, k_min, k_max, seed)
    primary = CLUSTER_METHODS.get(PRIMARY_METHOD)
    labels = {PRIMARY_METHOD: primary.fit(features, best_k, seed)}
    skipped: dict[str, str] = {}

    for kind in CLASS_KINDS:
        count = int(classes[kind].dropna().nunique())
        method = f"{PRIMARY_METHOD}_{kind}"
        if count < 2:
            skipped[method] = f"fewer than 2 {kind} classes known"
        elif count > n - 1:
            skipped[method] = f"{count} {kind} classes for {n} photos: k-means needs k <= n - 1"
        else:
            labels[method] = primary.fit(features, count, seed)

    for method in CLUSTER_METHODS:
        if method.name == PRIMARY_METHOD:
            continue
        if method.pairwise and n > PAIRWISE_LIMIT:
            skipped[method.name] = f"{n} photos > {PAIRWISE_LIMIT}: O(n^2) memory; see benchmarks/bench_clustering.py"
        else:
            labels[method.name] = method.fit(features, best_k, seed)

    tag_matrix, words = naming if naming is not None else (features, [f"f:{i}" for i in range(features.shape[1])])
    names = {method: cluster_names(tag_matrix, words, found) for method, found in labels.items()}

    rows, similarity = [], []
    for kind in CLASS_KINDS:
        known = classes[kind].dropna()
        if known.nunique() < 2:
            skipped[kind] = f"{known.nunique()} distinct {kind} known for these photos: nothing to compare with"
            continue
        for method, found in labels.items():
            rows.append({"method": method, "class": kind, **compare_with_classes(found, classes[kind])})
        similarity.append({"class": kind, **similarity_within_between(features, classes[kind], seed)})

    xy, map_method, map_reason = map_2d(features, seed)
    return ClusteringResult(
        image_ids=list(image_ids),
        features_name=features_name,
        labels=labels,
        names=names,
        best_k=best_k,
        silhouettes=silhouettes,
        xy=xy,
        map_method=map_method,
        map_reason=map_reason,
        comparison=pd.DataFrame(rows),
        similarity=pd.DataFrame(similarity),
        skipped=skipped,
    )


def clusters_table(result: ClusteringResult, methods: list[str] | None = None) -> pd.DataFrame:
    """The agreed clusters.parquet columns, one row a (photo, method), with the shared 2-D map.

    clusters.parquet holds the primary method only (one row a photo, as readers expect);
    the table of every method goes beside it.
    """
    frames = []
    for method in methods or list(result.labels):
        found = result.labels[method]
        frames.append(
            pd.DataFrame(
                {
                    "image_id": pd.array(result.image_ids, dtype="string"),
                    "cluster": found.astype(np.int64),
                    "method": method,
                    "k": cluster_count(found),
                    "features": result.features_name,
                    "name": [result.names[method][c] for c in found.tolist()],
                    "x": result.xy[:, 0].astype(np.float32),
                    "y": result.xy[:, 1].astype(np.float32),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["method"] = table["method"].astype("string")
    table["features"] = table["features"].astype("string")
    table["name"] = table["name"].astype("string")
    return table


