"""The image transform of the tag stage's reader, without the image processor's per-photo cost.

On an H200 the tag stage ran CLIP ViT-B/32 at 991 photos/s from JPEG files against 26,720/s
from pixels ready on the GPU (runs/bench/gpu.json): the 16 decode processes were the limit,
each photo costing ~16 ms of a core, mostly the image processor's own per-call work and
float32 pixels (4 bytes a value) sent between processes.

:class:`LeanTransform` does what a CLIP / SigLIP processor does, in the same order and with
the same PIL resampling as its PIL backend: resize (shortest edge, or to a fixed size), centre
crop, then rescale and normalise. The reader's processes stop after the crop and hand over
uint8 pixels; :meth:`LeanTransform.unpack` rescales and normalises the stacked batch on the
encoder's device. Processors of other kinds keep :class:`~alienstay.encoders.hf.ProcessorTransform`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

# Processor classes whose whole job is resize -> centre crop -> rescale -> normalise (both of
# transformers' backends of each): one entry a family.
LEAN_PROCESSORS = frozenset({"CLIPImageProcessor", "CLIPImageProcessorPil", "SiglipImageProcessor",
                             "SiglipImageProcessorPil"})  # fmt: skip


@dataclass(frozen=True)
class LeanTransform:
    """RGB image -> (3, H, W) uint8 pixels, resized and cropped as the model's processor does."""

    shortest_edge: int | None  # resize so the short side is this (CLIP), or
    size: tuple[int, int] | None  # to exactly (height, width) (SigLIP)
    crop: tuple[int, int] | None  # centre crop (height, width), if any
    resample: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_size(self) -> int:
        """The side the model sees; the reader lets the JPEG decoder scale down towards it."""
        sides = [*(self.size or ()), *(self.crop or ()), self.shortest_edge or 0]
        return max(sides)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize, as transformers computes it for the processor."""
        if self.size:
            return self.size[1], self.size[0]
        from transformers.image_transforms import get_resize_output_image_size

        out_h, out_w = get_resize_output_image_size(
            np.zeros((height, width, 1), np.uint8), size=self.shortest_edge, default_to_square=False,
            input_data_format="channels_last",
        )  # fmt: skip
        return out_w, out_h

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB")
        image = image.resize(self.output_size(*image.size), resample=self.resample)
        if self.crop:
            (crop_h, crop_w), (width, height) = self.crop, image.size
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            image = image.crop((left, top, left + crop_w, top + crop_h))
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)

    def unpack(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """A stacked uint8 batch -> normalised float pixels, on the batch's device (float batches pass as they are)."""
        if pixels.dtype != torch.uint8:
            return {"pixel_values": pixels}
        mean = torch.tensor(self.mean, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, -1, 1, 1)
        return {"pixel_values": (pixels.float() * self.scale - mean) / std}


def size_entries(size: Any) -> dict[str, int]:
    """A processor's size or crop_size as a plain dict: transformers 5 keeps a SizeDict (not a dict)."""
    try:
        return {key: value for key, value in dict(size or {}).items() if isinstance(value, int)}
    except (TypeError, ValueError):
        return {}


def _pair(size: Any, *keys: str) -> tuple[int, int] | None:
    entries = size_entries(size)
    return (entries[keys[0]], entries[keys[1]]) if all(k in entries for k in keys) else None


def lean_transform(processor: Any) -> LeanTransform | None:
    """The lean transform doing what `processor` does, or None where it does anything else."""
    if type(processor).__name__ not in LEAN_PROCESSORS:
        return None
    flag = lambda name: bool(getattr(processor, name, False))  # noqa: E731
    if not (flag("do_resize") and flag("do_rescale") and flag("do_normalize")):
        return None
    size = getattr(processor, "size", None)
    shortest = size_entries(size).get("shortest_edge")
    exact = _pair(size, "height", "width")
    crop = _pair(getattr(processor, "crop_size", None), "height", "width") if flag("do_center_crop") else None
    if (shortest is None) == (exact is None) or (flag("do_center_crop") and crop is None):
        return None
    if crop and shortest and min(crop) > shortest:
        return None  # the processor would pad: not this transform's job
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    if mean is None or std is None:
        return None
    return LeanTransform(
        shortest_edge=shortest, size=exact, crop=crop, resample=int(getattr(processor, "resample", Image.Resampling.BICUBIC)),
        scale=float(processor.rescale_factor), mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
    )  # fmt: skip
