"""Consolidation is all or nothing: a kill between any two writes leaves the previous set whole."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from alienstay import tagging
from alienstay.encoders import load_encoder
from alienstay.tagging import consolidation as consolidate_module
from alienstay.vocabulary.words import load_vocabulary
from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace
from alienstay.workspace.layout import Workspace
from alienstay.workspace import layout as workspace_module


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, no except clause catches it."""


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, samples_dir):
    """Shards for every sample photo, and a first consolidated set holding only four of them."""
    root = tmp_path_factory.mktemp("consolidation")
    ws = prepared_workspace(root / "ws", samples_dir)
    encoder, vocab = load_encoder(str(build_tiny_clip(root / "clip"))), load_vocabulary()
    tagging.run_tagging(ws, encoder, vocab, batch_size=4, rows_per_shard=2, workers=0, show_progress=False)
    identity = tagging.TagIdentity.of(encoder, vocab)
    first_four = set(ws.read_embeddings()[0][:4])
    tagging.consolidate(ws, vocab, identity, keep_ids=first_four)
    return ws, vocab, identity, first_four


def snapshot(ws: Workspace) -> tuple:
    """What a reader sees: each table read once, and checked to belong together."""
    ids, matrix, meta = ws.read_embeddings()
    tags = ws.read_tags()
    assert len(matrix) == len(ids) == meta["count"]
    assert list(dict.fromkeys(tags["image_id"])) == ids  # tags and embeddings of the same photos, same order
    ws.read_tag_failures()
    return ids, matrix.tobytes(), tags.to_json(), meta["count"]


def kill_after(monkeypatch, target, name: str) -> None:
    original = getattr(target, name)

    def write_then_die(*args, **kwargs):
        original(*args, **kwargs)
        raise Killed(name)

    monkeypatch.setattr(target, name, write_then_die)


WRITES = ["write_embedding_matrix", "write_tag_table", "write_parquet", "write_json", "write_failures"]


@pytest.mark.parametrize("write", WRITES)
def test_a_kill_after_any_write_before_the_manifest_leaves_the_old_set(tagged, write, monkeypatch, tmp_path):
    template, vocab, identity, first_four = tagged
    ws = Workspace(shutil.copytree(template.root, tmp_path / "ws"))
    before = snapshot(ws)
    assert sorted(before[0]) == sorted(first_four)
    kill_after(monkeypatch, consolidate_module, write)
    with pytest.raises(Killed):
        tagging.consolidate(ws, vocab, identity)
    monkeypatch.undo()
    assert snapshot(ws) == before  # the old set, whole, byte for byte
    assert tagging.consolidate(ws, vocab, identity) == 8  # and the next run publishes the new one
    after = snapshot(ws)
    assert len(after[0]) == 8 and set(first_four) <= set(after[0])
    generations = sorted(p.name for p in ws.tagged_dir.glob("g*"))
    assert len(generations) == 2, generations  # the current and the previous set; the killed one is gone


def test_a_kill_just_before_or_after_the_manifest(tagged, monkeypatch, tmp_path):
    template, vocab, identity, _ = tagged
    ws = Workspace(shutil.copytree(template.root, tmp_path / "ws"))
    before = snapshot(ws)

    def die_first(self, outputs, **summary):
        raise Killed("publish")

    monkeypatch.setattr(Workspace, "publish_tag_outputs", die_first)
    with pytest.raises(Killed):
        tagging.consolidate(ws, vocab, identity)
    monkeypatch.undo()
    assert snapshot(ws) == before

    # after the manifest's rename, before the old folders are pruned: the new set is whole already
    kill_after(monkeypatch, workspace_module, "write_json")
    with pytest.raises(Killed):
        tagging.consolidate(ws, vocab, identity)
    monkeypatch.undo()
    after = snapshot(ws)
    assert len(after[0]) == 8
    ids, matrix, _ = ws.read_embeddings()
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-3)


def test_a_workspace_from_before_generations_is_read_then_replaced(tagged, tmp_path):
    template, vocab, identity, _ = tagged
    ws = Workspace(shutil.copytree(template.root, tmp_path / "ws"))
    current = ws.tag_outputs()
    legacy = Workspace(tmp_path / "legacy")
    shutil.copytree(template.root, legacy.root, ignore=shutil.ignore_patterns("tagged"))
    for source, place in zip(current.files(), legacy.tag_outputs().files(), strict=True):
        place.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, place)  # the layout a workspace had before generations
    assert legacy.tag_outputs().generation is None and snapshot(legacy) == snapshot(ws)
    old_files = legacy.tag_outputs().files()
    assert tagging.consolidate(legacy, vocab, identity) == 8
    assert legacy.tag_outputs().generation is not None and not any(p.exists() for p in old_files)
