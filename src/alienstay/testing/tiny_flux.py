"""Tiny random FLUX-family pipelines (FLUX.1 [schnell] text-to-image, FLUX.1 Kontext edits), built offline.

The configs follow diffusers' own pipeline tests (tests/pipelines/flux): a one-block
FluxTransformer2DModel, a one-level AutoencoderKL, a 32-wide CLIP text encoder and a tiny T5
encoder. Diffusers' tests fetch their tokenizers from the hub; here the CLIP tokenizer is the
byte-level one of src/alienstay/testing/tiny_pipelines.py and the T5 tokenizer a `tokenizers` Unigram model
over single characters wrapped in T5TokenizerFast, so nothing is downloaded. Each pipeline is
saved with ``save_pretrained`` and loaded back through ``alienstay.runtime.models.resolve``.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from alienstay.testing.tiny_pipelines import build_tiny_clip_tokenizer

WIDTH = 32  # the text encoders' width = the transformer's joint attention width


def build_tiny_t5_tokenizer(folder: Path, max_length: int = 32):
    """A T5TokenizerFast from a character Unigram model: pad 0, eos 1, unk 2, then every character."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in string.ascii_letters + string.digits + string.punctuation]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    tokenizer = T5TokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                extra_ids=0, model_max_length=max_length)
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder)


def _flux_components(folder: Path, in_channels: int, seed: int) -> dict:
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    clip_tokenizer = build_tiny_clip_tokenizer(Path(folder) / "_clip_tokenizer_src")
    t5_tokenizer = build_tiny_t5_tokenizer(Path(folder) / "_t5_tokenizer_src")
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=WIDTH, pooled_projection_dim=WIDTH, axes_dims_rope=[4, 4, 8],
    )
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(clip_tokenizer), hidden_size=WIDTH, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=clip_tokenizer.model_max_length, projection_dim=WIDTH,
        bos_token_id=clip_tokenizer.bos_token_id, eos_token_id=clip_tokenizer.eos_token_id,
        pad_token_id=clip_tokenizer.pad_token_id,
    ))
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tokenizer), d_model=WIDTH, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    vae = AutoencoderKL(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
        latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=0.0609, scaling_factor=1.5035,
    )
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(), "vae": vae, "text_encoder": clip, "tokenizer": clip_tokenizer,
        "text_encoder_2": t5, "tokenizer_2": t5_tokenizer, "transformer": transformer,
    }


def build_tiny_flux(folder: Path, seed: int = 0) -> Path:
    """FLUX.1 [schnell]'s layout: text-to-image (the `gpu` portrait)."""
    from diffusers import FluxPipeline

    pipe = FluxPipeline(**_flux_components(folder, 4, seed))
    pipe.save_pretrained(folder)
    return Path(folder)


def build_tiny_flux_kontext(folder: Path, seed: int = 0) -> Path:
    """FLUX.1 Kontext [dev]'s layout: the photo's latents ride beside the noisy ones (same channels)."""
    from diffusers import FluxKontextPipeline

    pipe = FluxKontextPipeline(**_flux_components(folder, 4, seed), image_encoder=None, feature_extractor=None)
    pipe.save_pretrained(folder)
    return Path(folder)
