"""A local model folder is named by a hash of its weights, so a worker with other weights is refused."""

from __future__ import annotations

import shutil

import pytest

from alienstay.encoders import load_encoder
from alienstay.runtime.models import folder_revision, resolve
from alienstay.tagging import TagIdentity
from alienstay.tagging.ray_engine import EncoderMismatch, check_same_model
from alienstay.vocabulary.words import load_vocabulary
from alienstay.testing.tiny_models import build_tiny_clip


def test_a_folder_revision_follows_its_weights_not_its_path(tmp_path):
    first = build_tiny_clip(tmp_path / "a", seed=0)
    copy = shutil.copytree(first, tmp_path / "copy")
    (copy / "README.md").write_text("notes beside the weights do not change them")
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.json").write_text("{}")
    other = build_tiny_clip(tmp_path / "b", seed=1)
    revision = resolve(str(first)).revision
    assert revision.startswith("local-") and len(revision) == len("local-") + 16
    assert resolve(str(copy)).revision == revision  # another node's copy of the same weights
    assert resolve(str(other)).revision != revision


def test_other_weights_at_the_drivers_path_are_refused(tmp_path):
    folder = build_tiny_clip(tmp_path / "clip", seed=0)
    vocab = load_vocabulary()
    driver = TagIdentity.of(load_encoder(str(folder)), vocab)
    check_same_model(load_encoder(str(folder)), driver)  # the same weights pass
    shutil.rmtree(folder)
    build_tiny_clip(folder, seed=1)  # a node whose folder holds other weights under the same path
    assert folder_revision(folder) != driver.model_revision
    with pytest.raises(EncoderMismatch, match="same snapshot"):
        check_same_model(load_encoder(str(folder)), driver)
