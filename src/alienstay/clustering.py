"""Cluster the photos by what the alien sees in them, and compare with the real classes.

Features
--------
``tags`` (default): the alien's own view of a photo. ``tags.parquet`` is pivoted to an
image x word matrix of **per-facet probabilities** (``prob``: a softmax within each facet).
Why probabilities and not the raw cosine ``score``: CLIP cosines sit in a narrow band
(about 0.15 to 0.35) with a model-dependent offset, so distances between raw scores are
mostly noise; a probability is bounded, comparable across words, and every facet sums
to one, so each facet (one question the alien asks: what place, what light, what
view, ...) carries the same weight whatever its number of words. No further scaling:
standardising columns would blow up words no photo ever shows.

``embeddings``: the image embeddings of the tag stage (L2-normalised), read through
``alienstay.tagging.read_embeddings``. They see more than the vocabulary can name (a
hotel's carpet, its furniture line), so they are the natural contrast to the tags.

Methods (scikit-learn)
----------------------
- ``kmeans``: k-means, k chosen by the silhouette (on a sample: the silhouette is O(n^2)).
- ``kmeans_<class>``: k-means forced to the number of classes (hotels, chains, place tags),
  so cluster counts and class counts can be compared head to head.
- ``agglomerative``: average linkage on cosine distance, with the silhouette's k.
- ``hdbscan``: density clusters; photos in no dense region get ``-1`` (noise).

Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics.cluster import contingency_matrix

from alienstay import catalog as cat
from alienstay.workspace import Workspace, write_parquet, write_text

FEATURES = ("tags", "embeddings")
PRIMARY_METHOD = "kmeans"  # the clustering a photo is shown with (web gallery, report map)
CLASS_KINDS = ("hotel", "chain", "place")
PLACE_FACET = "place"
NOISE = -1

SILHOUETTE_SAMPLE = 5_000  # silhouette on at most this many points: it is O(n^2)
KMEANS_SCAN_SAMPLE = 20_000  # the scan over k fits k-means on at most this many photos
PAIRWISE_LIMIT = 20_000  # agglomerative and HDBSCAN hold O(n^2) work; above this they are skipped
SIMILARITY_SAMPLE = 3_000  # photos used to compare within-class and between-class similarity
KMEANS_INITS = 3


class ClusteringError(ValueError):
    """The input cannot be clustered; the message says why and what to do."""


# ---- features ---------------------------------------------------------------------------
def tag_feature_matrix(tags: pd.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """Pivot tags.parquet to (image ids, words "facet:tag", image x word matrix of probs)."""
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
    matrix[image_codes, word_codes] = tags["prob"].to_numpy(dtype=np.float32)
    return list(image_ids), list(words), matrix


def place_pseudo_classes(tags: pd.DataFrame) -> pd.Series:
    """The top ``place`` tag of every photo (selected or not): a pseudo-class from the alien's view."""
    place = tags[tags["facet"] == PLACE_FACET]
    if place.empty:
        return pd.Series(dtype="string", name="place")
    top = place.sort_values(["image_id", "prob"], ascending=[True, False]).drop_duplicates("image_id")
    return top.set_index("image_id")["tag"].astype("string").rename("place")


