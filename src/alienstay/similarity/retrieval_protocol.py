"""Who queries whom: the paper's protocol when the workspace holds both splits, else a labelled sample.

Paper: the test split's photos (TraffickCam) are the queries and the train split's photos the
gallery, no photo in both, every test photo asked (as the dataset's evaluator expects, whose
input holds test ids as queries and train ids as results). Sampled: up to N photos drawn (seeded)
from all of them, each a query against all the others, its own exact and near copies left out
(a copy of the query would find its hotel for free). Figures of the sampled protocol cannot stand
beside the paper's table, and the note says so.

Also the evaluator's input file: one line a query, its image id then 100 gallery image ids, best first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alienstay.similarity.retrieval_images import LIST_LENGTH, Lists
from alienstay.workspace.layout import WorkspaceError, write_text

PAPER, SAMPLED = "paper", "sampled"


@dataclass(frozen=True)
class Protocol:
    name: str  # PAPER or SAMPLED
    queries: np.ndarray  # row numbers asked
    gallery: np.ndarray  # mask over rows: who may be found
    exclude: Callable[[int], np.ndarray] | None  # per query, rows left out of its gallery (itself, copies)
    candidates: int  # photos that could have been queries (sampled: before sampling)
    seed: int = 0

    def describe(self, answered: int, left_out: int, gallery: int) -> str:
        """One paragraph for the note: who queried whom, and what was left out and why."""
        lost = (f" {left_out} {'query' if left_out == 1 else 'queries'} whose hotel has no photo in the gallery "
                "cannot be answered and are left out (the exported file holds only the counted queries)."
                if left_out else "")
        if self.name == PAPER:
            return (f"**Protocol: the paper's.** The {answered + left_out} test-split photos are the queries, "
                    f"the {gallery} train-split photos the gallery, no photo in both.{lost}")
        return (f"**Protocol: sampled, not the paper's** (this workspace does not hold photos of both "
                f"splits of the same hotels): {answered + left_out} photos drawn (seed {self.seed}) from "
                f"{self.candidates}, each a query against all the other {gallery - 1}, its own exact and "
                f"near copies left out.{lost} These figures cannot stand beside the paper's table.")


def choose(split: pd.Series, hotel: np.ndarray, queries: int, seed: int,
           copies: Callable[[int], np.ndarray] | None) -> Protocol:
    """The paper's protocol when test photos have train photos of their hotel here; else a sample."""
    known = hotel >= 0
    text = split.astype("string").fillna("").to_numpy(dtype=object)
    test, train = known & (text == "test"), known & (text == "train")
    if test.any() and np.isin(hotel[test], hotel[train]).any():
        return Protocol(PAPER, np.flatnonzero(test), train, None, int(test.sum()), seed)
    rows = np.flatnonzero(known)
    rng = np.random.default_rng(seed)
    asked = np.sort(rng.choice(rows, size=min(len(rows), queries), replace=False))
    return Protocol(SAMPLED, asked, known, copies, len(rows), seed)


def check_target(target: Path) -> None:
    """The export file can be written: not a folder, and its nearest existing folder is writable."""
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    why = "it is a folder" if target.is_dir() else "" if os.access(folder, os.W_OK) else f"{folder} is not writable"
    if why:
        raise WorkspaceError(f"cannot write {target}: {why}; pass --export-knn a file path in a folder you can write to.")


def write_knn(target: Path, ids: list[str], lists: Lists) -> Path:
    """The evaluator's input: `query_id,result_1,...,result_100`, one line a counted query."""
    if lists.rows.shape[1] < LIST_LENGTH or (lists.rows < 0).any():
        short = int(lists.gallery.min()) if len(lists.gallery) else 0
        raise WorkspaceError(
            f"cannot write {target}: the dataset's evaluator reads {LIST_LENGTH} gallery images a query, "
            f"but a gallery here holds {short}. Ingest more photos (e.g. `alienstay ingest hotels50k "
            f"--split train --hotels 50 --per-hotel 10`), then tag and rerun `alienstay retrieval`."
        )
    names = np.asarray(ids, dtype=object)
    lines = [",".join([names[q], *names[row]]) for q, row in zip(lists.queries, lists.rows)]
    return write_text("".join(line + "\n" for line in lines), target)
