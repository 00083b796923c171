"""The clustering figures: the 2-D map with typical photos, contingency heat maps, the silhouette."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alienstay.clustering.comparison import ClusteringResult
from alienstay.clustering.methods import NOISE, PRIMARY_METHOD
from alienstay.workspace.layout import save_figure as workspace_save_figure


def save_figure(fig, target: Path) -> Path:
    """The workspace's one atomic save_figure (untrimmed: the map keeps its margins)."""
    return workspace_save_figure(fig, target, tight=False)


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


def typical_members(features: np.ndarray, labels: np.ndarray, per_cluster: int = 2) -> dict[int, list[int]]:
    """The photos nearest each cluster's centre: what the thumbnails on the map show."""
    chosen = {}
    for cluster in sorted(set(labels.tolist()) - {NOISE}):
        members = np.flatnonzero(labels == cluster)
        centre = features[members].mean(axis=0)
        distance = np.linalg.norm(features[members] - centre, axis=1)
        chosen[cluster] = members[np.argsort(distance, kind="stable")[:per_cluster]].tolist()
    return chosen


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
    save_figure(fig, target)
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
    save_figure(fig, target)


def plot_silhouette(silhouettes: dict[int, float], best_k: int, target: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(list(silhouettes), list(silhouettes.values()), marker="o")
    ax.axvline(best_k, color="crimson", ls="--", label=f"chosen k = {best_k}")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette (sampled)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, target)


