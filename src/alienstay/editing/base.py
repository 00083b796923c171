"""What every edit method shares: the request, the output, the Editor protocol and sizes.

Torch-free, so recipes, the registry and the classical grade load without a diffusion stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

CLASSICAL = "classical"  # the edit method that is a numpy/OpenCV grade, NOT diffusion
MASK_ON = 0.5  # a mask pixel at or above this may change; below it the original stays


def editable(mask: np.ndarray) -> np.ndarray:
    """The pixels a mask lets an edit change (bool), whatever the mask's dtype: 0/1, bool or soft."""
    return np.asarray(mask, dtype=np.float32) >= MASK_ON


def paste_outside_mask(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> Image.Image:
    """The original everywhere the mask is 0: the rest of the photo is untouched by construction."""
    keep = editable(mask)[..., None]
    merged = np.where(keep, np.asarray(edited.convert("RGB")), np.asarray(original.convert("RGB")))
    return Image.fromarray(merged.astype(np.uint8))


def mask_is_empty(mask: np.ndarray) -> bool:
    """A mask that lets nothing change: the edit is not run (runner) and is judged not applied (guard)."""
    return not editable(mask).any()


@dataclass(frozen=True)
class Value:
    name: str
    instruction: str | None = None
    prompt: str | None = None
    grade: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Speed:
    """Options that trade quality or memory for speed on small machines."""

    lcm_lora: str | None = None  # hub id or folder of an LCM-LoRA: few-step sampling with LCMScheduler
    attention_slicing: bool = False  # less peak memory, a little slower
    cpu_offload: bool = False  # keep sub-models on the CPU until used (needs an accelerator)
    device: str = "cpu"  # a concrete device (alienstay.runtime.devices.select_device), not auto
    dtype: str = "float32"  # float32 | float16 | bfloat16


@dataclass(frozen=True)
class EditRequest:
    """One edit of one photo: everything that determines the output (and its resume key)."""

    value: Value
    seed: int
    steps: int
    size: int
    guidance_scale: float | None = None
    image_guidance_scale: float | None = None
    strength: float | None = None
    negative_prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # control map kind, conditioning scale, ...


@dataclass
class EditOutput:
    image: Image.Image
    mask: np.ndarray | None = None  # 1 where the edit was allowed; None for whole-image edits
    control_image: Image.Image | None = None


class Editor(Protocol):
    method: str
    model_id: str  # every model that made the output, joined with " + "
    is_diffusion: bool

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput: ...


def fit_size(image: Image.Image, size: int, multiple: int = 8) -> Image.Image:
    """Longer side = ``size``, both sides a multiple of 8 (the VAE's downscale factor)."""
    scale = size / max(image.size)
    width = max(multiple, int(image.width * scale) // multiple * multiple)
    height = max(multiple, int(image.height * scale) // multiple * multiple)
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
