"""Edit identity: the request a recipe value becomes, and the key that names its pixels.

The same key means the same edit: a series skips what is already in ``edits.parquet`` with
its key, so an interrupted series resumes, and any change of a setting is a new edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from alienstay.editing.base import EditRequest
from alienstay.editing.methods import REQUEST_SETTINGS, setting_names
from alienstay.editing.recipes import Recipe


@dataclass(frozen=True)
class SeriesSettings:
    method: str
    seed: int = 0
    steps: int | None = None  # None: the recipe's setting for the method
    size: int = 512
    guidance_scale: float | None = None
    image_guidance_scale: float | None = None
    strength: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_request(recipe: Recipe, value_name: str, settings: SeriesSettings) -> EditRequest:
    """Recipe defaults for the method, overridden by what the user passed."""
    defaults = recipe.settings_for(settings.method)

    def pick(name: str, given: Any, fallback: Any) -> Any:
        return given if given is not None else defaults.get(name, fallback)

    # Settings that are not EditRequest fields (control map, mask query, ...) travel in extra.
    extra_names = set(setting_names()) - set(REQUEST_SETTINGS)
    extra = {k: v for k, v in defaults.items() if k in extra_names}
    return EditRequest(
        value=recipe.value(value_name),
        seed=settings.seed,
        steps=int(pick("steps", settings.steps, 20)),
        size=settings.size,
        guidance_scale=pick("guidance_scale", settings.guidance_scale, None),
        image_guidance_scale=pick("image_guidance_scale", settings.image_guidance_scale, None),
        strength=pick("strength", settings.strength, None),
        negative_prompt=recipe.negative_prompt,
        extra={**extra, **settings.extra},
    )


def edit_key(image_id: str, recipe: Recipe, method: str, model_id: str, request: EditRequest) -> str:
    """Everything that determines the pixels, hashed: the same key means the same edit."""
    spec = {
        "image_id": image_id, "recipe": recipe.name, "method": method, "model_id": model_id,
        "value": request.value.name, "instruction": request.value.instruction, "prompt": request.value.prompt,
        "grade": request.value.grade, "seed": request.seed, "steps": request.steps, "size": request.size,
        "guidance_scale": request.guidance_scale, "image_guidance_scale": request.image_guidance_scale,
        "strength": request.strength, "negative": request.negative_prompt, "extra": request.extra,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
