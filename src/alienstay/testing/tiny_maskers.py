"""Tiny random OWLv2 and SAM folders in the hub's layout, built offline, for the owlv2-sam masker.

Saved with ``save_pretrained`` (with their PIL image processors and OWLv2's tokenizer) and loaded
back through ``alienstay.runtime.models.resolve`` by the masker's own loader: the code path real weights
take. Their boxes and masks are random but deterministic.
"""

from __future__ import annotations

from pathlib import Path

import torch

from alienstay.testing.tiny_pipelines import build_tiny_clip_tokenizer

OWL_TEXT_LENGTH = 16  # OWLv2's text tower reads 16 tokens (as the real models)


def build_tiny_owlv2(folder: Path, image_size: int = 64, seed: int = 0) -> Path:
    """A 2-layer OWLv2 on a 4x4 patch grid (16 candidate boxes) with a CLIP tokenizer."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection
    from transformers.models.owlv2 import Owlv2ImageProcessorPil

    folder = Path(folder)
    tokenizer = build_tiny_clip_tokenizer(folder / "_tokenizer_src", max_length=OWL_TEXT_LENGTH)
    torch.manual_seed(seed)
    config = Owlv2Config(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=OWL_TEXT_LENGTH, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=image_size // 4),
        projection_dim=32,
    )  # fmt: skip
    model = Owlv2ForObjectDetection(config)
    # Random box-head weights push every box into the sigmoid's tails (zero-height boxes); with its
    # last layer's weights at zero the boxes are OWLv2's own per-patch prior boxes plus a random offset.
    with torch.no_grad():
        model.box_head.dense2.weight.zero_()
        model.box_head.dense2.bias.normal_(std=0.1)
    model.save_pretrained(folder)
    Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_sam(folder: Path, image_size: int = 64, seed: int = 0) -> Path:
    """A 2-layer SAM (16-wide prompt encoder and mask decoder) at 64 px, its masks at 16 px before upsampling."""
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam import SamImageProcessorPil

    torch.manual_seed(seed)
    config = SamConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=16, output_channels=16, num_pos_feats=8, window_size=2,
                           global_attn_indexes=[1], mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=16, image_size=image_size, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16),
    )  # fmt: skip
    SamModel(config).save_pretrained(folder)
    processor = SamImageProcessorPil(size={"longest_edge": image_size}, pad_size={"height": image_size, "width": image_size},
                                     mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})  # fmt: skip
    SamProcessor(image_processor=processor).save_pretrained(folder)
    return Path(folder)
