"""The faithfulness guard's structure models (``STRUCTURE_MODELS``): self-similarity features of a photo.

The guard compares a photo and its edit by the self-similarity of a vision transformer's patch
features (DINOv2 by default; editing/faithfulness.py). An entry says how to load the model and
processor and which weights it loads; a new one is one ``STRUCTURE_MODELS.register(...)``.
``--dino NAME`` loads an entry's default weights, ``NAME:MODEL`` or a bare hub id / folder
the default entry's loader (any transformers ``AutoModel`` with hidden states).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import Weights, default_model


@dataclass(frozen=True)
class StructureModelSpec:
    name: str
    load: Callable[[str, str], tuple[Any, Any]]  # (model id or folder, device) -> (model, image processor)
    description: str
    weights: dict[str, Weights] = field(default_factory=dict)  # "guard:dino" -> its default weights

    @property
    def default_model(self) -> str | None:
        return default_model(self.weights)


STRUCTURE_MODELS: Registry[StructureModelSpec] = Registry("structure model", group="alienstay.structure_models")
DEFAULT_STRUCTURE = "dinov2"


def load_auto_model(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """Any transformers vision model through the resolver, in eval mode on `device`."""
    from transformers import AutoImageProcessor, AutoModel

    from alienstay.runtime.models import resolve

    resolved = resolve(model)
    return AutoModel.from_pretrained(resolved.path).eval().to(device), AutoImageProcessor.from_pretrained(resolved.path)


STRUCTURE_MODELS.register(StructureModelSpec(
    name=DEFAULT_STRUCTURE, load=load_auto_model,
    description="DINOv2 patch features (transformers AutoModel): a hub id or a folder in the hub's layout",
    weights={"guard:dino": Weights("facebook/dinov2-small", "Apache-2.0"),
             "guard:dino@base": Weights("facebook/dinov2-base", "Apache-2.0")},  # the gpu preset's
))


def load_structure_model(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """`NAME`, `NAME:MODEL`, or a hub id / folder -> (model, image processor)."""
    entry, model_id = STRUCTURE_MODELS.lookup(model, DEFAULT_STRUCTURE)
    return entry.load(model_id or entry.default_model, device)
