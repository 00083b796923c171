"""What the FLUX-family editors share (FLUX.1 Kontext, Qwen-Image-Edit): loading a pipeline from a
hub id or folder (optionally with a 4/8-bit transformer), the seeded generator, the side multiple and
the paste-back of the photo outside a mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from alienstay.editing.base import EditOutput, EditRequest, Speed, paste_outside_mask
from alienstay.runtime.models import resolve
from alienstay.runtime.placement import place_pipeline
from alienstay.runtime.weights import FLUX_FILES  # configs, tokenizers and each part's safetensors

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


def instruction(request: EditRequest) -> str:
    """The value's instruction plus the recipe's per-method words (what to keep, in the model's idiom)."""
    suffix = str(request.extra.get("instruction_suffix", "")).strip()
    return f"{request.value.instruction} {suffix}".strip() if suffix else str(request.value.instruction)


def side_multiple(pipe: Any) -> int:
    """Sides a multiple of the VAE factor x the 2x2 latent packing (16 for the real models)."""
    return int(pipe.vae_scale_factor) * 2


def finish(image: Image.Image, edited: Image.Image, mask: np.ndarray | None) -> EditOutput:
    """The model's output; with a mask, at the photo's size with the photo pasted back outside it.

    The model ran at sides a multiple of 16, the photo (and its mask) has the runner's multiples
    of 8 (a 3:2 photo at 1024 px is 1024x680): the paste happens at the mask's size, so the
    outside stays the photo's own pixels whatever the two sizes."""
    if mask is None:
        return EditOutput(edited)
    return EditOutput(paste_outside_mask(image, edited.resize(image.size), mask), mask=mask)
