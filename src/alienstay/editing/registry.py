"""Registries: editors, maskers and control maps, each under a name with what it needs.

A stage never branches on a method or model string: it asks the registry for the entry and
the entry says which recipe fields it reads, which models it loads by default and how to
build it. Adding one is one ``register`` call (see README, "Extending alienstay"); the
built-in entries are in ``editing/methods.py``, ``editing/masks.py`` and ``editing/controls.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Spec = TypeVar("Spec")


class Registry(Generic[Spec]):
    """Named entries of one kind; an unknown name gives the known ones and where to add one."""

    def __init__(self, kind: str, where: str, builtins: str) -> None:
        self.kind, self.where, self.builtins = kind, where, builtins
        self._entries: dict[str, Spec] = {}

    @property
    def entries(self) -> dict[str, Spec]:
        # The built-in entries register themselves when their module is imported: import it on
        # first use, so a lookup never depends on which module happened to be imported before.
        importlib.import_module(self.builtins)
        return self._entries

    def register(self, name: str, spec: Spec) -> Spec:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice; pick another name.")
        self._entries[name] = spec
        return spec

    def get(self, name: str) -> Spec:
        if name not in self.entries:
            raise ValueError(f"unknown {self.kind} '{name}'; known: {self.names()} (add one in {self.where}).")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


@dataclass(frozen=True)
class EditorSpec:
    """An edit method: what a recipe must give it and how to build it.

    ``build(model, recipe, load)`` returns an ``Editor``; ``model`` is the user's ``--model`` or
    ``default_models["pipeline"]``. Builders import their heavy libraries themselves, so the
    registry (and recipe validation) loads without torch.
    """

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
    """A segmenter that turns a text query into a mask: ``build(model)`` has ``.mask(image, query, threshold)``."""

    build: Callable[[str], Any]
    default_model: str
    description: str = ""


@dataclass(frozen=True)
class ControlSpec:
    """A control map computed from the photo itself, and the ControlNet trained on it."""

    compute: Callable[..., Any]  # PIL image -> PIL image
    default_controlnet: str
    description: str = ""


EDITORS: Registry[EditorSpec] = Registry("edit method", "src/alienstay/editing/methods.py", "alienstay.editing.methods")
MASKERS: Registry[MaskerSpec] = Registry("masker", "src/alienstay/editing/masks.py", "alienstay.editing.masks")
CONTROL_MAPS: Registry[ControlSpec] = Registry("control map", "src/alienstay/editing/controls.py", "alienstay.editing.controls")
