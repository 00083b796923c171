"""Masks for local edits: a mask file, a folder of masks, or a segmenter on the recipe's query.

Maskers are registered by name (``MASKERS``); CLIPSeg is the built-in one. To add a
segmenter: a class with ``mask(image, query, threshold) -> 0/1 float array`` built from a
model id, and one ``MASKERS.register(MaskerSpec(name=..., ...))``; ``EditSettings(masker=NAME)``
then uses it. Whatever made the mask, the editor pastes the original back outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from alienstay.editing.recipes import Recipe
from alienstay.editing.registry import MaskerSpec
from alienstay.models import resolve
from alienstay.registry import Registry

if TYPE_CHECKING:
    from alienstay.editing.base import EditRequest

CLIPSEG = "clipseg"
DEFAULT_MASKER = CLIPSEG
DEFAULT_MASK_MODEL = "CIDAS/clipseg-rd64-refined"

MASKERS: Registry[MaskerSpec] = Registry("masker")

MaskFor = Callable[[str, Image.Image, "EditRequest"], "np.ndarray | None"]


def paste_outside_mask(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> Image.Image:
    """The original everywhere the mask is 0: the rest of the photo is untouched by construction."""
    keep = (np.asarray(mask, dtype=np.float32) >= 0.5)[..., None]
    merged = np.where(keep, np.asarray(edited.convert("RGB")), np.asarray(original.convert("RGB")))
    return Image.fromarray(merged.astype(np.uint8))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask file (white = edit here) resized to ``size`` (width, height), as 0/1 floats."""
    mask = Image.open(path).convert("L").resize(size, Image.Resampling.NEAREST)
    return (np.asarray(mask) >= 128).astype(np.float32)


class ClipSegMasker:
    """A mask from a text query ("bed") with CLIPSeg."""

    def __init__(self, model: str = DEFAULT_MASK_MODEL) -> None:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        resolved = resolve(model)
        self.model_id = resolved.model_id
        self.processor = CLIPSegProcessor.from_pretrained(resolved.path)
        self.model = CLIPSegForImageSegmentation.from_pretrained(resolved.path).eval()

    def mask(self, image: Image.Image, query: str, threshold: float = 0.4) -> np.ndarray:
        import cv2
        import torch

        inputs = self.processor(text=[query], images=[image.convert("RGB")], return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = self.model(**inputs).logits
        probs = torch.sigmoid(logits.reshape(1, 1, *logits.shape[-2:]))
        probs = torch.nn.functional.interpolate(probs, size=(image.height, image.width), mode="bilinear")[0, 0]
        mask = (probs.numpy() >= threshold).astype(np.uint8)
        # A little margin so the addition can sit on the object's edge without a seam.
        return cv2.dilate(mask, np.ones((7, 7), np.uint8)).astype(np.float32)


MASKERS.register(MaskerSpec(
    name=CLIPSEG, build=ClipSegMasker, default_model=DEFAULT_MASK_MODEL,
    description="CLIPSeg: a text query ('bed') to a mask, thresholded and dilated",
))


def no_mask(image_id: str, image: Image.Image, request: "EditRequest") -> None:
    return None


def make_mask_for(recipe: Recipe, method: str, mask: Path | None, mask_model: str | None = None,
                  masker: str = DEFAULT_MASKER) -> MaskFor:
    """Masks for a masked recipe: a file, a folder of <stem>.png, or the masker on the recipe's query."""
    query = recipe.settings_for(method).get("mask_query")
    if mask is None and not query:
        return no_mask
    if mask is not None:
        return _from_file(Path(mask))
    spec = MASKERS.get(masker)
    segmenter = spec.build(mask_model or spec.default_model)

    def from_query(image_id: str, image: Image.Image, request: "EditRequest") -> np.ndarray:
        return segmenter.mask(image, str(request.extra.get("mask_query", query)), float(request.extra.get("mask_threshold", 0.4)))

    return from_query


def _from_file(mask: Path) -> MaskFor:
    if not mask.exists():
        raise ValueError(f"mask {mask} does not exist: pass a mask image or a folder of <image stem>.png masks.")

    def from_file(image_id: str, image: Image.Image, request: "EditRequest") -> np.ndarray:
        path = mask / f"{Path(image_id).stem}.png" if mask.is_dir() else mask
        if not path.is_file():
            raise ValueError(f"no mask for {image_id}: expected {path}.")
        return read_mask(path, image.size)

    return from_file


def mask_identity(recipe: Recipe, method: str, mask: Path | None, mask_model: str | None,
                  masker: str = DEFAULT_MASKER) -> dict[str, str]:
    """What decides a masked edit's mask, so a new mask file or mask model is a new edit."""
    if mask is not None:
        mask = Path(mask)
        stamp = mask.stat().st_mtime_ns if mask.exists() else "missing"
        return {"mask_file": f"{mask.resolve()}@{stamp}"}
    if recipe.settings_for(method).get("mask_query"):
        identity = {"mask_model": mask_model or MASKERS.get(masker).default_model}
        # The default masker is left out so the edit keys of existing workspaces stay valid.
        return identity if masker == DEFAULT_MASKER else {**identity, "masker": masker}
    return {}
