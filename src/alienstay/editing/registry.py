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

from alienstay.runtime.weights import Weights, defaults


@dataclass(frozen=True)
class EditorSpec:
    """An edit method: what a recipe must give it and how to build it.

    ``build(model, recipe, load)`` returns an ``Editor``; ``model`` is the user's ``--model`` or
    ``default_models["pipeline"]`` (from ``weights``, the entry's one statement of its models). Builders import their heavy libraries themselves, so the
    registry (and recipe validation) loads without torch.
    """

    name: str  # what recipes' `methods:` and `--method` say
    build: Callable[..., Any]
    reads: str  # the recipe value field it uses: instruction | prompt | grade
    settings: tuple[str, ...]  # the per-method recipe settings it understands
    weights: dict[str, Weights] = field(default_factory=dict)  # role ("pipeline") -> its weights
    is_diffusion: bool = True
    needs_mask: bool = False
    description: str = ""

    @property
    def default_models(self) -> dict[str, str]:
        """role -> the hub id loaded when `--model` is not given (packaged weights left out)."""
        return {role: w.model for role, w in defaults(self.weights).items() if w.fetchable}

    @property
    def licence(self) -> str:
        return " + ".join(dict.fromkeys(w.licence for w in defaults(self.weights).values()))


@dataclass(frozen=True)
class MaskerSpec:
    """A segmenter that turns a text query into a mask: ``build(models, device)`` has ``.mask(image, query, threshold)``.

    ``weights`` maps a preset role to its default weights, so a masker of two models (a detector
    and a segmenter) names both and a preset's members for those roles replace them; the first
    role is the one ``--mask-model`` replaces; "ROLE@NAME" keys are larger checkpoints it loads. ``threshold`` is the recipe setting the masker
    reads and its default: a probability for CLIPSeg, a box score floor for a detector.
    """

    name: str  # what EditSettings(masker=...) and a preset member's `entry` say
    build: Callable[..., Any]
    weights: dict[str, Weights]  # preset role -> default weights ("masker" first)
    threshold: tuple[str, float] = ("mask_threshold", 0.4)
    description: str = ""

    @property
    def models(self) -> dict[str, str]:
        """preset role -> the default hub id."""
        return {role: w.model for role, w in defaults(self.weights).items()}

    @property
    def licence(self) -> str:
        return " + ".join(dict.fromkeys(w.licence for w in defaults(self.weights).values()))

    @property
    def default_model(self) -> str:
        """The hub id of the first role: what ``--mask-model`` replaces."""
        return next(iter(self.models.values()))


@dataclass(frozen=True)
class ControlSpec:
    """A control map computed from the photo itself, and the ControlNet trained on it."""

    name: str  # what `--control` and a recipe's `control:` say
    compute: Callable[..., Any]  # PIL image -> PIL image
    weights: dict[str, Weights]  # "controlnet" -> the ControlNet trained on this kind of map
    description: str = ""

    @property
    def default_controlnet(self) -> str:
        return self.weights["controlnet"].model
