"""Retrieval by hotel and chain on a planted set whose answer is known by construction."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from searchworkspace import write_embeddings
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.similarity import retrieval as rt
from alienstay.stages.retrieval import RetrievalSettings, run
from alienstay.workspace.catalog import conform
from alienstay.workspace.layout import Workspace

HOTELS = {"A": "1", "B": "1", "C": "2", "D": "2"}  # hotel -> chain; E (one photo) has chain -1


def sha(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def planted(ws: Workspace) -> None:
    """4 hotels x 3 photos, each photo a room type 0-2 (its tag vector); embeddings near the hotel's direction.

    D3 is an exact copy (same sha256) of A0 filed under hotel D: same embedding, same tags.
    Known answer: embeddings find the hotel for 12 of 13 answerable queries (D3 finds hotel A);
    tags never find it first (another hotel shows the same room type), but always in the top 10.
    """
    dim = 16
    eye = np.eye(dim, dtype=np.float32)
    rows, embeddings, tags = [], {}, []
    for h, (hotel, chain) in enumerate(HOTELS.items()):
        for j in range(3):
            image_id = f"{hotel}{j}"
            spread = 0.3 if j == 0 else 0.1  # photo 0 stands apart: its mates are nearer each other
            embeddings[image_id] = eye[h] + spread * eye[4 + 3 * h + j]
            rows.append({"image_id": image_id, "hotel_id": hotel, "chain_id": chain, "sha256": sha(image_id)})
            tags.append((image_id, j))
    embeddings["D3"] = embeddings["A0"].copy()
    rows.append({"image_id": "D3", "hotel_id": "D", "chain_id": "2", "sha256": sha("A0")})
    tags.append(("D3", 0))
    embeddings["E0"] = eye[dim - 1]
    rows.append({"image_id": "E0", "hotel_id": "E", "chain_id": "-1", "sha256": sha("E0")})
    tags.append(("E0", 3))
    catalog = pd.DataFrame(rows).assign(status="ok", source="planted")
    ws.write_catalog(conform(catalog))
    write_embeddings(ws.root, list(embeddings), np.stack(list(embeddings.values())))
    tag_rows = [{"image_id": i, "facet": "room", "tag": f"r{w}", "score": 0.2, "prob": float(w == room),
                 "selected": w == room, "model_id": "planted", "vocab_hash": "0" * 16}
                for i, room in tags for w in range(4)]
    pd.DataFrame(tag_rows).to_parquet(ws.tags_path, index=False)


def test_planted_retrieval_gives_the_known_answer(workspace: Workspace) -> None:
    """No splits here: the sampled protocol. Image-level (the dataset's rule) and distinct-hotel both known.

    D3 (A0's copy, A0 left out of its gallery) ranks A1, A2 first, then every other photo at cosine 0:
    ties never help, so B's photos and E0 come before its chain's (C, D) and its hotel's (D).
    Image-level, its first chain-2 photo is 7th (a miss at chain top-5), its first hotel-D photo 10th;
    counting distinct hotels, chain 2 is second.
    """
    planted(workspace)
    summary = run(workspace, RetrievalSettings())
    assert summary.answered and summary.hotels == 5 and summary.chains == 2 and summary.photos == 14
    figures = summary.results
    assert (figures["protocol"], figures["rule"], figures["features"]) == ("sampled", "image-level", "embeddings")
    assert figures["queries"] == 13 and figures["left_out"] == 1  # E0 alone in its hotel cannot be answered
    assert figures["chain_queries"] == 13 and figures["gallery"] == 14  # E0 has no chain: not a chain query
    twelve = pytest.approx(100 * 12 / 13)
    assert figures["hotel"] == {"1": twelve, "10": 100.0, "100": 100.0}
    assert figures["chain"] == {"1": twelve, "3": twelve, "5": twelve}
    variant = figures["chain -1 dropped (paper's variant)"]
    assert variant["chain"]["5"] == twelve  # without E0 D3's first chain-2 photo is 6th: still a miss
    distinct = figures["distinct-hotel top-K (not the paper's metric)"]
    assert distinct["embeddings"]["chain"] == {"1": twelve, "3": 100.0, "5": 100.0}
    assert distinct["tags"]["hotel"]["1"] == 0.0  # another hotel always shows the same room type
    assert figures["by_features"]["tags"]["official"]["hotel"]["1"] == 0.0
    # chance at hotel top-1: one photo drawn from the query's gallery. A0 and D3 (each other's copy) draw from
    # 12 photos, 2 of A's and 3 of D's; A1-C2 (8 queries) from 13, 2 of their hotel's; D0-D2 from 13, 3 of D's.
    assert figures["chance"]["hotel"]["1"] == pytest.approx(100 * (2 / 12 + 3 / 12 + 8 * 2 / 13 + 3 * 3 / 13) / 13)
    note = (workspace.report_dir / "retrieval.md").read_text()
    assert "Embeddings find a photo of the query's own hotel first 92.3 % of the time, tags 0.0 %" in note
    assert "Protocol: sampled, not the paper's" in note and "not the paper's metric" in note
    assert (workspace.report_dir / "retrieval_accuracy.png").stat().st_size > 5_000
    saved = json.loads((workspace.report_dir / "retrieval.json").read_text())
    assert saved["hotel"]["1"] == twelve


def test_copies_of_the_query_are_left_out(workspace: Workspace) -> None:
    planted(workspace)
    from alienstay.stages.retrieval import features

    ids, matrices = features(workspace)
    labels = pd.read_parquet(workspace.catalog_path).set_index("image_id").loc[ids, "hotel_id"].reset_index(drop=True)
    without = rt.top_k_accuracy(matrices["embeddings"], labels, rt.HOTEL_KS, copies=None)
    # Without the copy filter, A0's nearest is its own copy D3 (hotel D): one more miss.
    assert without.hits[1] == pytest.approx(11 / 13)


def test_one_hotel_says_why_it_cannot_answer(workspace: Workspace) -> None:
    planted(workspace)
    catalog = pd.read_parquet(workspace.catalog_path).assign(hotel_id="only")
    catalog.to_parquet(workspace.catalog_path, index=False)
    (workspace.report_dir).mkdir(parents=True, exist_ok=True)
    (workspace.report_dir / "retrieval_accuracy.png").write_bytes(b"old")
    summary = run(workspace, RetrievalSettings())
    assert not summary.answered and summary.hotels == 1
    note = (workspace.report_dir / "retrieval.md").read_text()
    assert "Cannot be answered here" in note and "one hotel" in note and "100 %" in note
    assert not (workspace.report_dir / "retrieval_accuracy.png").exists()
    export = CliRunner().invoke(app, ["retrieval", "--export-knn", str(workspace.root / "k.csv"), "-w", str(workspace.root)])
    assert export.exit_code == 2 and "nothing to rank" in export.output and not (workspace.root / "k.csv").exists()


def test_retrieval_command(workspace: Workspace) -> None:
    planted(workspace)
    result = CliRunner().invoke(app, ["retrieval", "--workspace", str(workspace.root)])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    assert "sampled protocol, image-level rule (13 queries, 14 gallery photos), embeddings: hotel top-1 92.31 % (chance 18.00 %)" in printed
