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
