"""Stage `cluster`: cluster the photos by tags or embeddings, compare with hotels, chains, places.

Reads catalog + tags (+ embeddings), clusters with every method of ``clustering.methods``, writes
the tables, the note (report/clusters.md) and the figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alienstay.clustering.comparison import clusters_table, run_clustering
from alienstay.clustering.features import (
    CLASS_KINDS,
    PLACE_FACET,
    known_classes,
    load_features,
    tag_feature_matrix,
)
from alienstay.clustering.figures import plot_contingency, plot_map, plot_silhouette
from alienstay.clustering.methods import PRIMARY_METHOD
from alienstay.clustering.note import report_note
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace, write_parquet, write_text

__all__ = ["ClusterSettings", "ClusterSummary", "run"]


@dataclass(frozen=True)
class ClusterSettings:
    features: str = "tags"  # a name in FEATURE_KINDS
    k_min: int = 2
    k_max: int = 30
    seed: int = 0
    place_facet: str = PLACE_FACET  # the facet whose top tag is the "place" pseudo-class


@dataclass(frozen=True)
class ClusterSummary:
    clusters_path: Path
    methods_path: Path
    note_path: Path
    photos: int
    best_k: int
    methods: tuple[str, ...]
    figures: dict[str, Path] = field(default_factory=dict)  # title -> file
    skipped: dict[str, str] = field(default_factory=dict)  # method or class kind -> reason


def run(ws: Workspace, settings: ClusterSettings = ClusterSettings()) -> ClusterSummary:
    """Cluster the usable photos and compare the clusters with hotels, chains and places.

    Raises ClusteringError (what to change) or WorkspaceError (which stage to run first)."""
    ws.check_tables("catalog", "tags", "embedding_ids")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("cluster"):
        return _cluster(ws, settings)


def _cluster(ws: Workspace, settings: ClusterSettings) -> ClusterSummary:
    catalog = cat.usable(ws.read_catalog())
    tags = ws.read_tags()
    tags = tags[tags["image_id"].isin(catalog["image_id"])]
    ids, matrix = load_features(ws, settings.features, tags)
    keep = np.isin(ids, catalog["image_id"].to_numpy())
    ids, matrix = [i for i, k in zip(ids, keep) if k], matrix[keep]

    # Clusters are named by SELECTED tags whatever they were computed on: a word the tagger did not
    # select (a silenced facet, a word below its floor) never names a cluster.
    tag_ids, words, tag_matrix = tag_feature_matrix(tags, value="selected")
    naming = pd.DataFrame(tag_matrix, index=tag_ids).reindex(ids).fillna(0.0).to_numpy(np.float32)
    classes = known_classes(catalog, tags, ids, settings.place_facet)
    result = run_clustering(
        ids, matrix, classes, settings.features, (naming, words), settings.k_min, settings.k_max, settings.seed
    )

    report = ws.report_dir
    figures = {"map of the photos": "clusters_map.png", "silhouette over k": "clusters_silhouette.png"}
    thumbnails = dict(zip(catalog["image_id"].astype(str), catalog["prepared_path"].astype(object)))
    drawn = plot_map(result, classes, thumbnails, matrix, report / figures["map of the photos"])
    plot_silhouette(result.silhouettes, result.best_k, report / figures["silhouette over k"])
    for kind in CLASS_KINDS:
        if kind not in result.skipped:
            name = f"clusters_contingency_{kind}.png"
            primary, names = result.labels[PRIMARY_METHOD], result.names[PRIMARY_METHOD]
            plot_contingency(primary, names, classes[kind], kind, report / name)
            figures[f"contingency: clusters vs {kind}"] = name

    table_path = write_parquet(clusters_table(result, [PRIMARY_METHOD]), ws.clusters_path)
    methods_path = write_parquet(clusters_table(result), ws.cluster_methods_path)
    note = report_note(result, classes, figures, drawn, settings.place_facet)
    note_path = write_text(note, report / "clusters.md")
    ws.log_run(
        "cluster", features=settings.features, k_min=settings.k_min, k_max=settings.k_max,
        seed=settings.seed, place_facet=settings.place_facet, best_k=result.best_k,
    )
    return ClusterSummary(
        clusters_path=table_path,
        methods_path=methods_path,
        note_path=note_path,
        photos=len(ids),
        best_k=result.best_k,
        methods=tuple(result.labels),
        figures={title: report / name for title, name in figures.items()},
        skipped=dict(result.skipped),
    )
