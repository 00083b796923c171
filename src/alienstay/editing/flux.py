"""The current-generation diffusers editors and the FLUX.1 [schnell] portrait (issue 11).

- ``kontext``: FLUX.1 Kontext [dev] (``FluxKontextPipeline``) applies an instruction to the
  photo, which it sees as a second token sequence beside the noisy latents: trained for
  consistency, it keeps the room (layout, furniture, view) far better than InstructPix2Pix.
  Its weights are under the FLUX.1 [dev] NON-COMMERCIAL licence: offered, never a default.
- ``qwen-image-edit``: Qwen-Image-Edit (Apache-2.0, ``QwenImageEditPipeline``), the `gpu`
  preset's editor; the photo goes both to Qwen2.5-VL (meaning) and to the VAE (appearance).
- ``flux_portrait``: FLUX.1 [schnell] (Apache-2.0, ``FluxPipeline``) text-to-image, 4 steps.

Memory (docs/restyling.md, "Restyling methods side by side"): bf16 on one 80 GB GPU; on smaller GPUs
``Speed(cpu_offload=True)`` (model CPU offload) and, as a clearly optional path, a 4-bit or 8-bit
transformer (``quantize="4bit"|"8bit"``, diffusers' bitsandbytes integration; needs a CUDA GPU
and ``pip install bitsandbytes``). Every model is loaded through ``alienstay.runtime.models.resolve``.
"""

from __future__ import annotations

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


# Their hub ids and licences are the registry entries' weights (editing/methods.py, persona/text_to_image.py).
class KontextEditor:
    """FLUX.1 Kontext [dev]: an instruction, the photo as context. NON-COMMERCIAL weights."""

    method = "kontext"
    is_diffusion = True

    def __init__(self, model: str, speed: Speed = Speed(), quantize: str | None = None) -> None:
        from diffusers import FluxKontextPipeline, FluxTransformer2DModel

        self.pipe, self.model_id = load_flux_family(FluxKontextPipeline, model, speed, quantize, FluxTransformer2DModel)

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size, multiple=side_multiple(self.pipe))
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
            generator=seeded_generator(request.seed),
        ).images[0].resize(source.size)
        return finish(image, edited, mask)


def flux_portrait(model: str, prompt: str, negative_prompt: str, seed: int, steps: int, size: int,
                  guidance_scale: float, speed: Speed = Speed()) -> tuple[Image.Image, str]:
    """FLUX.1 [schnell] text-to-image: timestep-distilled, so guidance is off and 4 steps suffice.

    Schnell has no negative prompt (no classifier-free guidance): the negative words are dropped."""
    from diffusers import FluxPipeline

    pipe, model_id = load_flux_family(FluxPipeline, model, speed)
    side = max(side_multiple(pipe), size // side_multiple(pipe) * side_multiple(pipe))
    image = pipe(
        prompt=prompt, height=side, width=side, num_inference_steps=steps, guidance_scale=0.0,
        max_sequence_length=256, generator=seeded_generator(seed),
    ).images[0]
    return image, model_id
