"""The tag stage's image embeddings as the search reads them: a memory-mapped fp16 matrix.

Nothing is copied into the process: `np.load(mmap_mode="r")` maps `embeddings/embeddings.npy`,
so a gallery over a million photos holds only the pages a query touches, and several server
processes share one copy in the page cache. Exact search streams the matrix in blocks.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alienstay.workspace.ids import IdRows
from alienstay.workspace.storage import DamagedTable, TagOutputs

if TYPE_CHECKING:
    import torch

    from alienstay.workspace.layout import Workspace

BLOCK_ROWS = 1 << 16  # rows converted to float32 at a time: 128 MB at 512-d, whatever N is


def file_stamp(path: Path) -> list[int] | None:
    """Size and modification time: what tells one version of a file from the next."""
    try:  # one system call: every request stats each file the gallery reads
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [stat.st_size, stat.st_mtime_ns]


def embeddings_fingerprint(ws: Workspace, outputs: TagOutputs | None = None) -> str | None:
    """One string for the embeddings as they are now; an index built from others is stale."""
    outputs = outputs or ws.tag_outputs()
    parts = [file_stamp(p) for p in (outputs.embeddings_matrix, outputs.embeddings_ids, outputs.embeddings_meta)]
    if any(p is None for p in parts):
        return None
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


# ---- reading one generation's three files, each checked: damage is named, never numpy's or pyarrow's text
def _damaged(ws: Workspace, path: Path, reason: str) -> DamagedTable:
    return DamagedTable.of(path, reason, "tag", ws.root)


def load_matrix(ws: Workspace, path: Path) -> np.ndarray:
    """embeddings.npy mapped: a 2-d float matrix whose header matches the file's length."""
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise _damaged(ws, path, "not a whole .npy matrix: cut short or overwritten") from None
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or matrix.dtype.kind != "f":
        raise _damaged(ws, path, f"a {getattr(matrix, 'ndim', '?')}-d {getattr(matrix, 'dtype', '?')} array, not a matrix of floats")
    return matrix


def load_ids(ws: Workspace, path: Path) -> pa.StringArray:
    """ids.parquet's image_id column: strings, none missing, each once."""
    try:
        ids = pq.read_table(path, columns=["image_id"]).column("image_id").cast(pa.string()).combine_chunks()
    except (pa.ArrowException, OSError, KeyError):
        raise _damaged(ws, path, "not a readable table with an image_id column: cut short or overwritten") from None
    if ids.null_count:
        raise _damaged(ws, path, f"{ids.null_count} rows have no image id")
    if pc.count_distinct(ids).as_py() != len(ids):
        raise _damaged(ws, path, f"{len(ids) - pc.count_distinct(ids).as_py()} image ids appear more than once")
    return ids


