"""Image-text encoders: anything that puts images and words in one space.

The tag stage, analysis, clustering and search only ever see this interface, so a hub
model (CLIP, SigLIP) and the offline ConSE tagger are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from PIL import Image


@runtime_checkable
class ImageTextEncoder(Protocol):
    model_id: str  # what ran: a hub id, a local folder, or "offline:<image model>+<text model>"
    revision: str  # hub commit, package version, or "local"
    logit_scale: float  # temperature for the softmax within a facet

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable function RGB image -> pixel tensor, run inside DataLoader workers."""
        ...

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """A batch of transformed images -> (B, D) L2-normalised float32 embeddings."""
        ...

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Prompts -> (N, D) L2-normalised float32 embeddings in the same space as images."""
        ...


DEFAULT_HUB_MODEL = "openai/clip-vit-base-patch32"
OFFLINE = "offline"
DTYPES = ("float32", "bfloat16", "int8")
AUTO = "auto"


def load_encoder(model: str = AUTO, device: str = "cpu", dtype: str = "float32") -> ImageTextEncoder:
    """`offline`, `auto` (the hub default when it can be had, else offline), a hub id or a folder."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    if model == OFFLINE:
        from alienstay.encoders.offline import load_offline_encoder

        if dtype != "float32":
            raise ValueError(f"--dtype {dtype}: the offline tagger runs in float32 (ONNX Runtime); drop --dtype.")

        return load_offline_encoder(device=device)
    if model == AUTO:
        return _load_auto(device, dtype)
    from alienstay.encoders.hf import load_hf_encoder

    return load_hf_encoder(model, device=device, dtype=dtype)


def _load_auto(device: str, dtype: str) -> ImageTextEncoder:
    import logging

    from alienstay.models import ModelUnavailable

    log = logging.getLogger("alienstay")
    try:
        from alienstay.encoders.hf import load_hf_encoder

        encoder = load_hf_encoder(DEFAULT_HUB_MODEL, device=device, dtype=dtype)
    except ModelUnavailable as error:
        from alienstay.encoders.offline import load_offline_encoder

        encoder = load_offline_encoder(device=device)
        if dtype != "float32":
            log.warning("model auto: the offline tagger runs in float32; --dtype %s is not applied.", dtype)
        log.warning(
            "model auto: %s could not be had (%s). RUNNING THE OFFLINE TAGGER %s instead: "
            "weaker than CLIP; see README.",
            DEFAULT_HUB_MODEL,
            str(error).splitlines()[0],
            encoder.model_id,
        )
        return encoder
    log.warning("model auto: running %s from the hub cache", encoder.model_id)
    return encoder
