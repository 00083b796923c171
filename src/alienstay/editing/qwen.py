"""``qwen-image-edit``: Qwen-Image-Edit (Apache-2.0), the `gpu` preset's editor for every recipe.

``QwenImageEditPipeline`` reads the photo twice: Qwen2.5-VL-7B sees it with the instruction
(what to change), the VAE encodes it beside the noisy latents (what to keep), so the room's
layout, furniture and view survive a change of light or style. True classifier-free guidance
(``true_cfg_scale``) with the recipe's negative prompt. The pipeline resizes the photo it
conditions on to about 1 megapixel itself; the output has the recipe's size.

No torchvision needed: transformers' stock ``Qwen2VLProcessor`` (the pipeline's ``processor``)
cannot be built without it, so where it is missing the editor builds an image-only subclass of
it (editing/qwen_processor.py) from the repo's ``processor/`` folder and passes it to
``from_pretrained``; with torchvision the stock processor loads. Memory: see editing/flux.py.

``--lcm-lora`` names a few-step distilled LoRA here (:func:`load_few_step_lora`): lightx2v's
Qwen-Image-Edit-Lightning (Apache-2.0), fused, with its own schedule. On an H200 the 8-step path
edits an 8 x 3 series at 1024 px in 96 s against about 18 minutes at 50 steps with true CFG
(docs/hardware.md, GPU figures; ``python -m benchmarks.bench_gpu``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from alienstay.editing.base import EditOutput, EditRequest, Speed, fit_size
from alienstay.editing.flux_family import (
    finish,
    instruction,
    load_flux_family,
    side_multiple,
)
from alienstay.runtime.placement import seeded_generator


class QwenImageEditEditor:
    method = "qwen-image-edit"
    is_diffusion = True

    def __init__(self, model: str, speed: Speed = Speed(), quantize: str | None = None) -> None:
        from diffusers import QwenImageEditPipeline, QwenImageTransformer2DModel

        from alienstay.editing.qwen_processor import processor_parts

        few_step = (lambda pipe: [load_few_step_lora(pipe, speed.lcm_lora)]) if speed.lcm_lora else (lambda pipe: [])
        self.pipe, self.model_id = load_flux_family(
            QwenImageEditPipeline, model, speed, quantize, QwenImageTransformer2DModel, parts=processor_parts,
            prepare=few_step,
        )

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size, multiple=side_multiple(self.pipe))
        edited = self.pipe(
            image=source,
            prompt=instruction(request),
            negative_prompt=request.negative_prompt or " ",
            true_cfg_scale=request.guidance_scale if request.guidance_scale is not None else 4.0,
            height=source.height,
            width=source.width,
            num_inference_steps=request.steps,
            generator=seeded_generator(request.seed),
        ).images[0].resize(source.size)
        return finish(image, edited, mask)


# lightx2v's scheduler for its Qwen-Image(-Edit)-Lightning LoRAs (Apache-2.0): a fixed log(3)
# exponential time shift, the schedule they were distilled with.
LIGHTNING_SCHEDULER = {
    "base_image_seq_len": 256, "base_shift": math.log(3), "invert_sigmas": False, "max_image_seq_len": 8192,
    "max_shift": math.log(3), "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": None,
    "stochastic_sampling": False, "time_shift_type": "exponential", "use_beta_sigmas": False,
    "use_dynamic_shifting": True, "use_exponential_sigmas": False, "use_karras_sigmas": False,
}  # fmt: skip


def load_few_step_lora(pipe: Any, lora: str) -> str:
    """``--lcm-lora`` for Qwen-Image-Edit: a few-step distilled LoRA (lightx2v's Qwen-Image-Edit-Lightning,
    4 or 8 steps), fused into the transformer, with the FlowMatch schedule it was distilled for.

    `lora` is a .safetensors file (the Lightning repo holds several) or a folder / hub id with one
    LoRA. Fused, it leaves each step's cost as it is: the edit is faster by its fewer steps and no
    CFG branch (the series then defaults to 4 steps, guidance 1; pass --steps 8 for an 8-step LoRA).
    Returns the LoRA's id for the edit's record."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from alienstay.runtime.models import resolve

    file = Path(lora).expanduser()
    if file.is_file():
        pipe.load_lora_weights(str(file.parent), weight_name=file.name)
    else:
        pipe.load_lora_weights(str(resolve(lora).path))
    pipe.fuse_lora()
    pipe.unload_lora_weights()  # the fused weights stay; the adapter layers go
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(LIGHTNING_SCHEDULER)
    return str(lora)
