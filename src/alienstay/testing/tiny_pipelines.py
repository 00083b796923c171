"""Tiny random diffusion pipelines, CLIPSeg and ViT folders in the hub's layout, built offline.

Each is built from a config, saved with ``save_pretrained`` (whole pipelines with
``pipeline.save_pretrained``) and loaded back by the code under test through
``alienstay.runtime.models.resolve``: the same path real weights take. Outputs are random but
deterministic for a seed. The CLIP tokenizer is a real byte-level BPE tokenizer with a
character vocabulary and no merges, written as vocab.json + merges.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CROSS_DIM = 32


def _bytes_to_unicode() -> list[str]:
    """The byte -> printable character table of GPT-2 / CLIP BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def build_tiny_clip_tokenizer(folder: Path, max_length: int = 77):
    """A CLIPTokenizer from a written vocab.json / merges.txt: every byte char, alone and word-final."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    characters = _bytes_to_unicode()
    tokens = characters + [c + "</w>" for c in characters] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=max_length)


def _text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=CROSS_DIM, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def _unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CROSS_DIM, norm_num_groups=2, attention_head_dim=2,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
    )


def tiny_components(folder: Path, unet_in_channels: int, seed: int = 0) -> dict:
    from diffusers import DDIMScheduler

    torch.manual_seed(seed)
    tokenizer = build_tiny_clip_tokenizer(Path(folder) / "_tokenizer_src")
    return {
        "unet": _unet(unet_in_channels),
        "vae": _vae(),
        "text_encoder": _text_encoder(tokenizer),
        "tokenizer": tokenizer,
        "scheduler": DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def _save(pipeline, folder: Path) -> Path:
    pipeline.save_pretrained(folder)
    return Path(folder)


def build_tiny_sd(folder: Path, seed: int = 0) -> Path:
    """A text-to-image SD pipeline folder (also the base of ControlNet img2img)."""
    from diffusers import StableDiffusionPipeline

    return _save(StableDiffusionPipeline(**tiny_components(folder, 4, seed)), folder)


def build_tiny_instruct_pix2pix(folder: Path, seed: int = 0) -> Path:
    """UNet with 8 input channels: 4 noisy latents + 4 latents of the photo being edited."""
    from diffusers import StableDiffusionInstructPix2PixPipeline

    return _save(StableDiffusionInstructPix2PixPipeline(**tiny_components(folder, 8, seed)), folder)


def build_tiny_inpaint(folder: Path, seed: int = 0) -> Path:
    """UNet with 9 input channels: 4 noisy latents + 1 mask + 4 masked-image latents."""
    from diffusers import StableDiffusionInpaintPipeline

    return _save(StableDiffusionInpaintPipeline(**tiny_components(folder, 9, seed)), folder)


def build_tiny_controlnet(folder: Path, seed: int = 0) -> Path:
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(
        block_out_channels=(4, 8), layers_per_block=1, in_channels=4, cross_attention_dim=CROSS_DIM,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=2, attention_head_dim=2,
    )
    net.save_pretrained(folder)
    return Path(folder)


def build_tiny_lcm_lora(folder: Path, seed: int = 0) -> Path:
    """A random LoRA on the tiny UNet's attention, saved the way LCM-LoRA checkpoints are."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = _unet(8)
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True)
    return Path(folder)


def build_tiny_clipseg(folder: Path, seed: int = 0) -> Path:
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        ViTImageProcessor,
    )

    torch.manual_seed(seed)
    tokenizer = build_tiny_clip_tokenizer(Path(folder) / "_tokenizer_src")
    config = CLIPSegConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=tokenizer.model_max_length, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=16, reduce_dim=16, extract_layers=[1], decoder_num_attention_heads=2, decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(folder)
    image_processor = ViTImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return Path(folder)


def build_tiny_dino(folder: Path, seed: int = 0) -> Path:
    """A tiny random Dinov2 with its image processor, for the self-similarity distance."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                             image_size=64, patch_size=8)).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}).save_pretrained(folder)
    return Path(folder)
