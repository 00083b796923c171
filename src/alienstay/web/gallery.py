"""What the gallery shows, as plain functions on the workspace tables (no web code here).

The tables are read once and re-read when a file changes on disk, so a gallery left running
while `alienstay tag` or `alienstay edit` works picks up their output on the next request.
Every table but the catalog is optional: a missing one is an empty state, never an error.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alienstay import catalog as cat
from alienstay.workspace import Workspace, read_optional

METRIC_COLUMNS = ["structure_ssim", "edge_ssim", "lpips", "dino_distance", "outside_mask_change", "clip_direction"]
CATALOG_INFO = ["hotel_id", "hotel_name", "chain_id", "chain_name", "source", "split", "width", "height", "url"]


def mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


@dataclass
class Gallery:
    """The workspace tables the gallery needs, reloaded when one changes on disk."""

    ws: Workspace
    catalog: pd.DataFrame = field(init=False)  # usable photos, indexed by image_id
    tags: PhotoTags | None = field(init=False)  # a photo's rows in one slice
    words: pd.DataFrame | None = field(init=False)  # facet, tag, photos (selected count), in vocabulary order
    index: dict[str, pd.Series] = field(init=False)  # search index: word -> prob by image_id
    clusters: pd.DataFrame | None = field(init=False)
    edits: pd.DataFrame | None = field(init=False)
    _stamps: tuple = field(init=False, default=())
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.refresh()

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.ws.catalog_path, self.ws.tags_path, self.ws.clusters_path, self.ws.edits_path)

    def refresh(self) -> None:
        """Re-read the tables if any of them changed since the last read."""
        stamps = tuple(mtime(p) for p in self.paths)
        if stamps == self._stamps:
            return
        with self._lock:
            catalog = read_optional(self.ws.catalog_path)
            catalog = cat.empty_catalog() if catalog is None else cat.usable(catalog)
            self.catalog = catalog.drop_duplicates("image_id").set_index("image_id", drop=False)
            tags = read_optional(self.ws.tags_path)
            self.tags = None if tags is None else PhotoTags.of(tags)
            self.words = None if tags is None else word_counts(tags)
            self.index = build_search_index(tags)
            self.clusters = read_optional(self.ws.clusters_path)
            self.edits = read_optional(self.ws.edits_path)
            self._stamps = stamps

    # ---- files the gallery may serve: only those a table names, only inside the workspace
    def photo_file(self, image_id: str) -> Path | None:
        if image_id not in self.catalog.index:
            return None
        return inside_workspace(self.ws.root, self.catalog.at[image_id, "prepared_path"])

    def edit_file(self, edit_id: str) -> Path | None:
        if self.edits is None:
            return None
        rows = self.edits[self.edits["edit_id"].astype(str) == edit_id]
        return inside_workspace(self.ws.root, rows["output_path"].iloc[0]) if len(rows) else None


def inside_workspace(root: Path, path: Any) -> Path | None:
    """The file, resolved, if it exists inside the workspace; None for anything else."""
    if not isinstance(path, str) or not path:
        return None
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root / candidate
    resolved, root = candidate.resolve(), root.resolve()
    return resolved if resolved.is_relative_to(root) and resolved.is_file() else None


# ---- vocabulary and search ----------------------------------------------------------------
def word_counts(tags: pd.DataFrame) -> pd.DataFrame:
    """Every (facet, tag) in vocabulary order with how many photos have it selected."""
    words = tags[["facet", "tag"]].drop_duplicates().reset_index(drop=True)
    counts = tags[tags["selected"].astype(bool)].groupby(["facet", "tag"]).size()
    photos = [int(counts.get((f, t), 0)) for f, t in zip(words["facet"], words["tag"])]
    return words.assign(photos=photos)


def vocabulary_groups(words: pd.DataFrame | None, definitions: dict[tuple[str, str], str]) -> list[dict]:
    """The words the photos were tagged with, grouped by facet (in vocabulary order), with photo counts."""
    if words is None or words.empty:
        return []
    groups = []
    for facet in dict.fromkeys(words["facet"]):
        rows = words[words["facet"] == facet]
        entries = [
            {"tag": t, "photos": n, "definition": definitions.get((facet, t), "")}
            for t, n in zip(rows["tag"], rows["photos"])
        ]
        groups.append({"facet": facet, "tags": entries})
    return groups


def parse_words(text: str | None) -> list[str]:
    """`"pool, night,pool"` -> ["pool", "night"]: comma-separated, trimmed, in order, once each."""
    return list(dict.fromkeys(w.strip() for w in (text or "").split(",") if w.strip()))


def known_words(words: pd.DataFrame | None) -> set[str]:
    """A word is a bare tag (any facet) or `facet:tag` (one facet)."""
    if words is None:
        return set()
    return set(words["tag"].astype(str)) | set(words["facet"].astype(str) + ":" + words["tag"].astype(str))


def build_search_index(tags: pd.DataFrame | None) -> dict[str, pd.Series]:
    """word -> the probability of that word for each photo that has it **selected**.

    Built once a load, so a query is a few index intersections however many photos there are.
    A bare tag that exists in several facets keeps, per photo, its highest probability.
    """
    if tags is None or tags.empty:
        return {}
    selected = tags[tags["selected"].astype(bool)].reset_index(drop=True)
    index: dict[str, pd.Series] = {}
    for (facet, tag), rows in selected.groupby(["facet", "tag"], sort=False):
        probs = rows.groupby("image_id")["prob"].max().astype(np.float64)
        index[f"{facet}:{tag}"] = probs
        index[tag] = probs if tag not in index else pd.concat([index[tag], probs]).groupby(level=0).max()
    return index


def search(index: dict[str, pd.Series], words: list[str]) -> pd.DataFrame:
    """Photos that have EVERY word among their selected tags, best first.

    Only selected tags count as a match (a word the tagger was not confident about is no
    promise to the guest). Rank: the sum of the matched tags' probabilities; ties by id.
    """
    if not words or any(w not in index for w in words):
        return pd.DataFrame({"image_id": pd.Series(dtype=str), "score": pd.Series(dtype=float)})
    every = pd.concat([index[w].rename(w) for w in words], axis=1, join="inner")
    ranked = pd.DataFrame({"image_id": every.index.astype(str), "score": every.sum(axis=1).to_numpy(np.float64)})
    return ranked.sort_values(["score", "image_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class PhotoTags:
    """tags.parquet sorted by photo, with where each photo's rows sit: a photo's tags in one slice."""

    frame: pd.DataFrame
    spans: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, tags: pd.DataFrame) -> "PhotoTags":
        frame = tags.sort_values("image_id", kind="stable").reset_index(drop=True)
        ids = frame["image_id"].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=int)
        ends = np.r_[starts[1:], len(ids)]
        return cls(frame, dict(zip(ids[starts], zip(starts.tolist(), ends.tolist()))))

    def rows(self, image_ids: list[str]) -> pd.DataFrame:
        spans = [self.spans[i] for i in image_ids if i in self.spans]
        positions = [np.arange(start, end) for start, end in spans]
        return self.frame.iloc[np.concatenate(positions)] if positions else self.frame.iloc[0:0]


def selected_tags_of(tags: PhotoTags | None, image_ids: list[str]) -> dict[str, list[dict]]:
    """Each photo's selected tags (facet order, then prob), for the chips under a result."""
    chips: dict[str, list[dict]] = {i: [] for i in image_ids}
    if tags is None:
        return chips
    rows = tags.rows(image_ids)
    for row in rows[rows["selected"].astype(bool)].itertuples(index=False):
        chips[str(row.image_id)].append({"facet": row.facet, "tag": row.tag, "prob": float(row.prob)})
    return chips


