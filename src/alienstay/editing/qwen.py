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
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from alienstay.editing.base import EditOutput, EditRequest, fit_size
from alienstay.editing.flux import QWEN_IMAGE_EDIT, _finish, _generator, _multiple, instruction, load_flux_family
from alienstay.editing.methods import Speed


class QwenImageEditEditor:
    method = "qwen-image-edit"
    is_diffusion = True
    licence = "Apache-2.0"

    def __init__(self, model: str = QWEN_IMAGE_EDIT, speed: Speed = Speed(), quantize: str | None = None) -> None:
        from diffusers import QwenImageEditPipeline, QwenImageTransformer2DModel

        from alienstay.editing.qwen_processor import processor_parts

        self.pipe, self.model_id = load_flux_family(
            QwenImageEditPipeline, model, speed, quantize, QwenImageTransformer2DModel, parts=processor_parts,
        )

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size, multiple=_multiple(self.pipe))
        edited = self.pipe(
            image=source,
            prompt=instruction(request),
            negative_prompt=request.negative_prompt or " ",
            true_cfg_scale=request.guidance_scale if request.guidance_scale is not None else 4.0,
            height=source.height,
            width=source.width,
            num_inference_steps=request.steps,
            generator=_generator(request.seed),
        ).images[0].resize(source.size)
        return _finish(image, edited, mask)
