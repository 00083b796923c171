"""The retrieval stage: can a photo's embedding (or its tag vector) find its own hotel?

Writes `report/retrieval.md`, `report/retrieval_accuracy.png` and `report/retrieval.json`
(the image-level figures, the dataset evaluator's rule, in percent), and with `export_knn` the
evaluator's input file. The paper's protocol when the workspace holds test and train photos of
the same hotels, else a sampled protocol, labelled so (`similarity.retrieval_protocol`).
With fewer than two hotels (a photo folder is one "hotel") the note says why the question
cannot be answered instead of printing a meaningless 100 %.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alienstay.similarity import retrieval as rt
from alienstay.similarity import retrieval_images as ri
from alienstay.similarity import retrieval_protocol as rp
from alienstay.similarity.duplicates import DuplicateKeys
from alienstay.similarity.retrieval_note import plot, write_note
from alienstay.workspace import catalog as cat
from alienstay.workspace.embeddings import Vectors
from alienstay.workspace.layout import Workspace, WorkspaceError, write_json, write_text

NOTE, FIGURE, FIGURES = "retrieval.md", "retrieval_accuracy.png", "retrieval.json"
HEADLINE = "embeddings"  # the features whose figures head retrieval.json and whose lists are exported


@dataclass(frozen=True)
class RetrievalSettings:
    queries: int = 2000  # sampled protocol: query photos drawn (seeded); the paper's protocol asks every test photo
    seed: int = 0
    export_knn: Path | None = None  # write the dataset evaluator's input file here


@dataclass(frozen=True)
class RetrievalSummary:
    photos: int
    hotels: int
    chains: int
    answered: bool  # False: fewer than two hotels, the note says why
    results: dict = field(default_factory=dict)  # what report/retrieval.json holds
    note: str = ""
    seconds: float = 0.0
    knn_path: str | None = None


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
    if settings.export_knn:
        rp.check_target(Path(settings.export_knn))  # before the work, not after it
    ids, matrices = features(ws)
    catalog = cat.usable(ws.read_catalog()).drop_duplicates("image_id").set_index("image_id")
    labels = catalog.reindex(ids).reset_index(drop=True)
    hotel, hotels = rt.label_codes(labels["hotel_id"])
    chain, chains = rt.label_codes(labels["chain_id"])
    if hotels < 2:
        return _cannot_answer(ws, settings, len(ids), hotels, chains, start)
    copies = rt.CopyMask(DuplicateKeys.of(ws, _aligned(ws, ids)))
    split = labels["split"] if "split" in labels else pd.Series(pd.NA, index=labels.index)
    protocol = rp.choose(split, hotel, settings.queries, settings.seed,
                         lambda q: copies(q, np.arange(len(ids))))
    lists, official, variant, distinct = {}, {}, {}, {}
    for name, matrix in matrices.items():
        lists[name], official[name], variant[name] = ri.official_and_variant(
            matrix, hotel, chain, protocol.queries, protocol.gallery, protocol.exclude)
        mask = copies if protocol.name == rp.SAMPLED else None
        distinct[name] = {kind: rt.top_k_accuracy(matrix, labels[f"{kind}_id"], ks, mask, protocol.queries, protocol.gallery)
                          for kind, ks in (("hotel", rt.HOTEL_KS), ("chain", rt.CHAIN_KS))}
    head = lists[HEADLINE]
    gallery = int(protocol.gallery.sum())
    described = protocol.describe(len(head.queries), head.left_out, gallery)
    plot(official, ws.report_dir / FIGURE)
    note = write_note(described, official, variant, distinct, FIGURE)
    write_text(note, ws.report_dir / NOTE)
    results = {**figures_json(protocol, official, variant, distinct, gallery, head.left_out), "knn_file": None}
    write_json(results, ws.report_dir / FIGURES)  # first: a failed export leaves no older run's figures behind
    if settings.export_knn:
        results["knn_file"] = str(rp.write_knn(Path(settings.export_knn), ids, head))
        write_json(results, ws.report_dir / FIGURES)
    ws.log_run("retrieval", protocol=protocol.name, queries=len(protocol.queries), seed=settings.seed,
               photos=len(ids), hotels=hotels, chains=chains, export_knn=results["knn_file"])  # fmt: skip
    return RetrievalSummary(len(ids), hotels, chains, True, results, note, time.perf_counter() - start,
                            results["knn_file"])  # fmt: skip


def figures_json(protocol: rp.Protocol, official: dict, variant: dict, distinct: dict, gallery: int, left_out: int) -> dict:
    """report/retrieval.json: the headline features' official figures at the top, in percent; the rest named."""
    head = official[HEADLINE].as_dict()
    return {
        "protocol": protocol.name, "rule": "image-level", "unit": "percent", "features": HEADLINE,
        "hotel": head["hotel"], "chain": head["chain"], "queries": head["queries"], "gallery": gallery,
        "chain_queries": head["chain_queries"], "chance": head["chance"], "left_out": left_out,
        "chain -1 dropped (paper's variant)": variant[HEADLINE].as_dict(),
        "by_features": {name: {"official": official[name].as_dict(), "chain -1 dropped (paper's variant)":
                               variant[name].as_dict()} for name in official},
        "distinct-hotel top-K (not the paper's metric)": {
            name: {kind: {str(k): 100 * v for k, v in acc.hits.items()} for kind, acc in by_kind.items()}
            for name, by_kind in distinct.items()},
    }  # fmt: skip


def _cannot_answer(ws: Workspace, settings: RetrievalSettings, photos: int, hotels: int, chains: int,
                   start: float) -> RetrievalSummary:
    """The note says why; an older, answerable run's figure and figures are replaced, not left to mislead."""
    note = cannot_answer(photos, hotels)
    write_text(note, ws.report_dir / NOTE)
    (ws.report_dir / FIGURE).unlink(missing_ok=True)
    summary = RetrievalSummary(photos, hotels, chains, False, {}, note, time.perf_counter() - start)
    write_json(asdict(summary), ws.report_dir / FIGURES)
    if settings.export_knn:
        raise WorkspaceError(f"cannot write {settings.export_knn}: with {'one hotel' if hotels else 'no hotel ids'} "
                             f"there is nothing to rank; see {ws.report_dir / NOTE}.")
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
        "construction and would say nothing. Run it on a Hotels-50K sample with several hotels, both "
        "splits for the paper's protocol: `alienstay ingest hotels50k --split train --hotels 50 --per-hotel 10`, "
        "`alienstay ingest hotels50k --split test --same-hotels --hotels 50`, then `preprocess`, `tag` and "
        "`alienstay retrieval`.\n"
    )