def load_meta(ws: Workspace, path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        raise _damaged(ws, path, "not JSON: cut short or overwritten") from None
    if not isinstance(meta, dict):
        raise _damaged(ws, path, "not a JSON object")
    return meta


def check_together(ws: Workspace, outputs: TagOutputs, ids: pa.StringArray, matrix: np.ndarray, meta: dict) -> None:
    """The three files are one set: as many ids as rows, and the count and width meta.json records."""
    if len(ids) != matrix.shape[0]:
        raise _damaged(ws, outputs.embeddings_ids, f"{len(ids)} ids for the {matrix.shape[0]} rows of embeddings.npy")
    for key, found in (("count", matrix.shape[0]), ("dim", matrix.shape[1])):
        if key in meta and meta[key] != found:
            raise _damaged(ws, outputs.embeddings_meta, f"it records {key} {meta[key]}, embeddings.npy has {found}")


@dataclass
class Vectors:
    """(N, D) fp16 rows, L2-normalised before storage, row i for `ids[i]`; `meta` says which model made them."""

    ids: pa.StringArray
    matrix: np.ndarray  # memory map, float16
    meta: dict
    fingerprint: str
    _rows: IdRows | None = field(default=None, repr=False)  # id -> row, made on first lookup

    @classmethod
    def open(cls, ws: Workspace, outputs: TagOutputs | None = None) -> "Vectors | None":
        """One generation's matrix, ids and meta (None: no embeddings yet), each checked and checked
        together; DamagedTable names the file that is not right and the command that rewrites it."""
        outputs = outputs or ws.tag_outputs()  # one generation: matrix, ids and meta of the same tag run
        fingerprint = embeddings_fingerprint(ws, outputs)
        if fingerprint is None:
            return None
        matrix = load_matrix(ws, outputs.embeddings_matrix)
        ids = load_ids(ws, outputs.embeddings_ids)
        meta = load_meta(ws, outputs.embeddings_meta)
        check_together(ws, outputs, ids, matrix, meta)
        return cls(ids, matrix, meta, fingerprint)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1]) if self.matrix.ndim == 2 else 0

    @property
    def id_rows(self) -> IdRows:
        """id -> row (workspace/ids.py), made on first lookup: a process that never asks by id pays nothing."""
        if self._rows is None:
            self._rows = IdRows(self.ids)
        return self._rows

    def position(self, image_id: str) -> int | None:
        """The row of an id, or None."""
        return self.id_rows.row(image_id)

    def positions(self, image_ids: "list[str] | pa.Array") -> np.ndarray:
        """Rows of the ids that have an embedding (others dropped), in the order given."""
        rows = self.id_rows.rows(image_ids)
        return rows[rows >= 0]

    def ids_of(self, positions: np.ndarray) -> list[str]:
        return self.ids.take(pa.array(np.asarray(positions, dtype=np.int64))).to_pylist()

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Float32 rows, re-normalised (fp16 storage loses a little norm)."""
        return normalise(np.asarray(self.matrix[np.asarray(positions, dtype=np.int64)], dtype=np.float32))

    def cosines(self, positions: np.ndarray, query: np.ndarray) -> np.ndarray:
        """`rows(positions) @ query` for a unit query, the norms divided into the dot products rather than
        into every element first: a third of the time for a re-rank's 1,200 rows (the same to 1e-6).
        The products are a loop of dots, not BLAS's matrix-vector call: for 1,200 x 384 BLAS's threads
        only wake and spin (8 ms of CPU on a busy 2-core machine, against 0.1 ms on one core)."""
        block = to_float32(self.matrix[np.asarray(positions, dtype=np.int64)])
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))
        dots = np.einsum("ij,j->i", block, np.asarray(query, np.float32))
        return dots / np.where(norms > 0, norms, 1.0)


def to_float32(block: np.ndarray) -> np.ndarray:
    """fp16 rows as float32: through torch when a worker has loaded it (its conversion uses the CPU's
    F16C instructions: a twentieth of numpy's 0.8 ms for a re-rank's 1,200 x 384)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and block.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(block)).float().numpy()
    return np.asarray(block, np.float32)


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first; ties by index (stable)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
        kth = scores[part].min()
        part = np.flatnonzero(scores >= kth)  # every tie at the boundary, so the order is stable
    else:
        part = np.arange(len(scores))
    order = np.lexsort((part, -scores[part]))[:k]
    return part[order].astype(np.int64)


def exact_search(
    matrix: np.ndarray, query: np.ndarray, k: int, within: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k of one query over the rows (all, or the positions `within`): (scores, positions).

    A first pass scores every row in fp16 straight from the map (torch's fp16 matrix-vector
    product, ~6x numpy's convert-then-multiply on this CPU); the best few times k are then
    re-scored in float32 with their norms, so the answer is float32 cosine's.
    """
    import torch  # here, not at import: a gallery worker that never searches by meaning saves ~150 MB

    query = normalise(query).reshape(-1)
    query16 = torch.from_numpy(query).half()
    rows = np.arange(len(matrix)) if within is None else np.asarray(within, dtype=np.int64)
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), BLOCK_ROWS):
        part = rows[start : start + BLOCK_ROWS]
        block = matrix[start : start + len(part)] if within is None else matrix[part]
        scores[start : start + len(part)] = _fp16_scores(block, query16)
    shortlist = top_k(scores, max(4 * k, k + 32))
    exact = normalise(np.asarray(matrix[rows[shortlist]], dtype=np.float32)) @ query
    best = top_k(exact, k)
    return exact[best], rows[shortlist[best]]


def _fp16_scores(block: np.ndarray, query16: torch.Tensor) -> np.ndarray:
    import torch

    with warnings.catch_warnings():  # a read-only memory map: torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        rows = torch.from_numpy(np.ascontiguousarray(block))
    if rows.dtype != torch.float16:
        rows = rows.half()
    return torch.mv(rows, query16).float().numpy()
