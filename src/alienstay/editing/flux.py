"""The current-generation diffusers editors and the FLUX.1 [schnell] portrait (issue 11).

- ``kontext``: FLUX.1 Kontext [dev] (``FluxKontextPipeline``) applies an instruction to the
  photo, which it sees as a second token sequence beside the noisy latents: trained for
  consistency, it keeps the room (layout, furniture, view) far better than InstructPix2Pix.
  Its weights are under the FLUX.1 [dev] NON-COMMERCIAL licence: offered, never a default.
- ``qwen-image-edit``: Qwen-Image-Edit (Apache-2.0, ``QwenImageEditPipeline``), the `gpu`
  preset's editor; the photo goes both to Qwen2.5-VL (meaning) and to the VAE (appearance).
- ``flux_portrait``: FLUX.1 [schnell] (Apache-2.0, ``FluxPipeline``) text-to-image, 4 steps.

Memory (README, "Restyling methods side by side"): bf16 on one 80 GB GPU; on smaller GPUs
``Speed(cpu_offload=True)`` (model CPU offload) and, as a clearly optional path, a 4-bit or 8-bit
transformer (``quantize="4bit"|"8bit"``, diffusers' bitsandbytes integration; needs a CUDA GPU
and ``pip install bitsandbytes``). Every model is loaded through ``alienstay.runtime.models.resolve``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from alienstay.editing.base import EditOutput, EditRequest, fit_size
from alienstay.editing.masks import paste_outside_mask
from alienstay.editing.methods import Speed
from alienstay.runtime.models import resolve
from alienstay.runtime.placement import place_pipeline

KONTEXT = "black-forest-labs/FLUX.1-Kontext-dev"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
QWEN_IMAGE_EDIT = "Qwen/Qwen-Image-Edit"
KONTEXT_LICENCE = "FLUX.1-dev Non-Commercial License: NOT for commercial use"
# What a FLUX / Qwen-Image pipeline loads: configs, tokenizers and the (sharded) safetensors of
# each part; the repos' single-file checkpoints at the top level are never read.
FLUX_FILES = (
    "model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors",
)  # fmt: skip
QUANTIZE = ("4bit", "8bit")


def _quantized_transformer(transformer_class: Any, path: str, quantize: str) -> Any:
    """Optional: the transformer alone in 4 or 8 bits (bitsandbytes), the rest in bf16."""
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, not {quantize!r}.")
    try:
        from diffusers import BitsAndBytesConfig
    except ImportError as error:  # pragma: no cover - depends on the install
        raise RuntimeError("quantize needs diffusers' bitsandbytes integration: pip install bitsandbytes") from error
    import torch

    config = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
              if quantize == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    return transformer_class.from_pretrained(path, subfolder="transformer", quantization_config=config,
                                             dtype=torch.bfloat16)


def load_flux_family(pipeline_class: Any, model: str, speed: Speed = Speed(), quantize: str | None = None,
                     transformer_class: Any = None,
                     parts: Callable[[str], dict[str, Any]] = lambda path: {},
                     prepare: Callable[[Any], list[str]] = lambda pipe: []) -> tuple[Any, str]:
    """A FLUX / Qwen-Image pipeline from a hub id or folder; on a GPU moved there (or offloaded).

    ``parts(folder)``: components the caller builds itself from the resolved folder, passed to
    ``from_pretrained`` in place of the stock ones (Qwen-Image-Edit's processor without torchvision).
    ``prepare(pipe)``: changes made before placing (a fused LoRA: offload hooks must wrap the
    weights as they will run); the ids it returns join the model id."""
    import torch

    resolved = resolve(model, allow_patterns=list(FLUX_FILES))
    components = parts(str(resolved.path))
    if quantize:
        components["transformer"] = _quantized_transformer(transformer_class, str(resolved.path), quantize)
    # speed.device/dtype are concrete (series resolves --device/--dtype auto: bf16 on a GPU that
    # computes in it, fp32 on the CPU); offload switches on by itself when the card is too small.
    pipe = pipeline_class.from_pretrained(str(resolved.path), dtype=getattr(torch, speed.dtype), **components)
    pipe.set_progress_bar_config(disable=True)
    added = prepare(pipe)
    pipe.alienstay_placed = place_pipeline(pipe, speed.device, speed.dtype, speed.cpu_offload)
    return pipe, " + ".join([resolved.model_id, *added])


def _generator(seed: int) -> Any:
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


def instruction(request: EditRequest) -> str:
    """The value's instruction plus the recipe's per-method words (what to keep, in the model's idiom)."""
    suffix = str(request.extra.get("instruction_suffix", "")).strip()
    return f"{request.value.instruction} {suffix}".strip() if suffix else str(request.value.instruction)


def _multiple(pipe: Any) -> int:
    """Sides a multiple of the VAE factor x the 2x2 latent packing (16 for the real models)."""
    return int(pipe.vae_scale_factor) * 2


def _finish(image: Image.Image, edited: Image.Image, mask: np.ndarray | None) -> EditOutput:
    """The model's output; with a mask, at the photo's size with the photo pasted back outside it.

    The model ran at sides a multiple of 16, the photo (and its mask) has the runner's multiples
    of 8 (a 3:2 photo at 1024 px is 1024x680): the paste happens at the mask's size, so the
    outside stays the photo's own pixels whatever the two sizes."""
    if mask is None:
        return EditOutput(edited)
    return EditOutput(paste_outside_mask(image, edited.resize(image.size), mask), mask=mask)


class KontextEditor:
    """FLUX.1 Kontext [dev]: an instruction, the photo as context. NON-COMMERCIAL weights."""

    method = "kontext"
    is_diffusion = True
    licence = KONTEXT_LICENCE

    def __init__(self, model: str = KONTEXT, speed: Speed = Speed(), quantize: str | None = None) -> None:
        from diffusers import FluxKontextPipeline, FluxTransformer2DModel

        self.pipe, self.model_id = load_flux_family(FluxKontextPipeline, model, speed, quantize, FluxTransformer2DModel)

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size, multiple=_multiple(self.pipe))
        edited = self.pipe(
            image=source,
            prompt=instruction(request),
            height=source.height,
            width=source.width,
            # Kontext would resize to ~1 MP on its own; the size is the recipe's choice here.
            max_area=source.height * source.width,
            _auto_resize=False,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale if request.guidance_scale is not None else 2.5,
            max_sequence_length=int(request.extra.get("max_sequence_length", 512)),
            generator=_generator(request.seed),
        ).images[0].resize(source.size)
        return _finish(image, edited, mask)


def flux_portrait(model: str, prompt: str, negative_prompt: str, seed: int, steps: int, size: int,
                  guidance_scale: float, speed: Speed = Speed()) -> tuple[Image.Image, str]:
    """FLUX.1 [schnell] text-to-image: timestep-distilled, so guidance is off and 4 steps suffice.

    Schnell has no negative prompt (no classifier-free guidance): the negative words are dropped."""
    from diffusers import FluxPipeline

    pipe, model_id = load_flux_family(FluxPipeline, model, speed)
    side = max(_multiple(pipe), size // _multiple(pipe) * _multiple(pipe))
    image = pipe(
        prompt=prompt, height=side, width=side, num_inference_steps=steps, guidance_scale=0.0,
        max_sequence_length=256, generator=_generator(seed),
    ).images[0]
    return image, model_id