def known_classes(catalog: pd.DataFrame, tags: pd.DataFrame | None, image_ids: list[str]) -> pd.DataFrame:
    """One row a photo: its hotel, chain and top place tag (missing values stay <NA>).

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
    place = place_pseudo_classes(tags) if tags is not None else pd.Series(dtype="string")
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


# ---- comparison with the known classes ----------------------------------------------------
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


# ---- naming, map -------------------------------------------------------------------------
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
        lift = np.where(mean >= min(min_mean, mean.max()), mean / overall, -np.inf)
        best = np.argsort(-lift, kind="stable")[:top]
        # The first word always names the cluster; later ones only if they really stand out.
        chosen = [i for rank, i in enumerate(best) if rank == 0 or lift[i] >= min_lift]
        names[cluster] = " + ".join(words[i].split(":", 1)[1] for i in chosen)
    return names


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


def typical_members(features: np.ndarray, labels: np.ndarray, per_cluster: int = 2) -> dict[int, list[int]]:
    """The photos nearest each cluster's centre: what the thumbnails on the map show."""
    chosen = {}
    for cluster in sorted(set(labels.tolist()) - {NOISE}):
        members = np.flatnonzero(labels == cluster)
        centre = features[members].mean(axis=0)
        distance = np.linalg.norm(features[members] - centre, axis=1)
        chosen[cluster] = members[np.argsort(distance, kind="stable")[:per_cluster]].tolist()
    return chosen


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
    labels = {PRIMARY_METHOD: kmeans_labels(features, best_k, seed)}
    skipped: dict[str, str] = {}

    for kind in CLASS_KINDS:
        count = int(classes[kind].dropna().nunique())
        method = f"kmeans_{kind}"
        if count < 2:
            skipped[method] = f"fewer than 2 {kind} classes known"
        elif count > n - 1:
            skipped[method] = f"{count} {kind} classes for {n} photos: k-means needs k <= n - 1"
        else:
            labels[method] = kmeans_labels(features, count, seed)

    if n > PAIRWISE_LIMIT:
        reason = f"{n} photos > {PAIRWISE_LIMIT}: O(n^2) memory; see benchmarks/bench_clustering.py"
        skipped["agglomerative"] = skipped["hdbscan"] = reason
    else:
        labels["agglomerative"] = agglomerative_labels(features, best_k)
        labels["hdbscan"] = hdbscan_labels(features)

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


# ---- figures -----------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _category_colours(values: pd.Series, top: int = 10) -> tuple[np.ndarray, list[tuple[str, tuple]]]:
    """Colours for the ``top`` largest categories; the rest (and unknown) in grey."""
    plt = _pyplot()
    palette = plt.get_cmap("tab10" if top <= 10 else "tab20")
    counts = values.dropna().value_counts()
    keep = list(counts.index[:top])
    colours = np.array([palette(keep.index(v) % palette.N) if v in keep else (0.8, 0.8, 0.8, 1.0) for v in values])
    legend = [(str(v), palette(i % palette.N)) for i, v in enumerate(keep)]
    if len(counts) > top or values.isna().any():
        legend.append(("other / unknown", (0.8, 0.8, 0.8, 1.0)))
    return colours, legend


def _thumbnail(path: str | None, size: int = 56):
    from PIL import Image

    if not isinstance(path, str) or not Path(path).is_file():
        return None
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            return np.asarray(image)
    except OSError:
        return None


