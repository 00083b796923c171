"""What an editor, a masker and a control map register with (``alienstay.runtime.registry.Registry``).

A stage never branches on a method or model string: it asks the registry for the entry and
the entry says which recipe fields it reads, which models it loads by default and how to
build it. Each registry lives beside its built-in entries, so a lookup always sees them:
``EDITORS`` in ``editing/methods.py``, ``MASKERS`` in ``editing/masks.py``, ``CONTROL_MAPS``
in ``editing/controls.py``. Adding one is one ``register`` call (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EditorSpec:
    """An edit method: what a recipe must give it and how to build it.

    ``build(model, recipe, load)`` returns an ``Editor``; ``model`` is the user's ``--model`` or
    ``default_models["pipeline"]``. Builders import their heavy libraries themselves, so the
    registry (and recipe validation) loads without torch.
    """

    name: str  # what recipes' `methods:` and `--method` say
    build: Callable[..., Any]
    reads: str  # the recipe value field it uses: instruction | prompt | grade
    settings: tuple[str, ...]  # the per-method recipe settings it understands
    default_models: dict[str, str] = field(default_factory=dict)  # role -> hub id
    is_diffusion: bool = True
    needs_mask: bool = False
    licence: str = ""  # the default weights' licence, where it restricts use
    description: str = ""


@dataclass(frozen=True)
class MaskerSpec:
    """A segmenter that turns a text query into a mask: ``build(models, device)`` has ``.mask(image, query, threshold)``.

    ``models`` maps a preset role to its default hub id, so a masker of two models (a detector
    and a segmenter) names both and a preset's members for those roles replace them; the first
    role is the one ``--mask-model`` replaces. ``threshold`` is the recipe setting the masker
    reads and its default: a probability for CLIPSeg, a box score floor for a detector.
    """

    name: str  # what EditSettings(masker=...) and a preset member's `entry` say
    build: Callable[..., Any]
    models: dict[str, str]  # preset role -> default hub id ("masker" first)
    threshold: tuple[str, float] = ("mask_threshold", 0.4)
    licence: str = ""
    description: str = ""

    @property
    def default_model(self) -> str:
        """The hub id of the first role: what ``--mask-model`` replaces."""
        return next(iter(self.models.values()))


@dataclass(frozen=True)
class ControlSpec:
    """A control map computed from the photo itself, and the ControlNet trained on it."""

    name: str  # what `--control` and a recipe's `control:` say
    compute: Callable[..., Any]  # PIL image -> PIL image
    default_controlnet: str
    description: str = ""
