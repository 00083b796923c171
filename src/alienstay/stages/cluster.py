"""Stage `cluster`: cluster the photos by tags or embeddings, compare with hotels, chains, places."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace import Workspace


@dataclass(frozen=True)
class ClusterSettings:
    features: str = "tags"  # tags (the alien's words) or embeddings
    k_min: int = 2
    k_max: int = 30
    seed: int = 0


@dataclass(frozen=True)
class ClusterSummary:
    table_path: Path
    note_path: Path


def run(ws: Workspace, settings: ClusterSettings = ClusterSettings()) -> ClusterSummary:
    """Raises ClusteringError (what to change) or WorkspaceError (which stage to run first)."""
    from alienstay.clustering import cluster_workspace

    with ws.ensure().lock("cluster"):
        table, note = cluster_workspace(ws, settings.features, settings.k_min, settings.k_max, settings.seed)
    return ClusterSummary(table, note)
