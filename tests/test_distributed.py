"""The tag stage on Ray Data writes what the local engine writes, and resumes from its shards.

One Ray session for the whole module (starting Ray takes ~10 s on two cores); the encoder is a
tiny random CLIP saved with save_pretrained and loaded through the resolver, on the driver
and again inside every Ray actor.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alienstay import tagging
from alienstay.cli.commands import app
from alienstay.encoders import load_encoder
from alienstay.tagging import ray_engine
from alienstay.vocabulary.words import load_vocabulary
from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace

runner = CliRunner()
BROKEN_ID = "broken.jpg"


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="module")
def encoder(tiny_clip):
    return load_encoder(str(tiny_clip))


@pytest.fixture(scope="module")
def template(tmp_path_factory, samples_dir) -> Workspace:
    """The 8 sample photos ingested and preprocessed by the CLI, plus one usable row whose file is corrupt."""
    root = tmp_path_factory.mktemp("template")
    ws = prepared_workspace(root / "ws", samples_dir)
    broken = root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    catalog = ws.read_catalog()
    row = catalog.iloc[[0]].assign(image_id=BROKEN_ID, path=str(broken), prepared_path=str(broken), status=cat.OK)
    ws.write_catalog(cat.conform(pd.concat([catalog, row], ignore_index=True)))
    return ws


def copy_of(template: Workspace, folder: Path) -> Workspace:
    shutil.copytree(template.root, folder)
    return Workspace(folder)


@pytest.fixture(scope="module")
def local_run(template, encoder, tmp_path_factory) -> Workspace:
    """The reference: the local engine over the same workspace."""
    ws = copy_of(template, tmp_path_factory.mktemp("local") / "ws")
    tagging.run_tagging(ws, encoder, load_vocabulary(), batch_size=4, rows_per_shard=3, show_progress=False)
    return ws


def assert_same_outputs(ray_ws: Workspace, local_ws: Workspace) -> None:
    """Same tag rows in the same order, same selections, scores equal up to float rounding; same embeddings."""
    ours, theirs = ray_ws.read_tags(), local_ws.read_tags()
    assert len(ours) == len(theirs) == 8 * len(load_vocabulary().words)
    pd.testing.assert_frame_equal(ours.drop(columns=["score", "prob"]), theirs.drop(columns=["score", "prob"]))
    np.testing.assert_allclose(ours["score"], theirs["score"], atol=1e-6)
    np.testing.assert_allclose(ours["prob"], theirs["prob"], atol=1e-6)
    ids, matrix, meta = tagging.read_embeddings(ray_ws)
    local_ids, local_matrix, local_meta = tagging.read_embeddings(local_ws)
    assert ids == local_ids and BROKEN_ID not in ids
    np.testing.assert_allclose(matrix, local_matrix, atol=1e-6)
    assert meta == local_meta


def test_unreachable_cluster_says_how_to_start_one(template, tiny_clip, tmp_path, monkeypatch):
    # First in the module, before the shared Ray session exists (an open session is reused).
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ws = copy_of(template, tmp_path / "ws")
    result = runner.invoke(
        app, ["tag", "--engine", "ray", "--ray-address", "auto", "--model", str(tiny_clip), "-w", str(ws.root)]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "ray start --head" in text and "--ray-address local" in text
    assert not ws.tags_path.exists()


def test_ray_engine_writes_the_same_tags_and_embeddings_as_local(ray_cluster, template, local_run, tiny_clip, tmp_path):
    ws = copy_of(template, tmp_path / "ws")
    result = runner.invoke(
        app,
        ["tag", "--engine", "ray", "--model", str(tiny_clip), "--batch-size", "4", "--rows-per-shard", "3",
         "--workspace", str(ws.root)],
    )
    assert result.exit_code == 0, result.output
    assert "tagged 8 photos now" in " ".join(result.output.split())
    assert_same_outputs(ws, local_run)
    failures = pd.read_parquet(ws.tag_failures_path)
    assert failures["image_id"].tolist() == [BROKEN_ID]
    assert failures["reason"].tolist() == pd.read_parquet(local_run.tag_failures_path)["reason"].tolist()
    logged = json.loads(ws.runs_log_path.read_text().splitlines()[-1])
    assert logged["stage"] == "tag" and logged["engine"] == "ray"


def test_ray_rerun_after_a_partial_run_tags_only_the_missing_photos(ray_cluster, template, local_run, encoder, tmp_path):
    ws = copy_of(template, tmp_path / "ws")
    vocab = load_vocabulary()
    tagging.run_tagging(ws, encoder, vocab, batch_size=2, rows_per_shard=2, show_progress=False)
    tags_dir, embeddings_dir = tagging.shard_dirs(ws, tagging.TagIdentity.of(encoder, vocab))
    shards = tagging.tag_shards(tags_dir)
    assert len(shards) == 4
    for lost in (shards[1], shards[3]):  # as if those shards had never been written
        lost.unlink()
        (embeddings_dir / f"{lost.stem}.npz").unlink()
    kept = {shard: shard.stat().st_mtime_ns for shard in (shards[0], shards[2])}

    summary = ray_engine.run_tagging_on_ray(ws, encoder, vocab, batch_size=2, rows_per_shard=2, show_progress=False)

    assert (summary.already_done, summary.tagged_now, summary.failed_now, summary.consolidated) == (4, 4, 1, 8)
    assert {shard: shard.stat().st_mtime_ns for shard in kept} == kept  # finished shards untouched
    assert [s.name for s in tagging.tag_shards(tags_dir)] == [s.name for s in shards]
    assert_same_outputs(ws, local_run)


def test_workers_load_the_encoder_by_spec_and_refuse_another_revision(encoder, tiny_clip, monkeypatch):
    monkeypatch.chdir(tiny_clip.parent)
    relative = load_encoder(tiny_clip.name)  # a folder given relative to where the driver runs
    spec = ray_engine.EncoderSpec.of(relative)
    assert spec == ray_engine.EncoderSpec(str(tiny_clip.resolve()), "cpu", "float32")
    offline = SimpleNamespace(model_id="offline:efficientnet-lite0+all-MiniLM-L6-v2", revision="v", dtype="float32",
                              encoder_name="offline")
    assert ray_engine.EncoderSpec.of(offline).model == "offline"

    settings = tagging.TagIdentity.of(encoder, load_vocabulary())
    reloaded = spec.load()
    ray_engine.check_same_model(reloaded, settings)  # same folder, same weights: accepted
    other = tagging.TagIdentity(settings.model_id, "0123abcd", settings.dtype, settings.vocab_hash)
    with pytest.raises(ray_engine.EncoderMismatch, match="same snapshot"):
        ray_engine.check_same_model(reloaded, other)
