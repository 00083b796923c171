"""The diffusion edit methods, explicit diffusers pipelines (registered in ``editing/methods.py``).

- ``instruct-pix2pix``: an instruction ("make it night") applied by InstructPix2Pix; the image
  guidance scale is the knob between faithfulness (higher) and edit strength (lower).
- ``controlnet``: layout-locked restyling: SD 1.5 img2img steered by a ControlNet whose control
  map (M-LSD straight lines or Canny edges, ``editing/controls.py``) is computed from the photo.
- ``inpaint``: a local addition inside a mask (a segmenter on a text query, or a mask file); the
  original is pasted back outside the mask, so the rest of the photo is untouched by construction.

The labelled non-diffusion baseline is ``editing/classical.py``. Every model is loaded through
``alienstay.runtime.models.resolve`` (hub id or local folder), so a missing model gives the resolver's
message naming the id and the fix.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from PIL import Image

from alienstay.editing.base import (  # noqa: F401  (the editors' API)
    Editor,
    EditOutput,
    EditRequest,
    Speed,
    editable,
    fit_size,
    paste_outside_mask,
)
from alienstay.editing.controls import CONTROL_MAPS
from alienstay.runtime import weights
from alienstay.runtime.models import resolve
from alienstay.runtime.placement import place_pipeline, seeded_generator

log = logging.getLogger("alienstay")


# ---- diffusion ---------------------------------------------------------------------------
def _generator(seed: int) -> torch.Generator:
    return seeded_generator(seed)


def apply_speed(pipe: Any, speed: Speed) -> list[str]:
    """LCM-LoRA + LCMScheduler, attention slicing, offload. Returns the LoRA ids loaded."""
    loaded = []
    if speed.lcm_lora:
        from diffusers import LCMScheduler

        resolved = resolve(speed.lcm_lora)
        pipe.load_lora_weights(str(resolved.path))
        pipe.fuse_lora()
        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
        loaded.append(resolved.model_id)
    if speed.attention_slicing:
        pipe.enable_attention_slicing()
    # Last: offload hooks must wrap the sub-models as they will run (LoRA fused, dtype set).
    pipe.alienstay_placed = place_pipeline(pipe, speed.device, speed.dtype, speed.cpu_offload)
    return loaded


# Only what a diffusers pipeline loads (runtime/weights.py says why), as a list for the resolver.
PIPELINE_FILES = list(weights.PIPELINE_FILES)


def load_pipeline(pipeline_class: Any, model: str, **components: Any) -> tuple[Any, str]:
    resolved = resolve(model, allow_patterns=PIPELINE_FILES)
    # The safety checker is dropped on purpose: hotel rooms are safe, and its false positives
    # would black out photos; it also costs a second large model in memory.
    pipe = pipeline_class.from_pretrained(
        str(resolved.path), safety_checker=None, requires_safety_checker=False, **components
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, resolved.model_id


class InstructPix2PixEditor:
    method = "instruct-pix2pix"
    is_diffusion = True

    def __init__(self, model: str, speed: Speed = Speed()) -> None:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        self.pipe, model_id = load_pipeline(StableDiffusionInstructPix2PixPipeline, model)
        self.model_id = " + ".join([model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size)
        edited = self.pipe(
            prompt=request.value.instruction,
            image=source,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            image_guidance_scale=request.image_guidance_scale,
            negative_prompt=request.negative_prompt or None,
            generator=_generator(request.seed),
        ).images[0]
        if mask is not None:
            return EditOutput(paste_outside_mask(source, edited, mask), mask=mask)
        return EditOutput(edited)


class ControlNetEditor:
    method = "controlnet"
    is_diffusion = True

    def __init__(
        self,
        model: str,
        controlnet: str | None = None,
        control: str = "mlsd",
        speed: Speed = Speed(),
    ) -> None:
        from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline

        self.control = control
        self.control_map = CONTROL_MAPS.get(control)  # an unknown name lists the known ones
        resolved_controlnet = resolve(
            controlnet or self.control_map.default_controlnet, allow_patterns=list(weights.CONTROLNET_FILES)
        )
        net = ControlNetModel.from_pretrained(str(resolved_controlnet.path))
        self.pipe, model_id = load_pipeline(StableDiffusionControlNetImg2ImgPipeline, model, controlnet=net)
        self.model_id = " + ".join([model_id, resolved_controlnet.model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size)
        control_image = self.control_map.compute(source)
        edited = self.pipe(
            prompt=request.value.prompt,
            image=source,
            control_image=control_image,
            height=source.height,
            width=source.width,
            strength=request.strength,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt or None,
            controlnet_conditioning_scale=float(request.extra.get("conditioning_scale", 1.0)),
            generator=_generator(request.seed),
        ).images[0]
        return EditOutput(edited, control_image=control_image)


class InpaintEditor:
    method = "inpaint"
    is_diffusion = True

    def __init__(self, model: str, speed: Speed = Speed()) -> None:
        from diffusers import StableDiffusionInpaintPipeline

        self.pipe, model_id = load_pipeline(StableDiffusionInpaintPipeline, model)
        self.model_id = " + ".join([model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        if mask is None:
            raise ValueError("inpainting needs a mask: a text query (mask_query) or a mask file.")
        source = fit_size(image, request.size)
        mask_image = Image.fromarray(editable(mask).astype(np.uint8) * 255)
        edited = self.pipe(
            prompt=request.value.prompt,
            image=source,
            mask_image=mask_image,
            height=source.height,
            width=source.width,
            strength=request.strength,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt or None,
            generator=_generator(request.seed),
        ).images[0]
        return EditOutput(paste_outside_mask(source, edited.resize(source.size), mask), mask=mask)
