"""A tiny random Qwen-Image-Edit pipeline in the real repo's layout, built offline.

The transformer and the Qwen2.5-VL text encoder follow diffusers' own fast test
(tests/pipelines/qwenimage/test_qwenimage_edit.py). Three departures, each for a reason:
- the tokenizer is made here (diffusers fetches one from the hub): a byte-level BPE with every
  byte as a token and no merges, plus Qwen's special tokens, as transformers' Qwen2Tokenizer;
- the VAE downsamples 8x like the real one (diffusers' test: 4x) and is 4 channels wide: the
  pipeline encodes the photo at about 1 megapixel whatever the output size, and at 24 channels
  that encode alone takes ~10 s on this CPU (4 channels: ~1.5 s);
- the processor is our image-only Qwen2VLProcessor (alienstay.editing.qwen_processor), since
  the stock one cannot be built without torchvision. After ``save_pretrained`` the folder is put
  in the real repo's layout: model_index.json names transformers' Qwen2VLProcessor and
  processor/ holds preprocessor_config.json (the real file's keys) beside the tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alienstay.testing.tiny_pipelines import _bytes_to_unicode

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")  # fmt: skip
WIDTH = 16  # the text encoder's width = the transformer's joint attention width
# The vision tower's input: 14 px patches, at most 56x56 px (16 patches, 4 image tokens after the
# 2x2 merge) however large the conditioning image; the real repo allows 3136 to 12845056 px.
MIN_PIXELS, MAX_PIXELS = 28 * 28, 56 * 56


def build_tiny_qwen2_tokenizer(folder: Path):
    """A Qwen2Tokenizer over the 256 byte characters (no merges) and Qwen's special tokens."""
    from transformers import AutoTokenizer, Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(_bytes_to_unicode())}
    vocab.update({token: len(vocab) + i for i, token in enumerate(SPECIAL_TOKENS)})
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    folder = Path(folder)
    tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def _preprocessor_config() -> dict:
    """Qwen/Qwen-Image-Edit's processor/preprocessor_config.json, with the tiny pixel budget."""
    return {
        "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
    }  # fmt: skip


def _text_encoder(tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": WIDTH, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 2, "rope_theta": 1_000_000.0, "vocab_size": len(tokenizer),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "bos_token_id": None, "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>"),
        },
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": WIDTH},
        hidden_size=WIDTH, vocab_size=len(tokenizer), image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )  # fmt: skip
    return Qwen2_5_VLForConditionalGeneration(config)


def build_tiny_qwen_image_edit(folder: Path, seed: int = 0) -> Path:
    """Qwen-Image-Edit's layout: transformer, vae, text_encoder, tokenizer, processor, scheduler."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers.models.qwen2_vl import Qwen2VLImageProcessorPil

    from alienstay.editing.qwen_processor import (
        PROCESSOR_FOLDER,
        ImageOnlyQwen2VLProcessor,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = build_tiny_qwen2_tokenizer(folder / "_tokenizer_src")
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=3,
        joint_attention_dim=WIDTH, guidance_embeds=False, axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=4, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    )
    image_processor = Qwen2VLImageProcessorPil(**_preprocessor_config())
    pipe = QwenImageEditPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=_text_encoder(tokenizer), tokenizer=tokenizer,
        processor=ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer), transformer=transformer,
    )
    pipe.save_pretrained(folder)
    # The real repo's layout (see the module docstring): the stock class in the model index, the
    # image processor's config as preprocessor_config.json instead of our class's processor_config.json.
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2))
    processor_folder = folder / PROCESSOR_FOLDER
    (processor_folder / "processor_config.json").unlink()
    (processor_folder / "preprocessor_config.json").write_text(json.dumps(_preprocessor_config(), indent=2))
    return folder