def plot_map(
    result: ClusteringResult,
    classes: pd.DataFrame,
    thumbnails: dict[str, str],
    features: np.ndarray,
    target: Path,
    per_cluster: int = 2,
    max_thumbnail_clusters: int = 12,
) -> int:
    """Two panels: the map coloured by cluster (with typical photos) and by chain. Returns thumbnails drawn."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    plt = _pyplot()
    labels = result.labels[PRIMARY_METHOD]
    names = result.names[PRIMARY_METHOD]
    by_class = "chain" if classes["chain"].notna().any() else "hotel"
    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    x, y = result.xy[:, 0], result.xy[:, 1]

    cluster_series = pd.Series([f"{c}: {names[c]}" for c in labels.tolist()])
    colours, legend = _category_colours(cluster_series, top=20)
    axes[0].scatter(x, y, c=colours, s=12, alpha=0.8, linewidths=0)
    drawn = 0
    typical = typical_members(features, labels, per_cluster)
    for cluster in list(typical)[:max_thumbnail_clusters]:
        for index in typical[cluster]:
            pixels = _thumbnail(thumbnails.get(result.image_ids[index]))
            if pixels is None:
                continue
            # The frame in the cluster's colour: the thumbnail hides the dot it stands for.
            frame = {"edgecolor": colours[index], "linewidth": 2.5}
            box = AnnotationBbox(OffsetImage(pixels, zoom=0.7), (x[index], y[index]), pad=0.15, bboxprops=frame)
            axes[0].add_artist(box)
            drawn += 1
    axes[0].legend(
        handles=[plt.Line2D([], [], marker="o", ls="", color=c, label=t) for t, c in legend],
        fontsize=7, loc="best", title="cluster", title_fontsize=8,
    )
    axes[0].set_title(f"{PRIMARY_METHOD} clusters (k = {result.best_k}) on {result.features_name}")

    colours, legend = _category_colours(classes[by_class].reset_index(drop=True), top=10)
    axes[1].scatter(x, y, c=colours, s=12, alpha=0.8, linewidths=0)
    axes[1].legend(
        handles=[plt.Line2D([], [], marker="o", ls="", color=c, label=t) for t, c in legend],
        fontsize=7, loc="best", title=by_class, title_fontsize=8,
    )
    axes[1].set_title(f"the same map coloured by {by_class} (10 largest)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{result.map_method} 1")
        ax.set_ylabel(f"{result.map_method} 2")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return drawn


def plot_contingency(labels: np.ndarray, names: dict[int, str], classes: pd.Series, kind: str, target: Path, top: int = 25) -> None:
    """Clusters (rows) x the largest classes (columns), each row as shares of the cluster."""
    plt = _pyplot()
    known = classes.notna().to_numpy()
    truth = classes[known].astype(str).to_numpy()
    found = labels[known]
    table = pd.crosstab(pd.Series(found, name="cluster"), pd.Series(truth, name=kind))
    table = table[table.sum(axis=0).sort_values(ascending=False).index[:top]]
    shares = table.div(table.sum(axis=1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * shares.shape[1] + 3), max(3, 0.35 * shares.shape[0] + 2)))
    image = ax.imshow(shares.to_numpy(), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    if shares.size <= 400:  # photo counts in the cells while they stay readable
        for (row, column), count in np.ndenumerate(table.to_numpy()):
            if count:
                shade = "black" if shares.iat[row, column] > 0.6 else "white"
                ax.text(column, row, str(count), ha="center", va="center", fontsize=6, color=shade)
    ax.set_xticks(range(shares.shape[1]), [str(c)[:18] for c in shares.columns], rotation=70, fontsize=7)
    ax.set_yticks(range(shares.shape[0]), [f"{c}: {names.get(c, '')}"[:30] for c in shares.index], fontsize=7)
    ax.set_xlabel(f"{kind} ({min(top, shares.shape[1])} largest)")
    ax.set_ylabel("cluster")
    fig.colorbar(image, ax=ax, label="share of the cluster's photos")
    ax.set_title(f"clusters vs {kind}")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


def plot_silhouette(silhouettes: dict[int, float], best_k: int, target: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(silhouettes), list(silhouettes.values()), marker="o")
    ax.axvline(best_k, color="crimson", ls="--", label=f"chosen k = {best_k}")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette (sampled)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


# ---- the note -----------------------------------------------------------------------------
def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def spread_of_classes(labels: np.ndarray, classes: pd.Series) -> tuple[float, float]:
    """(mean number of classes a cluster holds, mean number of clusters a class is split over)."""
    known = classes.notna().to_numpy()
    table = contingency_matrix(classes[known].astype(str).to_numpy(), labels[known])
    return float((table > 0).sum(axis=0).mean()), float((table > 0).sum(axis=1).mean())


def why_text(hotel_ari: float, place_ari: float, features_name: str) -> str:
    """The reading of the two ARIs; which paragraph is said depends on the numbers."""
    what = "a tag vector" if features_name == "tags" else "an image embedding"
    if place_ari > hotel_ari:
        return (
            f"So the clusters follow **the place tag** more closely (ARI {_fmt(place_ari)} vs place, "
            f"{_fmt(hotel_ari)} vs hotel). Why: the features describe *what is in a room* (a bed, a pool, "
            "night, a sea view), while a hotel or a chain is an *identity*: a bathroom of hotel A "
            "looks like a bathroom of hotel B, and one hotel shows a lobby, rooms, a pool and a "
            f"restaurant. {what.capitalize()} hardly tells two hotels' bathrooms apart, so clusters cut "
            "across hotels and chains, and the number of clusters follows the number of kinds of place, "
            "not the number of hotels."
        )
    return (
        f"So the clusters follow **the hotel** at least as closely as the place (ARI {_fmt(hotel_ari)} vs "
        f"hotel, {_fmt(place_ari)} vs place): {what} here carries a hotel's identity (its decor, its "
        "furniture line, its light) beyond the kind of room, or the photos of each hotel show one kind "
        "of place. Check the contingency maps below before reading more into it."
    )


def answer_text(result: ClusteringResult, classes: pd.DataFrame) -> str:
    """Does the number of clusters match the number of classes, and why: in numbers from this run."""
    primary = result.labels[PRIMARY_METHOD]
    scores = result.comparison[result.comparison["method"] == PRIMARY_METHOD].set_index("class")
    similarity = result.similarity.set_index("class") if len(result.similarity) else pd.DataFrame()
    lines = [f"The silhouette picks **k = {result.best_k}** clusters from {len(primary)} photos."]
    for kind in scores.index:
        row = scores.loc[kind]
        verdict = "matches" if int(row["classes"]) == result.best_k else "does not match"
        lines.append(
            f"- **{kind}**: {int(row['classes'])} classes, so the cluster count {verdict} "
            f"(ARI {_fmt(row['ari'])}, NMI {_fmt(row['nmi'])}, homogeneity {_fmt(row['homogeneity'])}, "
            f"completeness {_fmt(row['completeness'])})."
        )
    if "hotel" in scores.index:
        per_cluster, per_class = spread_of_classes(primary, classes["hotel"])
        lines.append(
            f"\nA cluster holds photos of {per_cluster:.1f} hotels on average, and one hotel's photos "
            f"fall into {per_class:.1f} clusters on average."
        )
    if {"hotel", "place"} <= set(similarity.index):
        h, p = similarity.loc["hotel"], similarity.loc["place"]
        lines.append(
            f"Two photos of the **same hotel** have a mean cosine similarity of {_fmt(h['within'])} "
            f"against {_fmt(h['between'])} for two different hotels (a gap of {_fmt(h['within'] - h['between'])}); "
            f"two photos with the **same place tag** have {_fmt(p['within'])} against {_fmt(p['between'])} "
            f"(a gap of {_fmt(p['within'] - p['between'])})."
        )
    if {"hotel", "place"} <= set(scores.index):
        lines.append("\n" + why_text(scores.loc["hotel", "ari"], scores.loc["place", "ari"], result.features_name))
    else:
        missing = [k for k in ("hotel", "place") if k not in scores.index]
        reasons = "; ".join(f"{k}: {result.skipped.get(k, 'not compared')}" for k in missing)
        lines.append(
            f"\nThe hotel-vs-place question cannot be answered from this workspace ({reasons}): "
            "it needs photos of at least two hotels and a `place` facet in the tags."
        )
    return "\n".join(lines)


def report_note(result: ClusteringResult, classes: pd.DataFrame, figures: dict[str, str], thumbnails_drawn: int) -> str:
    parts = [
        "# Clusters by tags vs the real classes\n",
        f"Features: **{result.features_name}** "
        + (
            "(per-facet tag probabilities: bounded, comparable across words, and every facet weighs "
            "the same whatever its number of words)."
            if result.features_name == "tags"
            else "(L2-normalised image embeddings of the tag stage)."
        )
        + f" Photos: {len(result.image_ids)}; hotels: {classes['hotel'].nunique()}, chains: "
        f"{classes['chain'].nunique()}, place tags: {classes['place'].nunique()}.\n",
        "## Does the number of clusters match the number of classes?\n",
        answer_text(result, classes) + "\n",
    ]
    if len(result.comparison):
        table = result.comparison.copy()
        for column in ("ari", "nmi", "homogeneity", "completeness"):
            table[column] = table[column].map(_fmt)
        parts += ["## Scores, every method vs every class\n", table.to_markdown(index=False) + "\n"]
    if "hdbscan" in result.labels:
        noise = float((result.labels["hdbscan"] == NOISE).mean())
        parts.append(
            f"HDBSCAN found {cluster_count(result.labels['hdbscan'])} dense clusters and left "
            f"{noise:.0%} of the photos as noise (scored as one more group above).\n"
        )
    names = result.names[PRIMARY_METHOD]
    sizes = pd.Series(result.labels[PRIMARY_METHOD]).value_counts().sort_index()
    parts += [
        f"## The {PRIMARY_METHOD} clusters, named by their most distinctive tags (highest lift)\n",
        pd.DataFrame({"cluster": sizes.index, "photos": sizes.to_numpy(), "name": [names[c] for c in sizes.index]})
        .to_markdown(index=False)
        + "\n",
    ]
    map_line = f"Map: {result.map_method}"
    if result.map_reason:
        map_line += f" ({result.map_reason})"
    parts.append(f"## Figures\n\n{map_line}; {thumbnails_drawn} thumbnails of typical photos.\n")
    parts += [f"![{title}]({name})\n" for title, name in figures.items()]
    if result.skipped:
        parts.append("## Not computed\n")
        parts += [f"- `{what}`: {why}" for what, why in result.skipped.items()]
        parts.append("")
    return "\n".join(parts)


# ---- the stage ---------------------------------------------------------------------------
def load_features(ws: Workspace, features: str, tags: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    if features == "tags":
        ids, _, matrix = tag_feature_matrix(tags)
        return ids, matrix
    if features == "embeddings":
        from alienstay.tagging import read_embeddings

        ids, matrix, _ = read_embeddings(ws)
        return [str(i) for i in ids], np.asarray(matrix, dtype=np.float32)
    raise ClusteringError(f"--features {features!r}: choose one of {', '.join(FEATURES)}.")


def cluster_workspace(
    ws: Workspace, features: str = "tags", k_min: int = 2, k_max: int = 30, seed: int = 0
) -> tuple[Path, Path]:
    """Read catalog + tags (+ embeddings), cluster, write clusters.parquet, report/clusters.md and figures."""
    catalog = cat.usable(ws.read_catalog())
    tags = ws.read_tags()
    tags = tags[tags["image_id"].isin(catalog["image_id"])]
    ids, matrix = load_features(ws, features, tags)
    keep = np.isin(ids, catalog["image_id"].to_numpy())
    ids, matrix = [i for i, k in zip(ids, keep) if k], matrix[keep]

    tag_ids, words, tag_matrix = tag_feature_matrix(tags)
    naming = pd.DataFrame(tag_matrix, index=tag_ids).reindex(ids).fillna(0.0).to_numpy(np.float32)
    classes = known_classes(catalog, tags, ids)
    result = run_clustering(ids, matrix, classes, features, (naming, words), k_min, k_max, seed)

    ws.report_dir.mkdir(parents=True, exist_ok=True)
    figures = {"map of the photos": "clusters_map.png", "silhouette over k": "clusters_silhouette.png"}
    thumbnails = dict(zip(catalog["image_id"].astype(str), catalog["prepared_path"].astype(object)))
    drawn = plot_map(result, classes, thumbnails, matrix, ws.report_dir / figures["map of the photos"])
    plot_silhouette(result.silhouettes, result.best_k, ws.report_dir / figures["silhouette over k"])
    for kind in CLASS_KINDS:
        if kind not in result.skipped:
            name = f"clusters_contingency_{kind}.png"
            plot_contingency(result.labels[PRIMARY_METHOD], result.names[PRIMARY_METHOD], classes[kind], kind, ws.report_dir / name)
            figures[f"contingency: clusters vs {kind}"] = name

    table_path = write_parquet(clusters_table(result, [PRIMARY_METHOD]), ws.clusters_path)
    write_parquet(clusters_table(result), ws.cluster_methods_path)
    note_path = write_text(report_note(result, classes, figures, drawn), ws.report_dir / "clusters.md")
    ws.log_run("cluster", features=features, k_min=k_min, k_max=k_max, seed=seed, best_k=result.best_k)
    return table_path, note_path


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
