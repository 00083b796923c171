"""Stage `tag`: tag every usable photo with the alien words (zero-shot); resumes a killed run.

The stage itself is `tagging.stage.run` (its engines are `tagging.stage.ENGINES`); this wrapper
checks there are usable photos before any model loads and holds the workspace lock.
"""

from __future__ import annotations

import sys

from alienstay.tagging.settings import TagSettings, TagSummary
from alienstay.workspace.layout import Workspace, WorkspaceError

__all__ = ["TagSettings", "TagSummary", "require_usable_photos", "run"]


def require_usable_photos(ws: Workspace) -> None:
    """Stop before loading any model when no photo is usable, saying which step to look at."""
    from alienstay.workspace import catalog as cat

    catalog = ws.read_catalog(columns=["status"])  # one column: cheap on a large catalog
    if not cat.usable(catalog).empty:
        return
    statuses = catalog["status"].value_counts().to_dict()
    if statuses.get(cat.NEW):
        raise WorkspaceError(f"no usable photos yet ({statuses}): run `alienstay preprocess --workspace {ws.root}` first.")
    raise WorkspaceError(
        f"preprocess kept no photo ({statuses}): the reasons are in the `reason` column of "
        f"{ws.catalog_path}; add readable photos and run `alienstay ingest` and `preprocess` again."
    )


def run(ws: Workspace, settings: TagSettings = TagSettings()) -> TagSummary:
    """Raises ValueError (bad engine/dtype), VocabularyError, ModelUnavailable or RayUnavailable."""
    from alienstay.tagging import stage

    stage.check_engine(settings.engine)
    with ws.ensure().lock("tag"):  # a damaged tagged/current.json names the newest whole generation again
        repaired = ws.repair_tag_manifest()
    if repaired is not None:
        print(f"repaired {ws.tag_manifest_path}: it names generation {repaired} again", file=sys.stderr)
    ws.check_tables("catalog", "tags")  # a damaged input is named before any model loads
    require_usable_photos(ws)
    from alienstay.wordindex.lookup import build_word_index

    with ws.lock("tag"):
        summary = stage.run(ws, settings)
        build_word_index(ws)  # the gallery's word search (the gallery also rebuilds it if tags.parquet changes)
        return summary
