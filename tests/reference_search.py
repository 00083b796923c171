"""The gallery's search as it was before the word index (pandas over every tag row): the oracle.

Copied from web/gallery.py at f1f6ab7 so the tests can prove the index ranks exactly as it did:
an AND of selected tags, ranked by the summed probability (float64), ties by image id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def build_search_index(tags: pd.DataFrame | None) -> dict[str, pd.Series]:
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
    if not words or any(w not in index for w in words):
        return pd.DataFrame({"image_id": pd.Series(dtype=str), "score": pd.Series(dtype=float)})
    every = pd.concat([index[w].rename(w) for w in words], axis=1, join="inner")
    ranked = pd.DataFrame({"image_id": every.index.astype(str), "score": every.sum(axis=1).to_numpy(np.float64)})
    return ranked.sort_values(["score", "image_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
