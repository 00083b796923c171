"""Embeddings planted into a test workspace, in the tag stage's layout (embeddings/ + meta.json)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def write_embeddings(root: Path, ids: list[str], matrix: np.ndarray, model_id: str = "planted", **meta) -> None:
    """(N, D) rows for `ids`, L2-normalised and stored as fp16 like the tag stage stores them."""
    folder = root / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(matrix, dtype=np.float32)
    matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    np.save(folder / "embeddings.npy", matrix.astype(np.float16))
    pd.DataFrame({"image_id": pd.Series(ids, dtype="string")}).to_parquet(folder / "ids.parquet", index=False)
    record = {"model_id": model_id, "model_revision": "local", "dtype": "float32", "vocab_hash": "0" * 16,
              "dim": int(matrix.shape[1]), "count": len(ids), "stored_as": "float16", **meta}
    (folder / "meta.json").write_text(json.dumps(record), encoding="utf-8")


def set_catalog_hashes(root: Path, hashes: dict[str, tuple[str, str]]) -> None:
    """image_id -> (sha256, phash) in catalog.parquet (the webworkspace catalog has none)."""
    catalog = pd.read_parquet(root / "catalog.parquet")
    for image_id, (sha, phash) in hashes.items():
        catalog.loc[catalog["image_id"] == image_id, ["sha256", "phash"]] = [sha, phash]
    catalog.to_parquet(root / "catalog.parquet", index=False)


def clustered(n: int, dim: int, clusters: int, seed: int = 0, spread: float = 1.0) -> np.ndarray:
    """Unit vectors around `clusters` random centres: a structure like photos of a few kinds of room."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    rows = centres[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
