"""The catalog and the clusters as the gallery holds them: Arrow columns, looked up by id.

A million catalog rows as pandas objects are about a gigabyte and seconds to build; as Arrow
columns (only those the gallery shows) they are a few hundred bytes a row, and a photo is found
by id through `workspace.ids.IdRows` (sorted ids, one searchsorted) without a dict of a million strings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.workspace import catalog as cat
from alienstay.workspace.ids import IdRows, first_rows

CATALOG_INFO = ["hotel_id", "hotel_name", "chain_id", "chain_name", "source", "split", "width", "height", "url"]
CATALOG_COLUMNS = ["image_id", "status", "prepared_path", *CATALOG_INFO]


class Keyed:
    """An Arrow table with an `image_id` column, one row a photo; `find` gives an id's row (workspace/ids.py).
    A photo listed twice keeps its first row, the one a lookup by id always gave."""

    def __init__(self, table: pa.Table) -> None:
        if table.num_rows:  # a row without an id cannot be asked for; a photo listed twice keeps its first row
            table = table.filter(pc.is_valid(table.column("image_id")))
            kept = first_rows(table.column("image_id"))
            table = table if len(kept) == table.num_rows else table.take(pa.array(kept))
        self.ids = table.column("image_id").cast(pa.string()).combine_chunks() if table.num_rows else pa.array([], pa.string())
        # The one copy of the ids: the table's own column is replaced by it, not kept beside it.
        self.table = table.set_column(table.schema.get_field_index("image_id"), "image_id", self.ids) if table.num_rows else table
        self.rows = IdRows(self.ids)

    def __len__(self) -> int:
        return self.table.num_rows

    def find(self, image_id: str) -> int | None:
        """The row of image_id, or None."""
        return self.rows.row(image_id)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.rows

    def row(self, position: int, columns: list[str] | None = None) -> dict:
        names = [c for c in (columns or self.table.column_names) if c in self.table.column_names]
        return jsonable({c: self.table.column(c)[position].as_py() for c in names})


def empty_keyed() -> Keyed:
    return Keyed(pa.table({"image_id": pa.array([], pa.string())}))


def read_catalog(path: Path) -> Keyed:
    """The usable photos (status ok), only the columns the gallery shows."""
    if not path.exists():
        return empty_keyed()
    present = set(pq.read_schema(path).names)
    table = pq.read_table(path, columns=[c for c in CATALOG_COLUMNS if c in present])
    if "status" in present:
        table = table.filter(pc.fill_null(pc.equal(table.column("status"), cat.OK), False))
    return Keyed(table)


def first_ids(catalog: Keyed, limit: int) -> list[str]:
    """The first `limit` ids in catalog order (the browse grid; a Keyed's ids are distinct)."""
    return catalog.ids.slice(0, max(limit, 0)).to_pylist()


class Clusters(Keyed):
    """clusters.parquet: a photo's row, and its cluster's members as numpy columns for distances."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__(table)
        table = self.table  # one row a photo
        self.cluster = table.column("cluster").to_numpy(zero_copy_only=False).astype(np.int64)
        self.by_cluster = np.argsort(self.cluster, kind="stable")
        self.sorted_clusters = self.cluster[self.by_cluster]
        # x, y in cluster order: a cluster's members are one contiguous slice.
        self.sorted_xy = np.column_stack(
            [table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)[self.by_cluster] for c in ("x", "y")])
        self._trees: dict[int, tuple[np.ndarray, Any]] = {}  # a cluster's first sorted position -> (placed, k-d tree)

    @classmethod
    def read(cls, path: Path) -> "Clusters | None":
        # The per-cluster strings repeat on every row: read as dictionaries, a few bytes a row.
        repeated = [c for c in ("method", "features", "name") if c in pq.read_schema(path).names] if path.exists() else []
        return cls(pq.read_table(path, read_dictionary=repeated)) if path.exists() else None

    def neighbours(self, image_id: str, limit: int = 8) -> list[str]:
        """Other photos of the same cluster, nearest first on the cluster map (x, y); ties by id."""
        me = self.find(image_id)
        if me is None or self.cluster[me] < 0:
            return []
        lo, hi = np.searchsorted(self.sorted_clusters, [self.cluster[me], self.cluster[me] + 1])
        mine = np.array([np.nan if v is None else float(v) for v in (self.table.column(c)[me].as_py() for c in ("x", "y"))])
        near = self._near(int(lo), int(hi), mine, limit)
        members = self.by_cluster[lo + near]
        distance = np.hypot(*(self.sorted_xy[lo + near] - mine).T)
        ids = self.ids.take(pa.array(members)).to_pylist()
        ranked = sorted((d, i) for d, i in zip(distance.tolist(), ids) if i != image_id)
        return [i for _, i in ranked[:limit]]


    def _near(self, lo: int, hi: int, point: np.ndarray, limit: int) -> np.ndarray:
        """Positions within the cluster's slice of its `limit + 1` nearest members and every tie at
        that distance: a k-d tree per cluster, so a photo page at a million photos asks a tree
        instead of measuring a whole cluster of ~80,000. Members without a finite place on the
        map (NaN, inf) are nobody's neighbours, and have none."""
        if not np.isfinite(point).all():
            return np.zeros(0, np.int64)
        placed, tree = self.tree(lo, hi)
        if len(placed) <= limit + 1:
            return placed
        distance, _ = tree.query(point, k=limit + 1)
        return placed[np.asarray(tree.query_ball_point(point, float(distance[-1]) * (1 + 1e-9) + 1e-12), np.int64)]

    def tree(self, lo: int, hi: int) -> tuple[np.ndarray, Any]:
        """The cluster at [lo, hi) of the sorted rows: its finitely placed positions and their k-d tree (built once)."""
        if lo not in self._trees:
            from scipy.spatial import cKDTree

            placed = np.flatnonzero(np.isfinite(self.sorted_xy[lo:hi]).all(axis=1))
            self._trees[lo] = (placed, cKDTree(self.sorted_xy[lo:hi][placed]))
        return self._trees[lo]

    def build_trees(self) -> None:
        """Every cluster's tree now (the gallery does this when it reads the table, off the request path)."""
        labels = self.sorted_clusters
        if not len(labels):
            return
        starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]]).tolist()
        for lo, hi in zip(starts, [*starts[1:], len(labels)]):
            if labels[lo] >= 0:  # -1: noise, in no cluster
                self.tree(lo, hi)


def jsonable(record: dict) -> dict:
    """NaN -> None and numpy scalars -> Python, so a row goes straight into JSON or a template."""
    clean: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and math.isnan(value):
            value = None
        clean[str(key)] = value
    return clean
