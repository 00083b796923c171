"""Encoders and captioners are registry entries: stages look names up, never model-id strings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from alienstay.captioning.captioners import CAPTIONERS, load_captioner
from alienstay.encoders import (
    ENCODERS,
    EncoderEntry,
    encoder_entry,
    entry_for,
    load_encoder,
    reload_argument,
)
from alienstay.runtime import devices
from alienstay.runtime.registry import Registry
from alienstay.testing.tiny_models import build_tiny_blip, build_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


class StubEncoder:
    """The smallest ImageTextEncoder: a newcomer's encoder needs no more than this."""

    model_id, revision, logit_scale = "stub-encoder", "1", 10.0

    def image_transform(self):
        return lambda image: torch.zeros(3, 4, 4)

    def encode_images(self, pixels):
        return torch.nn.functional.normalize(torch.ones(len(pixels), 2), dim=1)

    def encode_texts(self, texts):
        return torch.nn.functional.normalize(torch.ones(len(texts), 2), dim=1)


def test_the_built_in_encoders_and_what_they_declare():
    # every entry's declaration: tests/test_registry_contract.py; here what the stages rely on
    hf, offline = ENCODERS.get("hf"), ENCODERS.get("offline")
    assert hf.default_model == hf.weights["tagger"].model and hf.dtypes == devices.DTYPES
    assert hf.direction_decides and "guard" in hf.roles
    assert not offline.direction_decides and not offline.takes_model and offline.dtypes == ("float32",)
    assert offline.default_model is None  # packaged weights: nothing for --model to name
    with pytest.raises(ValueError, match=f"unknown encoder 'nope': use one of {', '.join(ENCODERS.names())}"):
        ENCODERS.get("nope")


def test_a_model_argument_names_an_entry_or_goes_to_the_default_kind(tmp_path):
    assert entry_for("offline") == (ENCODERS.get("offline"), None)
    assert entry_for("hf") == (ENCODERS.get("hf"), ENCODERS.get("hf").default_model)
    assert entry_for("hf:google/siglip-base-patch16-224") == (ENCODERS.get("hf"), "google/siglip-base-patch16-224")
    assert entry_for("org/some-clip") == (ENCODERS.get("hf"), "org/some-clip")
    folder = tmp_path / "offline:copy"  # a folder whose name looks like NAME:MODEL is still a folder
    folder.mkdir()
    assert entry_for(str(folder)) == (ENCODERS.get("hf"), str(folder))


def test_one_dtype_list_and_a_refusal_before_any_weight_is_loaded():
    from alienstay.encoders import hf

    assert hf.DTYPES is devices.DTYPES
    with pytest.raises(ValueError, match="use one of float32, bfloat16, int8"):
        load_encoder("offline", dtype="float8")
    with pytest.raises(ValueError, match="runs in float32, bfloat16, int8 only"):
        load_encoder("offline", dtype="float16")  # a pipeline dtype, not one an encoder runs in
    with pytest.raises(ValueError, match="the offline encoder runs in float32 only"):
        load_encoder("offline", dtype="bfloat16")  # refused by the entry: the offline packages are not touched


def test_hf_encoders_are_found_again_by_their_entry(tiny_clip, monkeypatch):
    encoder = load_encoder(f"hf:{tiny_clip}")
    assert encoder.encoder_name == "hf" and encoder_entry(encoder) is ENCODERS.get("hf")
    monkeypatch.chdir(tiny_clip.parent)
    relative = load_encoder(tiny_clip.name)
    assert reload_argument(relative) == str(tiny_clip.resolve())  # a Ray worker elsewhere loads the same folder
    offline_like = SimpleNamespace(model_id="offline:x+y", revision="v", encoder_name="offline")
    assert reload_argument(offline_like) == "offline"


def test_adding_an_encoder_is_one_entry(monkeypatch):
    from alienstay.editing.faithfulness import load_guard

    entry = EncoderEntry(name="stub", load=lambda model, device, dtype: StubEncoder(), takes_model=False,
                         direction_decides=False, roles=("tagger", "guard"), description="a test stub")
    monkeypatch.setitem(ENCODERS._entries, "stub", entry)
    encoder = load_encoder("stub")
    assert isinstance(encoder, StubEncoder) and encoder_entry(encoder) is entry
    assert reload_argument(encoder) == "stub"
    guard = load_guard(clip="stub")  # the guard asks the entry, not the model id, whether the direction decides
    assert isinstance(guard.encoder, StubEncoder)
    assert guard.direction_decides is False
    deciding = EncoderEntry(name="stub2", load=lambda model, device, dtype: StubEncoder(), takes_model=False,
                            description="a test stub whose direction decides")
    monkeypatch.setitem(ENCODERS._entries, "stub2", deciding)
    assert load_guard(clip="stub2").direction_decides is True


def test_registry_refuses_a_name_twice():
    registry: Registry = Registry("thing")
    registry.register(SimpleNamespace(name="a"))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(SimpleNamespace(name="a"))
    assert "a" in registry and registry.names() == ["a"]


def test_captioners_register_the_same_way(tmp_path):
    blip = CAPTIONERS.get("blip")
    assert blip.default_model == blip.weights["captioner"].model and blip.roles == ("captioner",)
    folder = build_tiny_blip(tmp_path / "tiny-blip")
    by_name, by_folder = load_captioner(f"blip:{folder}"), load_captioner(str(folder))
    assert by_name.resolved.model_id == by_folder.resolved.model_id == str(folder)
    with pytest.raises(ValueError, match="the blip captioner runs in float32, float16, bfloat16 only"):
        load_captioner(str(folder), dtype="int8")
