"""Stage `cluster`: cluster the photos by tags or embeddings, compare with hotels, chains, places.

The stage itself is `clustering.stage.run`; this wrapper holds the workspace lock around it.
"""

from __future__ import annotations

from alienstay.clustering.stage import ClusterSettings, ClusterSummary
from alienstay.workspace.layout import Workspace

__all__ = ["ClusterSettings", "ClusterSummary", "run"]


def run(ws: Workspace, settings: ClusterSettings = ClusterSettings()) -> ClusterSummary:
    """Raises ClusteringError (what to change) or WorkspaceError (which stage to run first)."""
    from alienstay.clustering import stage

    ws.check_tables("catalog", "tags", "embedding_ids")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("cluster"):
        return stage.run(ws, settings)
