"""Qwen-Image-Edit's ``processor`` without torchvision: transformers' Qwen2VLProcessor, images only.

``QwenImageEditPipeline`` calls its processor once a prompt, as
``processor(text=..., images=..., padding=True, return_tensors="pt")``: images, never videos.
transformers 5's ``Qwen2VLProcessor`` cannot be built without torchvision, because
``ProcessorMixin.__init__`` type-checks every attribute its ``__init__`` names and the video
processor's base class is torchvision-only (even ``video_processor=None`` fails). The subclass
below drops that one attribute and keeps everything else of Qwen2VLProcessor's own code: the
image processor (``AutoImageProcessor`` picks its PIL backend, ``Qwen2VLImageProcessorPil``,
when torchvision is missing), the ``<|image_pad|>`` expansion to ``prod(image_grid_thw) //
merge_size**2`` tokens an image, the tokenizer call and ``from_pretrained`` (the attributes come
from ``__init__``'s signature, so the repo's ``processor/`` folder loads as it is).

The PIL backend resamples with PIL rather than torchvision: pixel values can differ from the
torchvision backend's in the last bits of bicubic resampling, nothing else.
"""

from __future__ import annotations

from typing import Any

from transformers import Qwen2VLProcessor
from transformers.utils import is_torchvision_available

PROCESSOR_FOLDER = "processor"  # where Qwen/Qwen-Image-Edit keeps preprocessor_config.json + tokenizer files


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor with no video processor: what the edit pipeline calls, nothing less."""

    def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: str | None = None,
                 **kwargs: Any) -> None:
        # ProcessorMixin pairs positional parts with the attributes named in this signature
        # (image_processor, tokenizer); the None given for video_processor has no attribute to fill.
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def processor_parts(path: str) -> dict[str, Any]:
    """The pipeline parts to pass to ``from_pretrained``: the image-only processor where torchvision is missing.

    With torchvision, nothing: the pipeline loads the stock Qwen2VLProcessor from its model index."""
    if is_torchvision_available():
        return {}
    return {"processor": ImageOnlyQwen2VLProcessor.from_pretrained(path, subfolder=PROCESSOR_FOLDER)}
