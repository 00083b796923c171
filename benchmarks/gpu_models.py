"""The `gpu` preset's members with random weights, at full size or tiny, for benchmarks/bench_gpu.py.

Full size is the compute of the real checkpoints (no download): SigLIP 2 so400m-patch14-384
(a ``SiglipModel`` folder, as google/siglip2-so400m-patch14-384 is), CLIP ViT-B/32,
Florence-2-large (DaViT-large + BART-large), and Qwen-Image-Edit (the 20 B transformer,
Qwen2.5-VL-7B, its VAE). Tiny is the same code with small widths, for the CPU dry run a test
runs. Big parts are built straight on the accelerator in bf16 (:func:`built_on`): a 20 B
random init on the CPU in fp32 would take minutes and 80 GB.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from alienstay.testing.tiny_models import (
    build_full_size_clip,
    build_tiny_clip,
    florence2_tokenizer,
    tiny_tokenizer,
)

TESTS = Path(__file__).resolve().parents[1] / "tests"
SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16}
TINY_TOWER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}


@contextmanager
def built_on(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Modules made inside are allocated on `device` in `dtype` and initialised there."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def save_on_disk(model: torch.nn.Module, folder: Path, *extras: Any) -> Path:
    model.save_pretrained(folder)
    for extra in extras:
        extra.save_pretrained(folder)
    return Path(folder)


def build_siglip(folder: Path, full: bool, device: str) -> Path:
    """SigLIP 2 so400m-patch14-384 (fixed resolution: a SiglipModel folder), or a tiny one."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer = tiny_tokenizer(max_length=64 if full else 16)
    size, patch = (384, 14) if full else (32, 8)
    tower = SO400M if full else TINY_TOWER
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id}  # fmt: skip
    config = SiglipConfig(
        text_config={**tower, "vocab_size": len(tokenizer), "max_position_embeddings": 64 if full else 16, **ids},
        vision_config={**tower, "image_size": size, "patch_size": patch},
    )
    torch.manual_seed(0)
    with built_on(device, torch.bfloat16 if full else torch.float32):
        model = SiglipModel(config)
    processor = SiglipImageProcessor(size={"height": size, "width": size})
    return save_on_disk(model, folder, tokenizer, processor)


def build_clip_b32(folder: Path, full: bool) -> Path:
    return build_full_size_clip(folder) if full else build_tiny_clip(folder)


def build_florence2(folder: Path, full: bool, device: str) -> Path:
    """Florence-2-large (DaViT-large 768 px + BART-large, ~0.77 B), or the tests' tiny one."""
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    if not full:
        from alienstay.testing.tiny_models import build_tiny_florence2

        return build_tiny_florence2(folder)
    tokenizer = florence2_tokenizer(max_length=1024)
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
           "eos_token_id": tokenizer.eos_token_id, "decoder_start_token_id": tokenizer.eos_token_id}  # fmt: skip
    config = Florence2Config(
        vision_config={"embed_dim": [256, 512, 1024, 2048], "num_heads": [8, 16, 32, 64],
                       "num_groups": [8, 16, 32, 64], "depths": [1, 1, 9, 1], "projection_dim": 1024},
        text_config={"model_type": "bart", "vocab_size": 51289, "d_model": 1024, "encoder_layers": 12,
                     "decoder_layers": 12, "encoder_attention_heads": 16, "decoder_attention_heads": 16,
                     "encoder_ffn_dim": 4096, "decoder_ffn_dim": 4096, "max_position_embeddings": 1024, **ids},
        image_token_id=tokenizer.image_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    with built_on(device, torch.bfloat16):
        model = Florence2ForConditionalGeneration(config)
    processor = CLIPImageProcessor(size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768},
                                   do_center_crop=False)  # fmt: skip
    processor.image_seq_length = 577  # 24 x 24 DaViT tokens + 1, as microsoft/Florence-2-large
    save_on_disk(model, folder)
    Florence2Processor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    return Path(folder)


def _qwen_text_encoder(tokenizer: Any, full: bool) -> torch.nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    width = 3584 if full else 16
    text = ({"hidden_size": width, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
             "num_key_value_heads": 4, "rope_scaling": {"mrope_section": [16, 24, 24], "rope_type": "default",
                                                        "type": "default"}} if full else
            {"hidden_size": width, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 2, "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default",
                                                        "type": "default"}})  # fmt: skip
    vision = ({"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": width,
               "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]} if full else
              {"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": width})  # fmt: skip
    config = Qwen2_5_VLConfig(
        text_config={**text, "rope_theta": 1_000_000.0, "vocab_size": len(tokenizer), "bos_token_id": None,
                     "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>")},
        vision_config=vision, hidden_size=width, vocab_size=len(tokenizer), image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration(config)


def build_qwen_image_edit(folder: Path, full: bool, device: str) -> Any:
    """QwenImageEditPipeline in memory on `device`: full size in bf16 (20.4 B transformer), or tiny in fp32.

    The tokenizer is the tests' byte-level Qwen2 tokenizer (a prompt is a few dozen more tokens
    than with the real merges: noise beside the 8,192 image tokens at 1024 px)."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    from alienstay.editing.qwen_processor import ImageOnlyQwen2VLProcessor

    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))  # tiny_qwen imports its neighbours as top-level modules, as pytest puts them
    from alienstay.testing.tiny_qwen import (
        _preprocessor_config,
        build_tiny_qwen2_tokenizer,
    )

    tokenizer = build_tiny_qwen2_tokenizer(Path(folder) / "tokenizer")
    pixels = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 1280} if full else {}  # the real repo's VL budget
    image_processor = Qwen2VLImageProcessorPil(**{**_preprocessor_config(), **pixels})
    torch.manual_seed(0)
    with built_on(device, torch.bfloat16 if full else torch.float32):
        if full:
            transformer = QwenImageTransformer2DModel(
                patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
            vae = AutoencoderKLQwenImage(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                         temperal_downsample=[False, True, True])  # fmt: skip
        else:
            transformer = QwenImageTransformer2DModel(
                patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
                num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4))
            vae = AutoencoderKLQwenImage(base_dim=4, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                         temperal_downsample=[False, True, True], latents_mean=[0.0] * 4,
                                         latents_std=[1.0] * 4)  # fmt: skip
        text_encoder = _qwen_text_encoder(tokenizer, full)
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae.eval(), text_encoder=text_encoder.eval(),
        tokenizer=tokenizer, transformer=transformer.eval(),
        processor=ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def lightning_scheduler() -> Any:
    """The few-step path's scheduler: a fused Lightning LoRA leaves the transformer's cost as it is;
    what changes is the step count (8) and no CFG branch (true_cfg_scale 1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from alienstay.editing.qwen import LIGHTNING_SCHEDULER

    return FlowMatchEulerDiscreteScheduler.from_config(LIGHTNING_SCHEDULER)


def parameters_b(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9
