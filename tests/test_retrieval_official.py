"""The paper's protocol and the dataset's counting rule, checked against an independent implementation.

A synthetic Hotels-50K: the dataset's CSVs (the evaluator's inputs) and a workspace built from
them, whose embeddings are a hotel's direction plus a chain's plus noise, so the figures are
neither 0 nor 100 %. `alienstay retrieval --export-knn` writes the evaluator's file;
tests/official_rule.py (written from the evaluator's source, sharing no code with alienstay)
recomputes the figures from that file alone, and they must equal report/retrieval.json.
"""

from __future__ import annotations

import csv
import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from official_rule import evaluate
from searchworkspace import write_embeddings
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.similarity import retrieval_images as ri
from alienstay.sources import hotels50k as h50k
from alienstay.workspace.catalog import conform
from alienstay.workspace.layout import Workspace

SPLIT_COLUMNS = ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"]
HOTELS, TRAIN_EACH, TEST_EACH = 30, 6, 2  # hotels 0-19 in chains 1-10 (two each), 20-29 in chain -1


def chain_of(hotel: int) -> int:
    return hotel // 2 + 1 if hotel < 20 else -1


def write_dataset(folder: Path) -> None:
    """The dataset's four CSVs (with header rows, as the evaluator expects)."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, header: list[str], rows: list[list]) -> None:
        with open(folder / name, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])

    write("chain_info.csv", ["chain_id", "chain_name"], [[-1, "no chain"]] + [[c, f"Chain {c}"] for c in range(1, 11)])
    write("hotel_info.csv", ["hotel_id", "hotel_name", "chain_id", "latitude", "longitude"],
          [[h, f"Hotel {h}", chain_of(h), 0, 0] for h in range(HOTELS)])
    train = [[1000 + h * TRAIN_EACH + j, h, f"http://x/{h}/{j}.jpg", "travel_website", ""]
             for h in range(HOTELS) for j in range(TRAIN_EACH)]
    test = [[5000 + h * TEST_EACH + j, h, f"http://x/t/{h}/{j}.jpg", "traffickcam", ""]
            for h in range(HOTELS) for j in range(TEST_EACH)]
    write("train_set.csv", SPLIT_COLUMNS, train)
    write("test_set.csv", SPLIT_COLUMNS, test)


def build_workspace(ws: Workspace, folder: Path, relabel_test_as: str = "test", seed: int = 0) -> dict[str, np.ndarray]:
    """Catalog from the CSVs; embeddings = hotel + chain direction + noise; one room-type tag a photo."""
    full = h50k.join_metadata(h50k.read_metadata(folder))
    full.loc[full["split"] == "test", "split"] = relabel_test_as
    rng = np.random.default_rng(seed)
    dim = 48
    hotel_dir = rng.standard_normal((HOTELS, dim))
    chain_dir = rng.standard_normal((11, dim))
    hotels = full["hotel_id"].astype(int).to_numpy()
    chains = np.array([chain_of(h) for h in hotels])
    vectors = hotel_dir[hotels] + np.where(chains[:, None] > 0, chain_dir[np.maximum(chains, 0)], 0) \
        + 3.0 * rng.standard_normal((len(full), dim))
    ids = full["image_id"].tolist()
    catalog = full.assign(status="ok", sha256=[f"{i:0>64}" for i in ids])
    ws.write_catalog(conform(catalog))
    write_embeddings(ws.root, ids, vectors)
    rooms = rng.integers(0, 4, len(ids))
    tag_rows = [{"image_id": i, "facet": "room", "tag": f"r{w}", "score": 0.2, "prob": float(w == room),
                 "selected": w == room, "model_id": "planted", "vocab_hash": "0" * 16}
                for i, room in zip(ids, rooms) for w in range(4)]
    pd.DataFrame(tag_rows).to_parquet(ws.tags_path, index=False)
    return dict(zip(ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))


def retrieval(ws: Workspace, knn: Path) -> dict:
    result = CliRunner().invoke(app, ["retrieval", "--export-knn", str(knn), "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    return json.loads((ws.report_dir / "retrieval.json").read_text())


def test_paper_protocol_agrees_with_the_datasets_counting_rule(tmp_path: Path, workspace: Workspace) -> None:
    write_dataset(tmp_path / "dataset")
    vectors = build_workspace(workspace, tmp_path / "dataset")
    figures = retrieval(workspace, tmp_path / "knn.csv")
    assert (figures["protocol"], figures["rule"]) == ("paper", "image-level")
    assert figures["queries"] == HOTELS * TEST_EACH and figures["gallery"] == HOTELS * TRAIN_EACH

    lines = [row for row in csv.reader(open(tmp_path / "knn.csv"))]
    test_ids = {str(5000 + i) for i in range(HOTELS * TEST_EACH)}
    assert len(lines) == HOTELS * TEST_EACH and {len(row) for row in lines} == {101}
    assert {row[0] for row in lines} == test_ids
    assert not {cell for row in lines for cell in row[1:]} & test_ids  # the gallery is the train split only
    for row in lines[:5]:  # best first, by the stored embeddings
        scores = [float(vectors[row[0]] @ vectors[cell]) for cell in row[1:]]
        assert all(a >= b - 2e-3 for a, b in zip(scores, scores[1:]))  # fp16 storage: tiny reorderings

    d = tmp_path / "dataset"
    check = evaluate(tmp_path / "knn.csv", d / "test_set.csv", [d / "train_set.csv"], d / "hotel_info.csv")
    assert check["queries"] == figures["queries"]
    for kind in ("hotel", "chain"):
        for k, value in check[kind].items():
            assert figures[kind][k] == pytest.approx(value, abs=0.01), (kind, k)
    assert 5 < figures["hotel"]["1"] < 95 and figures["hotel"]["100"] > figures["hotel"]["1"]  # not trivial
    assert figures["chain_queries"] == 20 * TEST_EACH  # chain -1 queries skipped for the chain figures

    # Distinct-hotel counting can only raise the figures: several photos of a hotel take one place.
    distinct = figures["distinct-hotel top-K (not the paper's metric)"]["embeddings"]
    gaps = [distinct[kind][k] - value for kind in ("hotel", "chain") for k, value in figures[kind].items()]
    assert min(gaps) >= -1e-9 and max(gaps) > 5  # here hotel top-10 and chain top-3/5 differ
    assert (figures["hotel"]["10"], distinct["hotel"]["10"]) == (pytest.approx(80.0), pytest.approx(260 / 3))  # docs/gallery.md
    note = (workspace.report_dir / "retrieval.md").read_text()
    assert "**Protocol: the paper's.** The 60 test-split photos are the queries, the 180 train-split photos" in note


def test_sampled_protocol_is_labelled_and_its_file_counts_the_same(tmp_path: Path, workspace: Workspace) -> None:
    write_dataset(tmp_path / "dataset")
    build_workspace(workspace, tmp_path / "dataset", relabel_test_as="train")  # one split: no paper protocol
    figures = retrieval(workspace, tmp_path / "knn.csv")
    assert figures["protocol"] == "sampled" and figures["queries"] == HOTELS * (TRAIN_EACH + TEST_EACH)
    d = tmp_path / "dataset"  # queries and results come from both CSVs here: one map of every image
    merged = tmp_path / "all_set.csv"
    merged.write_text((d / "train_set.csv").read_text() + (d / "test_set.csv").read_text().split("\n", 1)[1])
    check = evaluate(tmp_path / "knn.csv", merged, [merged], d / "hotel_info.csv")
    for kind in ("hotel", "chain"):
        for k, value in check[kind].items():
            assert figures[kind][k] == pytest.approx(value, abs=0.01), (kind, k)
    rows = [row for row in csv.reader(open(tmp_path / "knn.csv"))]
    assert all(row[0] not in row[1:] for row in rows)  # a query never finds itself
    note = (workspace.report_dir / "retrieval.md").read_text()
    assert "Protocol: sampled, not the paper's" in note and "cannot stand beside the paper's table" in note


def test_a_gallery_under_100_photos_cannot_be_exported_but_the_report_is_written(tmp_path: Path, workspace: Workspace) -> None:
    from test_retrieval import planted

    planted(workspace)
    result = CliRunner().invoke(app, ["retrieval", "--export-knn", str(tmp_path / "k.csv"), "--workspace", str(workspace.root)])
    assert result.exit_code == 2 and "100 gallery images" in " ".join(result.output.split())
    assert not (tmp_path / "k.csv").exists()
    assert "image-level" in (workspace.report_dir / "retrieval.md").read_text()
    assert json.loads((workspace.report_dir / "retrieval.json").read_text())["queries"] == 13  # this run's figures
    folder = CliRunner().invoke(app, ["retrieval", "--export-knn", str(tmp_path), "--workspace", str(workspace.root)])
    assert folder.exit_code == 2 and "it is a folder" in " ".join(folder.output.split())


@pytest.mark.parametrize(("gallery", "same", "k"), [(50, 1, 1), (50, 1, 10), (180, 6, 10), (180, 6, 100), (7, 3, 5), (12, 2, 100)])
def test_chance_is_the_hypergeometric_probability_of_a_hit(gallery: int, same: int, k: int) -> None:
    drawn = min(k, gallery)  # P(at least one of `same` among the drawn) = 1 - C(m - n, k) / C(m, k)
    expected = 1 - comb(gallery - same, drawn) / comb(gallery, drawn)
    assert ri.chance(np.array([gallery]), np.array([same]), k)[0] == pytest.approx(expected)


def test_test_photos_whose_hotel_has_no_train_photo_here_are_left_out_of_figures_and_file(
    tmp_path: Path, workspace: Workspace
) -> None:
    write_dataset(tmp_path / "dataset")
    build_workspace(workspace, tmp_path / "dataset")
    catalog = pd.read_parquet(workspace.catalog_path)
    catalog.loc[(catalog["hotel_id"] == "29") & (catalog["split"] == "train"), "status"] = "failed"  # not downloaded
    catalog.to_parquet(workspace.catalog_path, index=False)
    figures = retrieval(workspace, tmp_path / "knn.csv")
    assert (figures["protocol"], figures["queries"], figures["left_out"]) == ("paper", 58, 2)
    assert figures["gallery"] == HOTELS * TRAIN_EACH - TRAIN_EACH
    d = tmp_path / "dataset"
    check = evaluate(tmp_path / "knn.csv", d / "test_set.csv", [d / "train_set.csv"], d / "hotel_info.csv")
    assert check["queries"] == 58
    for kind in ("hotel", "chain"):
        for k, value in check[kind].items():
            assert figures[kind][k] == pytest.approx(value, abs=0.01), (kind, k)
    assert "2 queries whose hotel has no photo in the gallery" in (workspace.report_dir / "retrieval.md").read_text()
