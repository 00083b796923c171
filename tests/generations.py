"""Tag generations planted the way the tag stage publishes them (issue 23): a workspace of many
photos whose tags and embeddings live in tagged/<generation>/, and a republish of the same set with
its rows in another order through the workspace's own publish step (what consolidation calls)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from alienstay.workspace.catalog import conform
from alienstay.workspace.layout import Workspace

WORDS = [("place", "pool"), ("place", "bedroom"), ("light", "night")]


def plant(root: Path, n: int, dim: int, seed: int = 0, model_id: str = "planted") -> tuple[Workspace, list[str], tuple]:
    """n usable photos (catalog), their tags and unit embeddings as one published generation:
    (workspace, ids, (matrix, probs)) to republish the same set from."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"h{i % 7}/p{i:04d}.jpg" for i in range(n)]
    conform(pd.DataFrame({"image_id": ids, "hotel_id": [i.split("/")[0] for i in ids], "source": "folder",
                          "status": "ok", "width": 64, "height": 48})).to_parquet(root / "catalog.parquet", index=False)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    probs = rng.uniform(0.05, 0.95, (n, len(WORDS))).astype(np.float32)
    ws = Workspace(root)
    publish(ws, ids, matrix, probs, np.arange(n), model_id)
    return ws, ids, (matrix, probs)


def publish(ws: Workspace, ids: list[str], matrix: np.ndarray, probs: np.ndarray, order: np.ndarray,
            model_id: str = "planted") -> str:
    """The same set, rows in `order`, written into a new generation and made current by publish_tag_outputs."""
    outputs = ws.new_tag_outputs()
    chosen = [ids[i] for i in order]
    np.save(outputs.embeddings_matrix, matrix[order].astype(np.float16))
    pd.DataFrame({"image_id": pd.Series(chosen, dtype="string")}).to_parquet(outputs.embeddings_ids, index=False)
    rows = [{"image_id": image_id, "facet": f, "tag": t, "score": 0.25, "prob": float(probs[i, w]),
             "selected": bool(probs[i, w] > 0.5), "model_id": model_id, "vocab_hash": "0" * 16}
            for i, image_id in zip(order, chosen) for w, (f, t) in enumerate(WORDS)]
    pd.DataFrame(rows).astype({"score": "float32", "prob": "float32"}).to_parquet(outputs.tags, index=False)
    meta = {"model_id": model_id, "model_revision": "local", "dtype": "float32", "vocab_hash": "0" * 16,
            "dim": int(matrix.shape[1]), "count": len(ids), "stored_as": "float16"}
    outputs.embeddings_meta.write_text(json.dumps(meta), encoding="utf-8")
    pd.DataFrame({"image_id": pd.Series([], dtype="string"), "reason": pd.Series([], dtype="string")}).to_parquet(
        outputs.failures, index=False)
    ws.publish_tag_outputs(outputs, **meta)
    return str(outputs.generation)