def tags_by_facet(tags: PhotoTags | None, image_id: str) -> list[dict]:
    """All of a photo's tags per facet, most probable first: the photo page's full view."""
    if tags is None:
        return []
    rows = tags.rows([image_id])
    groups = []
    for facet in dict.fromkeys(rows["facet"]):
        facet_rows = rows[rows["facet"] == facet].sort_values("prob", ascending=False)
        words = [
            {"tag": r.tag, "prob": float(r.prob), "score": float(r.score), "selected": bool(r.selected)}
            for r in facet_rows.itertuples(index=False)
        ]
        groups.append({"facet": facet, "tags": words})
    return groups


# ---- clusters, catalog, edits -----------------------------------------------------------------
def cluster_of(clusters: pd.DataFrame | None, image_id: str) -> dict | None:
    if clusters is None:
        return None
    rows = clusters[clusters["image_id"] == image_id]
    return jsonable(rows.iloc[0].to_dict()) if len(rows) else None


def cluster_neighbours(clusters: pd.DataFrame | None, image_id: str, limit: int = 8) -> list[str]:
    """Other photos of the same cluster, nearest first on the cluster map (x, y)."""
    if clusters is None:
        return []
    me = clusters[clusters["image_id"] == image_id]
    if me.empty or int(me["cluster"].iloc[0]) < 0:
        return []
    same = clusters[(clusters["cluster"] == me["cluster"].iloc[0]) & (clusters["image_id"] != image_id)]
    distance = np.hypot(same["x"] - me["x"].iloc[0], same["y"] - me["y"].iloc[0])
    order = same.assign(distance=distance).sort_values(["distance", "image_id"], kind="stable")
    return order["image_id"].astype(str).head(limit).tolist()


def catalog_info(catalog: pd.DataFrame, image_id: str) -> dict:
    row = catalog.loc[image_id]
    return {c: v for c, v in jsonable(row[[c for c in CATALOG_INFO if c in row.index]].to_dict()).items() if v is not None}


def edits_rows(edits: pd.DataFrame | None, recipe: str | None = None, image_id: str | None = None) -> list[dict]:
    if edits is None or edits.empty:
        return []
    rows = edits
    if recipe:
        rows = rows[rows["recipe"] == recipe]
    if image_id:
        rows = rows[rows["image_id"] == image_id]
    return [jsonable(r) for r in rows.to_dict("records")]


def edit_groups(edits: list[dict]) -> list[dict]:
    """Edits grouped by recipe, then by source photo, values in table order: the compare view's rows."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for edit in edits:
        groups.setdefault(str(edit["recipe"]), {}).setdefault(str(edit["image_id"]), []).append(edit)
    return [
        {"recipe": recipe, "photos": [{"image_id": i, "edits": e} for i, e in photos.items()]}
        for recipe, photos in groups.items()
    ]


def jsonable(record: dict) -> dict:
    """NA / NaN -> None and numpy scalars -> Python, so a row goes straight into JSON or a template."""
    clean = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            value = None
        clean[str(key)] = value
    return clean
