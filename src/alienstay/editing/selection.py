"""Which photos a series edits: a few varied ones, with the reason each was picked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace, read_optional

MIN_PHOTOS, MAX_PHOTOS = 5, 10
GROUP_FACET = "place"  # the default facet whose selected tag groups photos when there are no clusters


def choose_photos(
    photos: pd.DataFrame, count: int, clusters: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
    facet: str = GROUP_FACET,
) -> pd.DataFrame:
    """``count`` varied photos with the reason each was picked (columns image_id, prepared_path, why).

    Variety comes from the best grouping the workspace has: clusters (one photo a cluster, the
    largest first, round after round), else the selected tag of ``facet``, else an even spread
    over the catalog.
    """
    photos = photos.sort_values("image_id").reset_index(drop=True)
    count = min(count, len(photos))
    groups = _groups_from_clusters(photos, clusters) or _groups_from_tags(photos, tags, facet)
    if groups is None:
        picks = np.linspace(0, len(photos) - 1, count).round().astype(int) if count else []
        chosen = photos.iloc[list(dict.fromkeys(picks))].copy()
        chosen["why"] = [f"spread over the catalog (photo {i + 1} of {len(photos)})" for i in chosen.index]
        return chosen[["image_id", "prepared_path", "why"]].reset_index(drop=True)
    kind, members = groups
    rows: list[dict[str, str]] = []
    queues = {name: list(ids) for name, ids in members}
    while len(rows) < count and any(queues.values()):
        for name, queue in queues.items():
            if queue and len(rows) < count:
                rows.append({"image_id": queue.pop(0), "why": f"{kind} {name}"})
    ungrouped = [i for i in photos["image_id"] if i not in {r["image_id"] for r in rows}]
    rows += [{"image_id": i, "why": "not in any group"} for i in ungrouped[: count - len(rows)]]
    chosen = pd.DataFrame(rows).merge(photos[["image_id", "prepared_path"]], on="image_id")
    return chosen[["image_id", "prepared_path", "why"]]


def _groups_from_clusters(photos: pd.DataFrame, clusters: pd.DataFrame | None):
    if clusters is None or clusters.empty:
        return None
    known = clusters[clusters["image_id"].isin(photos["image_id"])]
    known = known.assign(noise=known["cluster"] < 0).sort_values(["noise", "image_id"])
    sizes = known.groupby("cluster").size().sort_values(ascending=False)
    order = [c for c in sizes.index if c >= 0] + [c for c in sizes.index if c < 0]
    members = [(f"{c} ({sizes[c]} photos)" if c >= 0 else "-1 (noise)", known.loc[known["cluster"] == c, "image_id"].tolist()) for c in order]
    return ("cluster", members) if members else None


def _groups_from_tags(photos: pd.DataFrame, tags: pd.DataFrame | None, facet: str):
    if tags is None or tags.empty:
        return None
    chosen = tags[(tags["facet"] == facet) & tags["selected"] & tags["image_id"].isin(photos["image_id"])]
    chosen = chosen.sort_values(["prob", "image_id"], ascending=[False, True]).drop_duplicates("image_id")
    if chosen.empty:
        return None
    sizes = chosen.groupby("tag").size().sort_values(ascending=False)
    members = [(f"'{t}'", chosen.loc[chosen["tag"] == t, "image_id"].tolist()) for t in sizes.index]
    return f"{facet} tag", members


def usable_photos(ws: Workspace) -> pd.DataFrame:
    photos = cat.usable(ws.read_catalog())
    photos = photos[photos["prepared_path"].notna()]
    if photos.empty:
        raise ValueError(
            f"no usable prepared photos in {ws.catalog_path}: run `alienstay preprocess --workspace {ws.root}` first."
        )
    return photos


def photos_for_workspace(ws: Workspace, count: int, facet: str = GROUP_FACET) -> pd.DataFrame:
    """The varied photos a series would edit, with why each was picked."""
    if not MIN_PHOTOS <= count <= MAX_PHOTOS:
        raise ValueError(f"--images {count}: pick between {MIN_PHOTOS} and {MAX_PHOTOS} photos for a readable grid.")
    return choose_photos(usable_photos(ws), count, read_optional(ws.clusters_path), read_optional(ws.tags_path), facet)
