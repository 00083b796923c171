"""The editors' and portrait models' sizes: parameters and weight memory of the full-size configs.

No accelerator here, so no GPU timings are measured (none are claimed). What this CPU can say:
each part's parameter count, from the full-size architecture instantiated on the meta device
(accelerate's ``init_empty_weights``: nothing allocated), and the memory its weights need in
bf16, 8-bit and 4-bit. The configs are written out below from the repos' config.json files
(the hub cannot be reached from the test machines); the totals land on the published sizes
(FLUX.1 transformer ~12B, Qwen-Image ~20B, Qwen2.5-VL-7B ~8.3B), which checks the transcription.

Which GPU fits what (weights only, activations at 1024 px not measured; a part counts as
fitting when its weights take at most 85% of the card, the rest left for activations):
``all on GPU`` needs every part at once; ``CPU offload`` (``enable_model_cpu_offload``) needs
the largest part alone; a quantised transformer (bitsandbytes 4/8-bit) shrinks only that part.
`python -m benchmarks editors`
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.common import save

GB = 1e9
GPUS_GB = (16, 24, 48, 80)
HEADROOM = 0.85  # share of a card's memory the weights may take


def _flux_transformer(guidance: bool):
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                                  num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                                  guidance_embeds=guidance, axes_dims_rope=(16, 56, 56))


def _t5_xxl():
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
                                   feed_forward_proj="gated-gelu", is_encoder_decoder=False))


def _clip_l_text():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, projection_dim=768, vocab_size=49408))


def _flux_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
                         block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, use_quant_conv=False, use_post_quant_conv=False)


def _qwen_image_transformer():
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
                                       num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False,
                                       axes_dims_rope=(16, 56, 56))


def _qwen25_vl_7b():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584),
        vocab_size=152064, tie_word_embeddings=False,
    )
    return Qwen2_5_VLForConditionalGeneration(config)


def _qwen_vae():
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                  temperal_downsample=[False, True, True])


def _sd15_unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(in_channels=in_channels, sample_size=64)  # diffusers' defaults are SD 1.x's


def _sd_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                         block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4)


# method -> (model id, licence, {part: builder}); the first part is the one quantisation shrinks.
MODELS: dict[str, tuple[str, str, dict[str, Callable]]] = {
    "qwen-image-edit": ("Qwen/Qwen-Image-Edit", "Apache-2.0",
                        {"transformer": _qwen_image_transformer, "text_encoder": _qwen25_vl_7b, "vae": _qwen_vae}),
    "kontext": ("black-forest-labs/FLUX.1-Kontext-dev", "FLUX.1 [dev] non-commercial",
                {"transformer": lambda: _flux_transformer(True), "text_encoder_2": _t5_xxl,
                 "text_encoder": _clip_l_text, "vae": _flux_vae}),
    "flux-schnell (portrait)": ("black-forest-labs/FLUX.1-schnell", "Apache-2.0",
                                {"transformer": lambda: _flux_transformer(False), "text_encoder_2": _t5_xxl,
                                 "text_encoder": _clip_l_text, "vae": _flux_vae}),
    "instruct-pix2pix": ("timbrooks/instruct-pix2pix", "MIT",
                         {"unet": lambda: _sd15_unet(8), "text_encoder": _clip_l_text, "vae": _sd_vae}),
}


def count(build: Callable) -> int:
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on the meta device: shapes only, no memory
        model = build()
    return sum(p.numel() for p in model.parameters())


def fits(parts_gb: dict[str, float], gpu_gb: float) -> str:
    """The cheapest way the weights fit one card: all on it, with CPU offload, or not at all."""
    if sum(parts_gb.values()) <= HEADROOM * gpu_gb:
        return "all on GPU"
    if max(parts_gb.values()) <= HEADROOM * gpu_gb:
        return "CPU offload"
    return "no"


def figures_for(method: str) -> dict:
    model_id, licence, parts = MODELS[method]
    counts = {part: count(build) for part, build in parts.items()}
    main_part = next(iter(parts))
    row: dict = {f"{method}/{part}_params_B": n / 1e9 for part, n in counts.items()}
    row[f"{method}/total_params_B"] = sum(counts.values()) / 1e9
    for label, bytes_main in (("bf16", 2.0), ("8bit", 1.0), ("4bit", 0.5)):
        # Only the transformer is quantised (diffusers' bitsandbytes path); the rest stays bf16.
        parts_gb = {p: n * (bytes_main if p == main_part else 2.0) / GB for p, n in counts.items()}
        row[f"{method}/weights_GB_{label}"] = sum(parts_gb.values())
        row[f"{method}/largest_part_GB_{label}"] = max(parts_gb.values())
        for gpu in GPUS_GB:
            row[f"{method}/fits_{gpu}GB_{label}"] = fits(parts_gb, gpu)
    row[f"{method}/licence"] = licence
    row[f"{method}/model"] = model_id
    return row


def main() -> None:
    figures: dict = {"gpu_timings": "not measured: no accelerator on this machine"}
    for method in MODELS:
        figures.update(figures_for(method))
    save("editors", figures)


if __name__ == "__main__":
    main()
