"""The tag stage's reader: fixed batch blocks (resume equality on a GPU) and the lean uint8 transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from alienstay.encoders.hf import load_hf_encoder
from alienstay.testing.tiny_models import (
    build_tiny_clip,
    build_tiny_siglip,
    build_tiny_siglip2,
)


def test_batches_are_fixed_catalog_blocks_whatever_was_tagged_before():
    """A resumed run batches rows as the uninterrupted run did: on a GPU a row's bf16 result depends on its batch."""
    from alienstay.tagging.reader import fixed_blocks

    def blocks(positions: list[int], size: int) -> list[list[int]]:
        return [[positions[i] for i in block] for block in fixed_blocks(np.asarray(positions), size)]

    assert blocks(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert blocks(list(range(4, 10)), 4) == [[4, 5, 6, 7], [8, 9]]  # resumed after the first block
    assert blocks([0, 1, 3, 4, 5, 6, 7, 8], 4) == [[0, 1, 3], [4, 5, 6, 7], [8]]  # a gap never shifts the next block
    assert blocks([2, 3, 9], 4) == [[2, 3], [9]] and fixed_blocks(np.asarray([], dtype=int), 4) == []


@pytest.mark.parametrize("build", [build_tiny_clip, build_tiny_siglip], ids=["clip", "siglip"])
def test_lean_transform_gives_the_processors_pixels_from_uint8(build, tmp_path, samples_dir):
    """What the reader's processes hand over is uint8; normalised on the device it equals the PIL
    backend's output (the lean transform resizes as it does), and is within two uint8 levels of
    the torchvision backend's (the default where torchvision is installed: it rounds its own way)."""
    import transformers

    from alienstay.encoders.hf import ProcessorTransform
    from alienstay.encoders.lean_transform import LeanTransform

    folder = build(tmp_path / "model")
    encoder = load_hf_encoder(str(folder))
    pil_class = getattr(transformers, type(encoder.image_processor).__name__.removesuffix("Pil") + "Pil")
    lean, pil = encoder.image_transform(), ProcessorTransform(pil_class.from_pretrained(folder))
    default = ProcessorTransform(encoder.image_processor)
    assert isinstance(lean, LeanTransform) and lean.input_size == pil.input_size == 32  # the JPEG draft's side
    two_levels = 2 / 255 / min(lean.std) + 1e-5
    for path in sorted(samples_dir.glob("*.jpg"))[:3]:
        photo = Image.open(path).convert("RGB")
        pixels = lean(photo)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, 32, 32)
        normalised = lean.unpack(pixels[None])["pixel_values"][0]
        torch.testing.assert_close(normalised, pil(photo), atol=1e-5, rtol=0)
        torch.testing.assert_close(normalised, default(photo), atol=two_levels, rtol=0)


def test_a_processor_that_does_more_keeps_the_processor_transform(tmp_path):
    from alienstay.encoders.hf import NaFlexTransform
    from alienstay.encoders.lean_transform import lean_transform

    encoder = load_hf_encoder(str(build_tiny_siglip2(tmp_path / "siglip2")))
    assert isinstance(encoder.image_transform(), NaFlexTransform)  # patches, never the lean path
    assert lean_transform(encoder.image_processor) is None
