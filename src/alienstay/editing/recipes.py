"""Restyling recipes: one parameter, its values, the method that suits it and the guard's limits.

The packaged file is ``recipes.yaml`` beside this module; users pass their own with
``--recipes PATH``. Every file is validated here, so a typo gives a message naming the
recipe, the field and what is allowed, not a KeyError deep inside a diffusion run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alienstay.editing.base import CLASSICAL, Value  # noqa: F401  (callers import them here)
from alienstay.editing.methods import EDITORS, setting_names
from alienstay.vocabulary.words import (
    PERSONA_IDS,  # the one persona-id list (docs/aliens.md)
)

PACKAGED_RECIPES = Path(__file__).with_name("recipes.yaml")

# The edit methods, their recipe field and their settings come from the editor registry
# (editing/methods.py): a new method is one entry there, and recipes may then name it.
THRESHOLD_NAMES = (
    "change_min",
    "clip_direction_min",
    "structure_min",
    "edge_min",
    "dino_max",
    "lpips_max",
    "outside_mask_max",
    "mask_area_max",
)
GRADE_NAMES = ("exposure", "gamma", "temperature", "saturation", "keep_lights", "glow")


class RecipeError(ValueError):
    """A recipe file does not follow the schema; the message names the place and the fix."""


@dataclass(frozen=True)
class Recipe:
    name: str
    parameter: str
    description: str
    persona: tuple[str, ...]
    method: str  # the method that suits it
    methods: tuple[str, ...]  # every method allowed
    source: str  # what the photo shows before: the source text of the CLIP direction
    values: tuple[Value, ...]
    settings: dict[str, dict[str, Any]]  # per method
    thresholds: dict[str, float]
    negative_prompt: str = ""

    def value(self, name: str) -> Value:
        for value in self.values:
            if value.name == name:
                return value
        raise RecipeError(f"recipe '{self.name}' has no value '{name}'; it has {self.value_names}.")

    @property
    def value_names(self) -> list[str]:
        return [v.name for v in self.values]

    def settings_for(self, method: str) -> dict[str, Any]:
        return dict(self.settings.get(method, {}))

    def check_method(self, method: str) -> None:
        if method not in self.methods:
            grade = method in EDITORS and not EDITORS.get(method).is_diffusion
            honest = " (a colour grade cannot honestly make this change)" if grade else ""
            raise RecipeError(
                f"recipe '{self.name}' does not allow method '{method}'{honest}; "
                f"use one of {list(self.methods)} (default {self.method})."
            )


@dataclass(frozen=True)
class RecipeBook:
    recipes: dict[str, Recipe]
    path: Path

    def get(self, name: str) -> Recipe:
        """A recipe by its name, or by one of its values (``--recipe night`` finds time_of_day)."""
        if name in self.recipes:
            return self.recipes[name]
        owners = [r for r in self.recipes.values() if name in r.value_names]
        if len(owners) == 1:
            return owners[0]
        known = ", ".join(sorted(self.recipes))
        raise RecipeError(f"no recipe named '{name}' in {self.path}; known recipes: {known}.")


def load_recipes(path: Path | None = None) -> RecipeBook:
    """Read and validate a recipe file (the packaged one when ``path`` is None)."""
    path = Path(path) if path else PACKAGED_RECIPES
    if not path.is_file():
        raise RecipeError(f"recipe file {path} does not exist; pass a YAML file like {PACKAGED_RECIPES}.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe file {path} is not valid YAML: {error}") from error
    return parse_recipes(raw, path)


def parse_recipes(raw: Any, path: Path) -> RecipeBook:
    where = str(path)
    _require(isinstance(raw, dict) and isinstance(raw.get("recipes"), dict) and raw["recipes"],
             f"{where}: expected a mapping with a non-empty `recipes:` section.")
    defaults = raw.get("defaults") or {}
    _require(isinstance(defaults, dict), f"{where}: `defaults` must be a mapping.")
    default_thresholds = _thresholds(defaults.get("thresholds") or {}, f"{where}: defaults.thresholds")
    negative = str(defaults.get("negative_prompt", ""))
    recipes = {
        str(name): _recipe(str(name), body, default_thresholds, negative, f"{where}: recipe '{name}'")
        for name, body in raw["recipes"].items()
    }
    return RecipeBook(recipes=recipes, path=path)


def _recipe(name: str, body: Any, default_thresholds: dict, negative: str, where: str) -> Recipe:
    _require(isinstance(body, dict), f"{where} must be a mapping.")
    for key in ("parameter", "method", "values"):
        _require(key in body, f"{where} is missing `{key}`.")
    methods = tuple(body.get("methods") or [body["method"]])
    for method in methods:
        _require(method in EDITORS, f"{where}: unknown method '{method}'; known: {EDITORS.names()}.")
    _require(body["method"] in methods, f"{where}: `method` {body['method']} must be one of `methods` {list(methods)}.")
    persona = tuple(str(p) for p in body.get("persona") or [])
    for pid in persona:
        _require(pid in PERSONA_IDS, f"{where}: persona id '{pid}' is not one of {sorted(PERSONA_IDS)} (docs/aliens.md).")
    values_raw = body["values"]
    _require(isinstance(values_raw, dict) and len(values_raw) >= 1,
             f"{where}: `values` must map each value name to its instruction/prompt/grade.")
    values = tuple(_value(str(v), spec, methods, f"{where} value '{v}'") for v, spec in values_raw.items())
    settings = body.get("settings") or {}
    _require(isinstance(settings, dict), f"{where}: `settings` must map a method to its defaults.")
    for method, spec in settings.items():
        _require(method in methods, f"{where}: settings for method '{method}', which is not in `methods`.")
        understood = EDITORS.get(method).settings
        unknown = set(spec or {}) - set(understood)
        _require(not unknown, f"{where}: settings {sorted(unknown)} are not read by {method}; it reads {list(understood)}"
                              f" (all settings: {list(setting_names())}).")
    thresholds = {**default_thresholds, **_thresholds(body.get("thresholds") or {}, f"{where}: thresholds")}
    missing = set(THRESHOLD_NAMES) - set(thresholds)
    _require(not missing, f"{where}: thresholds {sorted(missing)} are set neither here nor in defaults.")
    return Recipe(
        name=name,
        parameter=str(body["parameter"]),
        description=str(body.get("description", "")).strip(),
        persona=persona,
        method=str(body["method"]),
        methods=methods,
        source=str(body.get("source", "a photo of a hotel room")),
        values=values,
        settings={m: dict(s or {}) for m, s in settings.items()},
        thresholds=thresholds,
        negative_prompt=str(body.get("negative_prompt", negative)),
    )


def _value(name: str, spec: Any, methods: tuple[str, ...], where: str) -> Value:
    _require(isinstance(spec, dict), f"{where} must be a mapping with instruction / prompt / grade.")
    for method in methods:
        needed = EDITORS.get(method).reads
        _require(spec.get(needed), f"{where} needs `{needed}` for method {method}.")
    grade = spec.get("grade") or {}
    unknown = set(grade) - set(GRADE_NAMES)
    _require(not unknown, f"{where}: unknown grade keys {sorted(unknown)}; known: {list(GRADE_NAMES)}.")
    return Value(
        name=name,
        instruction=spec.get("instruction"),
        prompt=" ".join(str(spec["prompt"]).split()) if spec.get("prompt") else None,
        grade={k: float(v) for k, v in grade.items()},
    )


def _thresholds(spec: Any, where: str) -> dict[str, float]:
    _require(isinstance(spec, dict), f"{where} must be a mapping.")
    unknown = set(spec) - set(THRESHOLD_NAMES)
    _require(not unknown, f"{where}: unknown thresholds {sorted(unknown)}; known: {list(THRESHOLD_NAMES)}.")
    try:
        return {k: float(v) for k, v in spec.items()}
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{where}: every threshold must be a number ({error}).") from error


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise RecipeError(message)
