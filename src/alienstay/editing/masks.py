"""Masks for local edits: a mask file, a folder of masks, or a segmenter on the recipe's query.

Maskers are registered by name (``MASKERS``): ``clipseg`` (the `cpu` preset's) and ``owlv2-sam``
(OWLv2 boxes -> SAM masks, the `gpu` preset's; editing/owlsam.py). To add a segmenter: a class
with ``mask(image, query, threshold) -> (H, W) mask`` (bool, or 0/1 floats) built from its
models, and one ``MASKERS.register(MaskerSpec(name=..., ...))``; ``EditSettings(masker=NAME)``
(``--masker NAME``) then uses it, and a preset chooses it with a member whose ``entry`` names
it. Whatever made the mask, the editor pastes the original back outside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from alienstay.editing import owlsam
from alienstay.editing.base import editable, paste_outside_mask  # noqa: F401  (the maskers' API)
from alienstay.editing.recipes import Recipe
from alienstay.editing.registry import MaskerSpec
from alienstay.runtime.models import resolve
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import Weights

if TYPE_CHECKING:
    from alienstay.editing.base import EditRequest

CLIPSEG, OWLV2_SAM = "clipseg", "owlv2-sam"
DEFAULT_MASKER = CLIPSEG

MASKERS: Registry[MaskerSpec] = Registry("masker", group="alienstay.maskers")

MaskFor = Callable[[str, Image.Image, "EditRequest"], "np.ndarray | None"]


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask file (white = edit here) resized to ``size`` (width, height), as 0/1 floats."""
    mask = Image.open(path).convert("L").resize(size, Image.Resampling.NEAREST)
    return (np.asarray(mask) >= 128).astype(np.float32)


class ClipSegMasker:
    """A mask from a text query ("bed") with CLIPSeg."""

    def __init__(self, model: str) -> None:
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


# CLIPSeg is small: it stays on the CPU, so the cpu preset's masks do not depend on the device.
MASKERS.register(MaskerSpec(
    name=CLIPSEG, build=lambda models, device="cpu": ClipSegMasker(models["masker"]),
    weights={"masker": Weights("CIDAS/clipseg-rd64-refined", "Apache-2.0")}, threshold=("mask_threshold", 0.4),
    description="CLIPSeg: a text query ('bed') to a 352 px heat map, upsampled, thresholded and dilated",
))
MASKERS.register(MaskerSpec(
    name=OWLV2_SAM,
    build=lambda models, device="cpu": owlsam.OwlSamMasker(models[owlsam.DETECTOR_ROLE], models[owlsam.SEGMENTER_ROLE], device),
    weights={
        owlsam.DETECTOR_ROLE: Weights(owlsam.DEFAULT_DETECTOR, "Apache-2.0"),
        owlsam.SEGMENTER_ROLE: Weights(owlsam.DEFAULT_SEGMENTER, "Apache-2.0"),
        # the gpu preset's: the large OWLv2 and the huge SAM
        f"{owlsam.DETECTOR_ROLE}@large": Weights("google/owlv2-large-patch14-ensemble", "Apache-2.0"),
        f"{owlsam.SEGMENTER_ROLE}@huge": Weights("facebook/sam-vit-huge", "Apache-2.0"),
    },
    threshold=(owlsam.SCORE_SETTING, owlsam.DEFAULT_SCORE_MIN),
    description="OWLv2 boxes of the query above a score floor -> SAM masks at full resolution, their union",
))


def no_mask(image_id: str, image: Image.Image, request: "EditRequest") -> None:
    return None


def choose_masker(masker: str | None = None, preset: str | None = None,
                  overrides: Mapping[str, str | None] | None = None) -> tuple[str, dict[str, str]]:
    """(masker name, role -> model): the named masker, else the preset's (its `masker` member's
    entry), else CLIPSeg; each role's model from `overrides` (--mask-model is role "masker"), else
    the preset's member for that role when it serves this masker, else the masker's default."""
    from alienstay.runtime.presets import model_for

    head = model_for(preset, "masker") if preset else None
    name = masker or (head.entry if head is not None and head.entry else DEFAULT_MASKER)
    spec = MASKERS.get(name)
    models = {}
    for role, default in spec.models.items():
        member = model_for(preset, role) if preset else None
        serves = member is not None and member.fetchable and (member.entry or DEFAULT_MASKER) == name
        models[role] = (overrides or {}).get(role) or (member.model if serves else None) or default
    return name, models


def masker_models(masker: str, mask_model: str | None = None, models: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every role's model of `masker`: `models` where given, `mask_model` for the first role, else the defaults."""
    spec = MASKERS.get(masker)
    chosen = {**spec.models, **(models or {})}
    if mask_model:
        chosen[next(iter(spec.models))] = mask_model
    return chosen


def make_mask_for(recipe: Recipe, method: str, mask: Path | None, mask_model: str | None = None,
                  masker: str = DEFAULT_MASKER, models: Mapping[str, str] | None = None, device: str = "cpu") -> MaskFor:
    """Masks for a masked recipe: a file, a folder of <stem>.png, or the masker on the recipe's query."""
    query = recipe.settings_for(method).get("mask_query")
    if mask is None and not query:
        return no_mask
    if mask is not None:
        return _from_file(Path(mask))
    spec = MASKERS.get(masker)
    segmenter = spec.build(masker_models(masker, mask_model, models), device=device)
    setting, default = spec.threshold

    def from_query(image_id: str, image: Image.Image, request: "EditRequest") -> np.ndarray:
        return segmenter.mask(image, str(request.extra.get("mask_query", query)), float(request.extra.get(setting, default)))

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


def mask_identity(recipe: Recipe, method: str, mask: Path | None, mask_model: str | None = None,
                  masker: str = DEFAULT_MASKER, models: Mapping[str, str] | None = None) -> dict[str, object]:
    """What decides a masked edit's mask, so a new mask file, masker or mask model is a new edit."""
    if mask is not None:
        mask = Path(mask)
        stamp = mask.stat().st_mtime_ns if mask.exists() else "missing"
        return {"mask_file": f"{mask.resolve()}@{stamp}"}
    settings = recipe.settings_for(method)
    if not settings.get("mask_query"):
        return {}
    chosen = masker_models(masker, mask_model, models)
    identity: dict[str, object] = {"mask_model": chosen[next(iter(chosen))]}
    if masker == DEFAULT_MASKER:
        return identity  # CLIPSeg's identity is as it always was, so existing workspaces' edit keys stay valid
    # Another masker: its name, every model it loads and the floor it applies (the recipe's, else its default).
    setting, default = MASKERS.get(masker).threshold
    return {**identity, "masker": masker, "mask_models": chosen, setting: settings.get(setting, default)}
