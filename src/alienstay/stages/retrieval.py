"""The retrieval stage: can a photo's embedding (or its tag vector) find its own hotel?

Writes `report/retrieval.md`, `report/retrieval_accuracy.png` and `report/retrieval.json`.
With fewer than two hotels (a photo folder is one "hotel") the note says why the question
cannot be answered instead of printing a meaningless 100 %.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from alienstay import catalog as cat
from alienstay.similarity import retrieval as rt
from alienstay.similarity.duplicates import DuplicateKeys
from alienstay.similarity.retrieval_note import plot, write_note
from alienstay.similarity.vectors import Vectors
from alienstay.workspace import Workspace, WorkspaceError, write_json, write_text

NOTE, FIGURE, FIGURES = "retrieval.md", "retrieval_accuracy.png", "retrieval.json"


@dataclass(frozen=True)
class RetrievalSettings:
    queries: int = 2000  # query photos, sampled (seeded) when there are more; the gallery is always all
    seed: int = 0


@dataclass(frozen=True)
class RetrievalSummary:
    photos: int
    hotels: int
    chains: int
    answered: bool  # False: fewer than two hotels, the note says why
    results: dict = field(default_factory=dict)  # "embeddings"/"tags" -> "hotel"/"chain" -> {k: accuracy}
    note: str = ""
    seconds: float = 0.0


def features(ws: Workspace) -> tuple[list[str], dict[str, np.ndarray]]:
    """Photo ids with an embedding and a tag vector, and both matrices aligned to them."""
    from alienstay.clustering.features import tag_feature_matrix

    vectors = Vectors.open(ws)
    if vectors is None:
        raise WorkspaceError(f"no image embeddings in {ws.embeddings_dir}: run `alienstay tag --workspace {ws.root}` first.")
    tag_ids, _, tag_matrix = tag_feature_matrix(ws.read_tags())
    embedded = vectors.ids.to_pylist()
    tag_row = {image_id: i for i, image_id in enumerate(tag_ids)}
    both = [i for i, image_id in enumerate(embedded) if image_id in tag_row]
    ids = [embedded[i] for i in both]
    matrices = {"embeddings": vectors.rows(np.asarray(both, dtype=np.int64)),
                "tags": tag_matrix[[tag_row[i] for i in ids]]}
    return ids, matrices


def run(ws: Workspace, settings: RetrievalSettings = RetrievalSettings()) -> RetrievalSummary:
    """Raises WorkspaceError (which stage to run first) or ValueError (a bad setting)."""
    with ws.ensure().lock("retrieval"):
        return _run(ws, settings)


def _run(ws: Workspace, settings: RetrievalSettings) -> RetrievalSummary:
    start = time.perf_counter()
    ids, matrices = features(ws)
    catalog = cat.usable(ws.read_catalog()).drop_duplicates("image_id").set_index("image_id")
    labels = catalog.reindex(ids)[["hotel_id", "chain_id"]]
    hotels = rt.label_codes(labels["hotel_id"])[1]
    chains = rt.label_codes(labels["chain_id"])[1]
    if hotels < 2:
        note = cannot_answer(len(ids), hotels)
        write_text(note, ws.report_dir / NOTE)
        (ws.report_dir / FIGURE).unlink(missing_ok=True)  # a figure from an older, answerable run would mislead
        summary = RetrievalSummary(len(ids), hotels, chains, False, {}, note, time.perf_counter() - start)
        write_json(asdict(summary), ws.report_dir / FIGURES)
        return summary
    rng = np.random.default_rng(settings.seed)
    queries = np.sort(rng.choice(len(ids), size=min(len(ids), settings.queries), replace=False))
    copies = rt.CopyMask(DuplicateKeys.of(ws, _aligned(ws, ids)))
    results: dict = {}
    accuracies: dict = {}
    for name, matrix in matrices.items():
        hotel = rt.top_k_accuracy(matrix, labels["hotel_id"].reset_index(drop=True), rt.HOTEL_KS, copies, queries)
        chain = rt.top_k_accuracy(matrix, labels["chain_id"].reset_index(drop=True), rt.CHAIN_KS, copies, queries)
        accuracies[name] = {"hotel": hotel, "chain": chain}
        results[name] = {"hotel": hotel.hits, "chain": chain.hits,
                         "hotel_queries": hotel.queries, "chain_queries": chain.queries}
    plot(accuracies, ws.report_dir / FIGURE)
    note = write_note(accuracies, len(ids), hotels, chains, len(queries), FIGURE)
    write_text(note, ws.report_dir / NOTE)
    summary = RetrievalSummary(len(ids), hotels, chains, True, results, note, time.perf_counter() - start)
    write_json(json.loads(json.dumps(asdict(summary), default=float)), ws.report_dir / FIGURES)
    ws.log_run("retrieval", queries=len(queries), seed=settings.seed, photos=len(ids), hotels=hotels, chains=chains)
    return summary


def _aligned(ws: Workspace, ids: list[str]) -> Vectors:
    """A Vectors whose rows are `ids` (for DuplicateKeys, which aligns the catalog to vector rows)."""
    import pyarrow as pa

    vectors = Vectors.open(ws)
    return Vectors(pa.array(ids, pa.string()), np.zeros((len(ids), 0), np.float16), vectors.meta, vectors.fingerprint)


def cannot_answer(photos: int, hotels: int) -> str:
    what = "no hotel ids (a photo folder's catalog names none)" if hotels == 0 else "one hotel"
    return (
        "# The hotel question by retrieval\n\n"
        f"**Cannot be answered here**: the {photos} photos have {what}. Retrieval asks whether a photo's "
        "nearest neighbours belong to *its* hotel rather than another; with fewer than two hotels every "
        "neighbour is of the same hotel (or of none), so top-1 accuracy would be 100 % (or undefined) by "
        "construction and would say nothing. Run it on a Hotels-50K sample with several hotels: "
        "`alienstay ingest hotels50k --hotels 50 --per-hotel 10`, then `preprocess`, `tag` and "
        "`alienstay retrieval`.\n"
    )
