"""CLIP and SigLIP from the Hugging Face hub (or a local folder in the hub's layout).

Loading goes through ``alienstay.runtime.models.resolve`` so a hub id, the hub cache and a local
folder written by ``save_pretrained`` all take the same path. ``--dtype`` picks float32
(the default), bfloat16, or int8 (dynamic quantisation of the Linear layers, weights int8,
activations quantised on the fly: the CPU-friendly option).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from PIL import Image

from alienstay.encoders.lean_transform import (
    LeanTransform,
    lean_transform,
    size_entries,
)
from alienstay.runtime.devices import DTYPES, check_dtype
from alienstay.runtime.models import ResolvedModel, resolve

# Text towers trained with fixed-length padding (SigLIP) must see the same padding at inference.
PAD_TO_MAX_LENGTH = {"siglip", "siglip2"}
# How a family's scores become a word's probability (a rule of alienstay.tagging.scoring.
# PROBABILITY_RULES), by the config's model_type. SigLIP (and SigLIP 2: its fixed-resolution
# checkpoints are `siglip`, the NaFlex ones `siglip2`) was trained with a per-pair sigmoid and a
# learned bias, so its sigmoid is a calibrated yes/no per word; CLIP was trained with a softmax
# over the batch, so its probabilities only mean something against the other words of a facet.
PROBABILITY_RULE = {"siglip": "sigmoid", "siglip2": "sigmoid"}
DEFAULT_PROBABILITY_RULE = "softmax"


def cpu_threads() -> int:
    """The cores this process may use (cgroup/affinity aware), the size for torch's thread pool.

    OMP_NUM_THREADS, where set, wins: several processes sharing the cores (test workers, a
    server's workers) each take their share instead of all of them each."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ProcessorTransform:
    """RGB image -> (3, H, W) pixel tensor through the model's own image processor.

    A plain dataclass holding the processor, so it pickles into DataLoader worker processes.
    """

    processor: object

    @property
    def input_size(self) -> int:
        """The side the model sees; the reader lets the JPEG decoder scale down towards it."""
        sizes = [getattr(self.processor, "crop_size", None), getattr(self.processor, "size", None)]
        # transformers 5 keeps SizeDicts, not dicts: read through size_entries, or no side is found
        # and the decoder never scales down; pixel budgets (min/max_pixels) are not sides
        sides = [v for size in sizes for k, v in size_entries(size).items() if not k.endswith("_pixels")]
        return max(sides, default=0)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    @staticmethod
    def unpack(pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """A stacked batch of this transform's outputs -> the model's get_image_features arguments."""
        return {"pixel_values": pixels}


@dataclass
class NaFlexTransform(ProcessorTransform):
    """SigLIP 2 NaFlex: RGB image -> (max_num_patches, patch dim + 3) patches at the photo's own aspect ratio.

    The reader stacks one tensor per photo, so the padding mask and the patch grid (rows,
    columns) ride along as three extra columns; :meth:`unpack` splits them again.
    """

    def __call__(self, image: Image.Image) -> torch.Tensor:
        out = self.processor(images=image.convert("RGB"), return_tensors="pt")
        patches = out["pixel_values"][0].float()
        mask = out["pixel_attention_mask"][0].float()[:, None]
        grid = out["spatial_shapes"][0].float().expand(len(patches), 2)
        return torch.cat([patches, mask, grid], dim=1)

    @staticmethod
    def unpack(packed: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": packed[..., :-3],
            "pixel_attention_mask": packed[..., -3].round().long(),
            "spatial_shapes": packed[:, 0, -2:].round().long(),
        }


# Families whose image processor makes variable-size patch sequences (model_type -> transform).
PATCH_TRANSFORMS = {"siglip2": NaFlexTransform}


class HFImageTextEncoder:
    """A transformers CLIP-like dual encoder behind the ImageTextEncoder interface."""

    encoder_name = "hf"  # its entry in alienstay.encoders.ENCODERS

    def __init__(
        self,
        resolved: ResolvedModel,
        model: torch.nn.Module,
        tokenizer,
        image_processor,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> None:
        self.model_id = resolved.model_id
        self.revision = resolved.revision
        self.dtype = dtype
        self.device = device
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.model_type = model.config.model_type
        # The model's own temperature: logit_scale * cosine (+ logit_bias for SigLIP).
        self.logit_scale = float(model.logit_scale.detach().float().exp())
        # SigLIP adds a learned bias before its sigmoid (it would cancel inside a softmax).
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.detach().float().reshape(-1)[0]) if bias is not None else 0.0
        self.probability = PROBABILITY_RULE.get(self.model_type, DEFAULT_PROBABILITY_RULE)
        self._compute_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self._lean: LeanTransform | bool | None = None  # decided once, on first use

    def record(self) -> dict[str, str]:
        return {"model_id": self.model_id, "model_revision": self.revision, "dtype": self.dtype}

    def image_transform(self) -> ProcessorTransform | LeanTransform:
        """NaFlex patches for SigLIP 2 NaFlex; the lean uint8 transform where the processor only
        resizes, crops and normalises (encoders/lean_transform.py); the processor itself otherwise."""
        if self.model_type in PATCH_TRANSFORMS:
            return PATCH_TRANSFORMS[self.model_type](self.image_processor)
        if self._lean is None:
            self._lean = lean_transform(self.image_processor) or False
        return self._lean or ProcessorTransform(self.image_processor)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        inputs = self.image_transform().unpack(pixels.to(self.device))
        inputs["pixel_values"] = inputs["pixel_values"].to(self._compute_dtype)
        features = self.model.get_image_features(**inputs).pooler_output
        return torch.nn.functional.normalize(features.float(), dim=-1).cpu()

    @torch.inference_mode()
    def encode_texts(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        padding = "max_length" if self.model_type in PAD_TO_MAX_LENGTH else True
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(
                texts[start : start + batch_size], padding=padding, truncation=True, return_tensors="pt"
            ).to(self.device)
            inputs = {"input_ids": tokens["input_ids"]}
            if "attention_mask" in tokens and self.model_type not in PAD_TO_MAX_LENGTH:
                inputs["attention_mask"] = tokens["attention_mask"]
            features = self.model.get_text_features(**inputs).pooler_output
            chunks.append(torch.nn.functional.normalize(features.float(), dim=-1).cpu())
        return torch.cat(chunks)


def load_hf_encoder(model: str, device: str = "cpu", dtype: str = "float32") -> HFImageTextEncoder:
    """A hub id or local folder -> encoder. Raises ModelUnavailable (with the fix) when weights are missing."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    check_dtype(dtype, DTYPES)
    if dtype == "int8" and device != "cpu":
        raise ValueError("dtype int8 (dynamic quantisation) runs on the CPU only: pass --device cpu.")
    torch.set_num_threads(cpu_threads())
    resolved = resolve(model)
    torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    network = AutoModel.from_pretrained(resolved.path, dtype=torch_dtype).eval()
    if not hasattr(network, "get_image_features") or not hasattr(network, "get_text_features"):
        raise ValueError(
            f"{resolved.model_id} is a {type(network).__name__}, not an image-text dual encoder: "
            "pass a CLIP or SigLIP model (e.g. openai/clip-vit-base-patch32)."
        )
    if dtype == "int8":
        network = quantize_linear_int8(network)
    network = network.to(device)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    image_processor = AutoImageProcessor.from_pretrained(resolved.path)
    return HFImageTextEncoder(resolved, network, tokenizer, image_processor, device=device, dtype=dtype)


def quantize_linear_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation of every Linear layer (weights int8, activations per batch)."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    # torch announces the move of eager quantisation to torchao; the API still works in the
    # pinned torch and torchao is not a dependency, so the notice would only be noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
