"""The clustering methods (scikit-learn), each registered once in ``CLUSTER_METHODS``.

- ``kmeans`` (primary): k-means, k chosen by the silhouette (on a sample: it is O(n^2)).
  ``kmeans_<class>`` is the same method forced to the number of classes (hotels, chains,
  place tags), so cluster counts and class counts can be compared head to head.
- ``agglomerative``: average linkage on cosine distance, with the silhouette's k.
- ``hdbscan``: density clusters; photos in no dense region get ``-1`` (noise).

A new method is one ``register_method`` call (see docs/extending.md).
Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn import metrics
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans

from alienstay.clustering.features import ClusteringError, check_clusterable
from alienstay.runtime.registry import Registry

PRIMARY_METHOD = "kmeans"  # the clustering a photo is shown with (web gallery, report map)
NOISE = -1

SILHOUETTE_SAMPLE = 5_000  # silhouette on at most this many points: it is O(n^2)
KMEANS_SCAN_SAMPLE = 20_000  # the scan over k fits k-means on at most this many photos
PAIRWISE_LIMIT = 20_000  # agglomerative and HDBSCAN hold O(n^2) work; above this they are skipped
KMEANS_INITS = 3


def check_k(k: int, n: int) -> None:
    if k < 2:
        raise ClusteringError(f"k = {k}: clustering needs at least 2 clusters.")
    if k > n - 1:
        raise ClusteringError(
            f"k = {k} clusters asked for {n} photos: k must be at most the number of photos minus one "
            f"({n - 1}); lower --k-max or add photos."
        )


# ---- methods ----------------------------------------------------------------------------
def kmeans_labels(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    check_k(k, len(features))
    model = KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=seed)
    return model.fit_predict(features).astype(np.int64)


def silhouette(features: np.ndarray, labels: np.ndarray, seed: int = 0, sample_size: int = SILHOUETTE_SAMPLE) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    size = min(len(features), sample_size)
    return float(metrics.silhouette_score(features, labels, sample_size=size, random_state=seed))


def choose_k_by_silhouette(
    features: np.ndarray,
    k_min: int = 2,
    k_max: int = 30,
    seed: int = 0,
    sample_size: int = SILHOUETTE_SAMPLE,
    fit_sample: int = KMEANS_SCAN_SAMPLE,
) -> tuple[int, dict[int, float]]:
    """The k in [k_min, k_max] (clamped to n - 1) whose k-means has the highest silhouette.

    Above ``fit_sample`` photos the scan runs on a random sample of that size (one k-means a
    k on every photo would cost the scan's length times a full fit); the caller then fits
    the chosen k on every photo.
    """
    from rich.progress import track

    n = len(features)
    check_clusterable(features)
    if k_min < 2:
        raise ClusteringError(f"--k-min {k_min}: the silhouette needs at least 2 clusters.")
    if k_min > n - 1:
        raise ClusteringError(
            f"--k-min {k_min} but only {n} photos: the silhouette needs k <= {n - 1}; lower --k-min or add photos."
        )
    if k_max < k_min:
        raise ClusteringError(f"--k-max {k_max} is below --k-min {k_min}.")
    ks = range(k_min, min(k_max, n - 1) + 1)
    if n > fit_sample:
        rows = np.random.default_rng(seed).choice(n, size=fit_sample, replace=False)
        features = features[np.sort(rows)]
    scores = {}
    for k in track(ks, description="silhouette over k", transient=True, disable=len(ks) < 3):
        scores[k] = silhouette(features, kmeans_labels(features, k, seed), seed, sample_size)
    best = max(scores, key=lambda k: (np.nan_to_num(scores[k], nan=-2.0), -k))
    return best, scores


def agglomerative_labels(features: np.ndarray, k: int) -> np.ndarray:
    """Average linkage on cosine distance: groups photos by the shape of their profile, not its size."""
    check_k(k, len(features))
    model = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="average")
    return model.fit_predict(features).astype(np.int64)


def hdbscan_min_cluster_size(n: int) -> int:
    """About 1 % of the photos, at least 2 and at most 100: small enough to find a hotel's room types."""
    return int(min(100, max(2, n // 100)))


def hdbscan_labels(features: np.ndarray, min_cluster_size: int | None = None) -> np.ndarray:
    size = min_cluster_size or hdbscan_min_cluster_size(len(features))
    model = HDBSCAN(min_cluster_size=size, copy=True)
    return model.fit_predict(features).astype(np.int64)


def cluster_count(labels: np.ndarray) -> int:
    return int(len(set(labels.tolist()) - {NOISE}))



# ---- the registry ------------------------------------------------------------------------
# fit(features, k, seed) -> labels; k is the silhouette's choice (or a class count), and a
# method that finds its own number of clusters ignores it.
Fit = Callable[[np.ndarray, int, int], np.ndarray]


@dataclass(frozen=True)
class ClusterMethod:
    name: str
    fit: Fit
    pairwise: bool = False  # O(n^2) memory: skipped above PAIRWISE_LIMIT photos, with the reason
    description: str = ""


# Every method the stage runs, scores against every class and names the clusters of.
CLUSTER_METHODS: Registry[ClusterMethod] = Registry("clustering method", group="alienstay.clustering_methods")


def register_method(name: str, fit: Fit, pairwise: bool = False, description: str = "") -> ClusterMethod:
    """Add a method (``ValueError`` if the name is taken)."""
    return CLUSTER_METHODS.register(ClusterMethod(name, fit, pairwise, description))


register_method(PRIMARY_METHOD, kmeans_labels, description="k-means, k chosen by the silhouette")
register_method("agglomerative", lambda x, k, seed: agglomerative_labels(x, k), pairwise=True,
                description="average-linkage agglomerative clustering on cosine distance into the silhouette's k")
register_method("hdbscan", lambda x, k, seed: hdbscan_labels(x), pairwise=True,
                description="HDBSCAN: finds its own number of clusters, leaves noise out")


# ---- the 2-D map ---------------------------------------------------------------------------
def map_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str, str]:
    """2-D coordinates for the map: UMAP, or t-SNE / PCA when there are too few photos for UMAP."""
    n = len(features)
    if n >= 30:
        import warnings

        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1)
        with warnings.catch_warnings():
            # A seed makes UMAP single-threaded; that is the point (determinism), not news.
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return reducer.fit_transform(features).astype(np.float32), "umap", ""
    if n >= 5:
        from sklearn.manifold import TSNE

        perplexity = max(1.0, min(30.0, (n - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(features)
        return xy.astype(np.float32), "tsne", f"{n} photos: too few for UMAP's neighbour graph (needs 30)"
    from sklearn.decomposition import PCA

    xy = PCA(n_components=min(2, n, features.shape[1])).fit_transform(features)
    if xy.shape[1] < 2:
        xy = np.column_stack([xy, np.zeros(len(xy))])
    return xy.astype(np.float32), "pca", f"{n} photos: too few for UMAP or t-SNE"


