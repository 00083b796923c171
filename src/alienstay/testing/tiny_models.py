"""Tiny random CLIP / SigLIP / BLIP folders in the hub's layout, built without any network.

They are saved with ``save_pretrained`` and loaded back through ``alienstay.runtime.models.resolve``:
the same code path as real weights. Their outputs are random but deterministic.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def tiny_tokenizer(max_length: int = 32):
    """A word-level tokenizer trained on the vocabulary's prompts (plus a few caption words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from alienstay.vocabulary.words import load_vocabulary

    corpus = [p for w in load_vocabulary().words for p in w.prompts] + ["a photo of a room with a bed"]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIAL))
    bos, eos = tokenizer.token_to_id("[BOS]"), tokenizer.token_to_id("[EOS]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", bos), ("[EOS]", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        model_max_length=max_length,
    )


def build_tiny_clip(folder: Path, image_size: int = 32, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=8,
        ),
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(folder)
    return Path(folder)


def build_full_size_clip(folder: Path, seed: int = 0) -> Path:
    """CLIP ViT-B/32 at full size (``CLIPConfig()`` defaults, random weights) with the tiny tokenizer:
    the compute of openai/clip-vit-base-patch32, for the benchmarks."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = tiny_tokenizer(max_length=77)
    torch.manual_seed(seed)
    config = CLIPConfig()
    config.text_config.eos_token_id = tokenizer.eos_token_id
    config.text_config.bos_token_id = tokenizer.bos_token_id
    config.text_config.pad_token_id = tokenizer.pad_token_id
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return Path(folder)


def build_tiny_siglip(folder: Path, image_size: int = 32, seed: int = 0) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer = tiny_tokenizer(max_length=16)
    torch.manual_seed(seed)
    config = SiglipConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=8,
        ),
    )
    SiglipModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    SiglipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return Path(folder)


def build_tiny_siglip2(folder: Path, patch_size: int = 8, max_num_patches: int = 16, seed: int = 0) -> Path:
    """SigLIP 2 NaFlex (``Siglip2Model``, model_type ``siglip2``). The fixed-resolution SigLIP 2
    checkpoints (google/siglip2-so400m-patch14-384, google/siglip2-base-patch16-224) are
    ``SiglipModel`` folders (model_type ``siglip``): :func:`build_tiny_siglip` stands in for them."""
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    tokenizer = tiny_tokenizer(max_length=16)
    torch.manual_seed(seed)
    config = Siglip2Config(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            patch_size=patch_size, num_patches=max_num_patches,
        ),
    )
    Siglip2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Siglip2ImageProcessor(patch_size=patch_size, max_num_patches=max_num_patches).save_pretrained(folder)
    return Path(folder)


def build_tiny_blip(folder: Path, image_size: int = 32, seed: int = 0) -> Path:
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
    )

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=32, encoder_hidden_size=32,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, sep_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=8,
        ),
        projection_dim=16,
    )
    BlipForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    BlipImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return Path(folder)


def build_full_size_blip(folder: Path, seed: int = 0) -> Path:
    """BLIP-base at full size (``BlipConfig()`` defaults: ViT-B/16 at 384 px + BERT-base, random
    weights) with the tiny tokenizer: the compute of Salesforce/blip-image-captioning-base."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
    )

    tokenizer = tiny_tokenizer(max_length=512)
    torch.manual_seed(seed)
    config = BlipConfig()
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(config.text_config, key, getattr(tokenizer, key))
    config.text_config.sep_token_id = tokenizer.eos_token_id
    BlipForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    BlipImageProcessor(size={"height": 384, "width": 384}).save_pretrained(folder)
    return Path(folder)


def florence2_tokenizer(max_length: int):
    """The tiny word tokenizer with the `<image>` token Florence-2's processor expects."""
    from transformers import PreTrainedTokenizerFast

    words = tiny_tokenizer(max_length=max_length).backend_tokenizer
    words.add_special_tokens(["<image>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=max_length, extra_special_tokens={"image_token": "<image>"},
    )


def build_tiny_florence2(folder: Path, image_size: int = 64, seed: int = 0) -> Path:
    """Florence-2 (DaViT vision tower + BART) with random weights; the processor's tokenizer
    carries the `<image>` token the real one has."""
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tokenizer = florence2_tokenizer(max_length=64)
    torch.manual_seed(seed)
    config = Florence2Config(
        vision_config=dict(
            depths=[1, 1, 1, 1], embed_dim=[8, 16, 32, 32], num_heads=[1, 2, 2, 2], num_groups=[1, 2, 2, 2],
            window_size=2, projection_dim=32, drop_path_rate=0.0,
        ),
        text_config=dict(
            model_type="bart", vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
            max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_id=tokenizer.image_token_id,
    )
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(
        size={"height": image_size, "width": image_size}, crop_size={"height": image_size, "width": image_size},
        do_center_crop=False,
    )
    image_processor.image_seq_length = (image_size // 32) ** 2 + 1  # DaViT strides 32, plus one pooled token
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return Path(folder)


def build_full_size_florence2(folder: Path, seed: int = 0) -> Path:
    """Florence-2-base at full size (``Florence2Config()`` defaults: DaViT + BART-base, 768 px,
    random weights) with the tiny tokenizer: the compute of Florence-2-base, for the benchmarks."""
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tokenizer = florence2_tokenizer(max_length=1024)
    torch.manual_seed(seed)
    # Florence2Config()'s text defaults are BART-large (498M in all); Florence-2-base's text model
    # is BART-base sized (d_model 768, 6 + 6 layers) with a 51,289-token vocabulary: ~232M in all.
    config = Florence2Config(
        vision_config=dict(projection_dim=768),
        text_config=dict(
            model_type="bart", vocab_size=51289, d_model=768, encoder_layers=6, decoder_layers=6,
            encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
            max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        ),
        image_token_id=tokenizer.image_token_id,
    )
    Florence2ForConditionalGeneration(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(
        size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768}, do_center_crop=False
    )
    image_processor.image_seq_length = 577  # 24 x 24 DaViT tokens + 1, as florence-community/Florence-2-base
    Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return Path(folder)


def prepared_workspace(root: Path, samples: Path):
    """A workspace with the real sample photos ingested and preprocessed, through the CLI."""
    from typer.testing import CliRunner

    from alienstay.cli.commands import app
    from alienstay.workspace.layout import Workspace

    runner = CliRunner()
    for command in (["ingest", "folder", str(samples)], ["preprocess"]):
        result = runner.invoke(app, [*command, "--workspace", str(root)])
        assert result.exit_code == 0, result.output
    return Workspace(root)
