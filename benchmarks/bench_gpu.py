"""On an accelerator: tagging end to end vs encode-only, diffusion steps and a series, peak memory.

Full-size architectures with random weights (the compute of the real models, no download):
CLIP ViT-B/32 (`cpu` tagger) and the `gpu` preset's tagger (ViT-L/14, until issue 11's SigLIP 2),
InstructPix2Pix (SD 1.5 UNet with 8 input channels, its VAE and a ViT-L text encoder) in fp16 at
512 px, which is also the `gpu` preset's editor until Qwen-Image-Edit lands. Figures:

- tag images/s end to end (JPEG files on disk -> tags.parquet through the tag stage, the
  DataLoader decoding on all cores) and encode-only (pixel batches ready on the GPU), and their ratio;
- seconds a denoising step (3 branches: InstructPix2Pix's text and image guidance) and seconds an
  8-photo x 3-value series (20 steps each, one pipeline call an edit, as the edit stage runs it);
- peak accelerator memory of each.

Where no CUDA device is present it prints that it was skipped and why, and exits 0.

    .venv/bin/python -m benchmarks.bench_gpu
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import save

TAG_IMAGES = 8192
ENCODE_ROUNDS = 20
PHOTOS, VALUES, STEPS, SIZE = 8, 3, 20, 512
# SD 1.5's text encoder (CLIP ViT-L/14's text tower)
TEXT_ENCODER = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12}
DEVICE = "cuda"  # a module constant, so the code paths can be dry-run on the CPU with small sizes


def skip_reason() -> str | None:
    from alienstay.devices import probe

    machine = probe()
    if machine.cuda_devices:
        return None
    return f"no CUDA device ({machine.describe()}): the GPU figures need an accelerator"


def clip_config(large: bool):
    from transformers import CLIPConfig

    if not large:
        return CLIPConfig()  # ViT-B/32 defaults
    return CLIPConfig(
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                       "num_hidden_layers": 24, "patch_size": 14, "image_size": 224},  # fmt: skip
        projection_dim=768,
    )


def build_clip(folder: Path, large: bool) -> Path:
    from tests.tiny_models import tiny_tokenizer
    from transformers import CLIPImageProcessor, CLIPModel

    tokenizer = tiny_tokenizer(max_length=77)
    config = clip_config(large)
    for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
        setattr(config.text_config, key, getattr(tokenizer, key))
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
    return folder


def sync() -> None:
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def encode_only(folder: Path, batch: int) -> tuple[float, float]:
    """Images/s of the image tower on ready pixel batches, and peak GiB."""
    from alienstay.encoders import load_encoder

    encoder = load_encoder(str(folder), device=DEVICE, dtype="auto")
    pixels = torch.randn(batch, 3, 224, 224, device=DEVICE)
    encoder.encode_images(pixels)
    torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(ENCODE_ROUNDS):
        encoder.encode_images(pixels)
    sync()
    return ENCODE_ROUNDS * batch / (time.perf_counter() - start), torch.cuda.max_memory_allocated() / 2**30


def end_to_end(folder: Path, photos: Path, work: Path) -> float:
    """Images/s of the tag stage from JPEG files to tags.parquet (ingest and preprocess not counted)."""
    from alienstay.stages import ingest_folder, preprocess, tag
    from alienstay.workspace import Workspace

    ws = Workspace(work).ensure()
    ingest_folder.run(ws, ingest_folder.IngestFolderSettings(photos))
    preprocess.run(ws, preprocess.PreprocessSettings(), show_progress=False)
    settings = tag.TagSettings(model=str(folder), device=DEVICE, workers=os.cpu_count() or 1, show_progress=False)
    start = time.perf_counter()
    summary = tag.run(ws, settings)
    return summary.tagged_now / (time.perf_counter() - start)


def tagging_figures(root: Path) -> dict:
    from alienstay.devices import batch_size_for, probe
    from benchmarks.bench_tagging import write_photos

    photos = root / "photos"
    write_photos(photos, TAG_IMAGES)
    figures: dict = {}
    batch = batch_size_for(DEVICE, probe())
    for name, large in (("clip_vit_b32", False), ("gpu_tagger_vit_l14", True)):
        folder = build_clip(root / name, large)
        rate, peak = encode_only(folder, batch)
        e2e = end_to_end(folder, photos, root / f"ws_{name}")
        figures.update({f"{name}_encode_only_img_s": rate, f"{name}_end_to_end_img_s": e2e,
                        f"{name}_end_to_end_vs_encode_only": e2e / rate, f"{name}_encode_peak_gib": peak})  # fmt: skip
    return figures


def ip2p_pipeline():
    """InstructPix2Pix at full size, random weights, fp16 on the GPU."""
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionInstructPix2PixPipeline
    from tests.tiny_pipelines import build_tiny_clip_tokenizer
    from transformers import CLIPTextConfig, CLIPTextModel

    from benchmarks.bench_editing import sd15_unet, sd15_vae

    tokenizer = build_tiny_clip_tokenizer(Path(tempfile.mkdtemp()) / "tokenizer")
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), max_position_embeddings=77, **TEXT_ENCODER))
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=sd15_vae(), text_encoder=text, tokenizer=tokenizer, unet=sd15_unet(8),
        scheduler=EulerAncestralDiscreteScheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(DEVICE, torch.float16)


def editing_figures() -> dict:
    from PIL import Image

    from alienstay.placement import seeded_generator

    pipe = ip2p_pipeline()
    image = Image.new("RGB", (SIZE, SIZE), (120, 110, 100))

    def edit(steps: int, seed: int) -> None:
        pipe(prompt="make it night", image=image, num_inference_steps=steps, guidance_scale=7.5,
             image_guidance_scale=1.6, generator=seeded_generator(seed))  # fmt: skip

    edit(2, 0)  # warm-up: kernels, allocator
    torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    edit(STEPS, 0)
    sync()
    one = time.perf_counter() - start
    short = time.perf_counter()
    edit(1, 0)
    sync()
    overhead = time.perf_counter() - short  # encode + one step + decode
    start = time.perf_counter()
    for seed in range(PHOTOS * VALUES):
        edit(STEPS, seed)
    sync()
    series = time.perf_counter() - start
    return {"ip2p_fp16_512px_step_s": (one - overhead) / (STEPS - 1), "ip2p_fp16_512px_edit_s": one,
            "ip2p_fp16_512px_series_8x3_s": series, "ip2p_fp16_512px_peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "gpu_preset_editor": "instruct-pix2pix (the same figures)"}  # fmt: skip


def main() -> None:
    reason = skip_reason()
    if reason:
        print(f"  skipped: {reason}")
        save("gpu", {"skipped": reason})
        return
    from alienstay.devices import describe_device, probe

    figures: dict = {"device": describe_device("cuda", probe()), "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(tagging_figures(Path(tmp)))
    figures.update(editing_figures())
    save("gpu", figures)


if __name__ == "__main__":
    main()
