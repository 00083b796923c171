"""The portrait's text-to-image models, one registry entry each (``TEXT_TO_IMAGE``).

``sd15`` (Stable Diffusion 1.5, the `cpu` choice) and ``flux-schnell`` (FLUX.1 [schnell],
Apache-2.0, the `gpu` choice: 4 timestep-distilled steps, no guidance). ``--model`` takes an
entry's name (its default weights), ``NAME:FOLDER_OR_ID``, or a bare hub id / folder (SD 1.5's
loader). A new model is one ``TEXT_TO_IMAGE.register(...)`` with its ``render`` function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alienstay.editing.methods import SD15  # the weights the SD 1.5 editors load: stated once, there
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import FLUX_FILES, Weights, default_model


@dataclass(frozen=True)
class TextToImageSpec:
    name: str
    # render(model, prompt, negative_prompt, seed, steps, size, guidance_scale) -> (PIL image, model id)
    render: Callable[..., tuple[Any, str]]
    description: str = ""
    weights: dict[str, Weights] = field(default_factory=dict)  # "text-to-image" -> its default weights
    # how `--model` takes a local copy of its weights: a bare folder is SD 1.5's loader's
    folder_form: str = "{folder}"

    @property
    def default_model(self) -> str | None:
        return default_model(self.weights)

    @property
    def licence(self) -> str:
        return next(iter(self.weights.values())).licence if self.weights else ""


TEXT_TO_IMAGE: Registry[TextToImageSpec] = Registry("text-to-image model", group="alienstay.text_to_image")


def _sd15(model: str, prompt: str, negative_prompt: str, seed: int, steps: int, size: int,
          guidance_scale: float, device: str = "auto", dtype: str = "auto") -> tuple[Any, str]:
    from diffusers import StableDiffusionPipeline

    from alienstay.editing.pipelines import load_pipeline
    from alienstay.runtime.placement import (
        edit_placement,
        place_pipeline,
        seeded_generator,
    )

    pipe, model_id = load_pipeline(StableDiffusionPipeline, model)
    place_pipeline(pipe, *edit_placement(device, dtype))
    image = pipe(
        prompt=prompt, negative_prompt=negative_prompt or None, num_inference_steps=steps,
        guidance_scale=guidance_scale, height=size, width=size,
        generator=seeded_generator(seed),
    ).images[0]
    return image, model_id


def _flux_schnell(model: str, prompt: str, negative_prompt: str, seed: int, steps: int, size: int,
                  guidance_scale: float, device: str = "auto", dtype: str = "auto") -> tuple[Any, str]:
    from alienstay.editing.flux import flux_portrait
    from alienstay.editing.methods import Speed
    from alienstay.runtime.placement import edit_placement

    chosen, chosen_dtype = edit_placement(device, dtype)
    return flux_portrait(model, prompt, negative_prompt, seed, steps, size, guidance_scale,
                         Speed(device=chosen, dtype=chosen_dtype))


TEXT_TO_IMAGE.register(TextToImageSpec(
    "sd15", _sd15, "Stable Diffusion 1.5 (cpu)",
    {"text-to-image": SD15},
))
TEXT_TO_IMAGE.register(TextToImageSpec(
    "flux-schnell", _flux_schnell, "FLUX.1 [schnell] (gpu): 4 steps, no guidance, no negative prompt",
    {"text-to-image": Weights("black-forest-labs/FLUX.1-schnell", "Apache-2.0", FLUX_FILES)},
    folder_form="flux-schnell:{folder}",
))
