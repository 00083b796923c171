"""On a CUDA GPU: the `gpu` preset's real members at full size with random weights, side by side.

Parts, each in its own process under its own timeout, the JSON (runs/bench/gpu.json) rewritten
after each one, so a part that hangs or fails costs only itself:

- ``photos``: 8,192 synthetic 640x480 JPEGs, written in parallel on every core;
- ``clip_b32`` and ``siglip2_so400m``: tag images/s end to end (JPEG files -> tags.parquet
  through the tag stage's reader, decoding on every core) and encode-only (pixel batches of
  the processor's own size ready on the GPU), and their ratio;
- ``florence2_large``: captions/s at 32 tokens, by batch size;
- ``qwen_image_edit``: the 20.4 B pipeline at 1024 px: one 50-step true-CFG edit (the quality
  reference), and the few-step path a fused Lightning LoRA gives (8 steps, CFG distilled away):
  one edit and an 8 photo x 3 value series; peak memory.

``--dry-run`` runs every part on the CPU with tiny models and sizes (a test does, so the code
paths stay alive). Without CUDA and without ``--dry-run`` it says why it skipped and exits 0.

    python -m benchmarks.bench_gpu [--dry-run] [--parts clip_b32,qwen_image_edit] [--budget-s 480]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.common import RESULTS, save


@dataclass(frozen=True)
class Sizes:
    full: bool
    device: str
    photos: int
    encode_rounds: int
    caption_batches: tuple[int, ...]
    caption_tokens: int
    series_photos: int
    values: int
    reference_steps: int
    fast_steps: int
    edit_px: int


FULL = Sizes(True, "cuda", 8192, 10, (64, 256), 32, 8, 3, 50, 8, 1024)
DRY = Sizes(False, "cpu", 16, 2, (2,), 4, 1, 1, 2, 2, 64)
WORK = RESULTS / "gpu_work"  # models and photos of one run, shared by its parts


def skip_reason() -> str | None:
    from alienstay.runtime.devices import probe

    machine = probe()
    return None if machine.cuda_devices else f"no CUDA device ({machine.describe()}): the GPU figures need an accelerator"


def sync(sizes: Sizes) -> None:
    if sizes.device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gib(sizes: Sizes) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if sizes.device.startswith("cuda") else 0.0


# ---- photos ------------------------------------------------------------------------------
def _write_chunk(args: tuple[str, int, int]) -> int:
    from benchmarks.bench_tagging import synthetic_photo

    folder, start, stop = args
    for i in range(start, stop):
        synthetic_photo(i).save(Path(folder) / f"photo_{i:06d}.jpg", format="JPEG", quality=90)
    return stop - start


def photos_part(sizes: Sizes) -> dict:
    folder = WORK / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    step = max(1, sizes.photos // (cores * 4))
    chunks = [(str(folder), i, min(i + step, sizes.photos)) for i in range(0, sizes.photos, step)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=cores) as pool:
        written = sum(pool.map(_write_chunk, chunks))
    return {"photos_written": written, "photos_write_s": time.perf_counter() - start, "cpu_cores": cores}


# ---- tagging -----------------------------------------------------------------------------
def encode_only(encoder, sizes: Sizes, batch: int) -> float:
    """Images/s of the image tower on pixel batches of the processor's own size, ready on the device."""
    from PIL import Image

    one = encoder.image_transform()(Image.new("RGB", (640, 480)))  # (3, H, W): 384 for so400m-384
    if one.dtype == torch.uint8:  # the lean transform's pixels, normalised on the device inside encode_images
        pixels = torch.randint(0, 256, (batch, *one.shape), dtype=torch.uint8, device=sizes.device)
    else:
        pixels = torch.randn(batch, *one.shape, device=sizes.device)
    encoder.encode_images(pixels)  # warm-up
    sync(sizes)
    start = time.perf_counter()
    for _ in range(sizes.encode_rounds):
        encoder.encode_images(pixels)
    sync(sizes)
    return sizes.encode_rounds * batch / (time.perf_counter() - start)


def end_to_end(encoder, sizes: Sizes, batch: int, name: str) -> float:
    """Images/s from JPEG files on disk to tags.parquet (the local engine, the reader on every core)."""
    from alienstay import tagging
    from alienstay.vocabulary.words import load_vocabulary
    from alienstay.workspace.layout import Workspace
    from benchmarks.bench_tagging import prepared_catalog

    paths = sorted((WORK / "photos").resolve().glob("*.jpg"))  # absolute: the catalog reads them from anywhere
    ws = Workspace(WORK / f"ws_{name}").ensure()
    prepared_catalog(ws, paths)
    vocab = load_vocabulary()
    tagging.cached_word_embeddings(ws, encoder, vocab)  # text once a model: not part of the per-photo rate
    sync(sizes)
    start = time.perf_counter()
    summary = tagging.run_tagging(ws, encoder, vocab, batch_size=batch, workers=os.cpu_count() or 1, show_progress=False)
    sync(sizes)
    seconds = time.perf_counter() - start
    if summary.tagged_now != len(paths):
        raise RuntimeError(f"{summary.tagged_now} of {len(paths)} photos tagged ({summary.failed_now} failed to decode)")
    return summary.tagged_now / seconds


def tagging_part(name: str, build: Callable[[Path, bool], Path]) -> Callable[[Sizes], dict]:
    def part(sizes: Sizes) -> dict:
        from alienstay.encoders import load_encoder
        from alienstay.runtime.devices import batch_size_for, probe

        folder = build(WORK / name, sizes.full)
        encoder = load_encoder(str(folder), device=sizes.device, dtype="auto")
        batch = batch_size_for(sizes.device, probe())
        if sizes.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        encode = encode_only(encoder, sizes, batch)
        e2e = end_to_end(encoder, sizes, batch, name)
        return {f"{name}_dtype": encoder.dtype, f"{name}_batch": batch, f"{name}_encode_only_img_s": encode,
                f"{name}_end_to_end_img_s": e2e, f"{name}_end_to_end_vs_encode_only": e2e / encode,
                f"{name}_peak_gib": peak_gib(sizes)}  # fmt: skip

    return part


def _siglip(folder: Path, full: bool) -> Path:
    from benchmarks.gpu_models import build_siglip

    return build_siglip(folder, full, "cuda" if full else "cpu")


def _clip(folder: Path, full: bool) -> Path:
    from benchmarks.gpu_models import build_clip_b32

    return build_clip_b32(folder, full)


# ---- captions ----------------------------------------------------------------------------
def florence_part(sizes: Sizes) -> dict:
    from alienstay.captioning.captioners import load_captioner
    from benchmarks.gpu_models import build_florence2

    folder = build_florence2(WORK / "florence2_large", sizes.full, sizes.device)
    captioner = load_captioner(f"florence2:{folder}", device=sizes.device, dtype="auto")
    side = captioner.image_processor.size["height"]
    figures: dict = {"florence2_large_dtype": captioner.dtype, "florence2_large_tokens": sizes.caption_tokens}
    def seconds(pixels: torch.Tensor, tokens: int) -> float:
        captioner.max_new_tokens = captioner.min_new_tokens = tokens
        sync(sizes)
        start = time.perf_counter()
        captioner.caption(pixels)
        sync(sizes)
        return time.perf_counter() - start

    for batch in sizes.caption_batches:
        pixels = torch.randn(batch, 3, side, side)
        seconds(pixels, sizes.caption_tokens)  # warm-up at this shape
        whole, first = seconds(pixels, sizes.caption_tokens), seconds(pixels, 1)
        figures[f"florence2_large_captions_s_batch{batch}"] = batch / whole
        # where the time goes: the encoders and one token, then each further token of the batch
        figures[f"florence2_large_encode_and_first_token_s_batch{batch}"] = first
        figures[f"florence2_large_per_token_ms_batch{batch}"] = 1e3 * (whole - first) / max(1, sizes.caption_tokens - 1)
    figures["florence2_large_peak_gib"] = peak_gib(sizes)
    return figures


# ---- edits -------------------------------------------------------------------------------
def edit_photos(sizes: Sizes) -> list:
    from PIL import Image

    from benchmarks.bench_tagging import synthetic_photo

    return [synthetic_photo(i).resize((sizes.edit_px, sizes.edit_px), Image.Resampling.BICUBIC)
            for i in range(sizes.series_photos)]  # fmt: skip


def qwen_part(sizes: Sizes) -> dict:
    from alienstay.runtime.placement import seeded_generator
    from benchmarks.gpu_models import (
        build_qwen_image_edit,
        lightning_scheduler,
        parameters_b,
    )

    start = time.perf_counter()
    pipe = build_qwen_image_edit(WORK / "qwen", sizes.full, sizes.device)
    sync(sizes)
    figures: dict = {"qwen_build_s": time.perf_counter() - start,
                     "qwen_transformer_params_b": parameters_b(pipe.transformer),
                     "qwen_text_encoder_params_b": parameters_b(pipe.text_encoder), "qwen_edit_px": sizes.edit_px}  # fmt: skip
    photos = edit_photos(sizes)
    values = ["make it night", "make it sunny", "make it foggy"][: sizes.values]

    def edit(photo, prompt: str, steps: int, cfg: float) -> float:
        begin = time.perf_counter()
        pipe(image=photo, prompt=prompt, negative_prompt=" ", true_cfg_scale=cfg, height=sizes.edit_px,
             width=sizes.edit_px, num_inference_steps=steps, generator=seeded_generator(0))  # fmt: skip
        sync(sizes)
        return time.perf_counter() - begin

    if sizes.full:
        edit(photos[0], values[0], 2, 4.0)  # warm-up: kernels, allocator
    if sizes.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    reference = edit(photos[0], values[0], sizes.reference_steps, 4.0)
    figures.update({"qwen_reference_steps": sizes.reference_steps, "qwen_reference_edit_s": reference,
                    "qwen_reference_series_8x3_s_estimated": reference * 24})  # fmt: skip
    pipe.scheduler = lightning_scheduler()
    figures.update({"qwen_fast_steps": sizes.fast_steps, "qwen_fast_edit_s": edit(photos[0], values[0], sizes.fast_steps, 1.0)})
    start = time.perf_counter()
    for photo in photos:
        for prompt in values:
            edit(photo, prompt, sizes.fast_steps, 1.0)
    figures[f"qwen_fast_series_{len(photos)}x{len(values)}_s"] = time.perf_counter() - start
    figures["qwen_peak_gib"] = peak_gib(sizes)
    return figures


# ---- orchestration -----------------------------------------------------------------------
# One entry a part: (function, timeout at full size in seconds). Order: cheap first, so a slow
# editor leaves the other figures standing.
PARTS: dict[str, tuple[Callable[[Sizes], dict], int]] = {
    "photos": (photos_part, 90),
    "clip_b32": (tagging_part("clip_b32", _clip), 120),
    "siglip2_so400m": (tagging_part("siglip2_so400m", _siglip), 150),
    "florence2_large": (florence_part, 120),
    "qwen_image_edit": (qwen_part, 330),
}


def run_part(name: str, sizes: Sizes) -> None:
    """In this process: one part; its figures (or its error) to runs/bench/gpu_work/<name>.json."""
    WORK.mkdir(parents=True, exist_ok=True)
    function, _ = PARTS[name]
    try:
        figures = function(sizes)
    except Exception as error:  # noqa: BLE001 - one part's failure is a figure of its own
        figures = {f"{name}_error": f"{type(error).__name__}: {error}"[:500]}
    (WORK / f"{name}.json").write_text(json.dumps(figures, default=float))


def run_all(sizes: Sizes, names: list[str], budget_s: float) -> dict:
    """Each part in its own process, under min(its timeout, what is left of the budget); JSON after each."""
    from alienstay.runtime.devices import describe_device, probe

    figures: dict = {"device": describe_device(sizes.device, probe()), "torch": torch.__version__,
                     "dry_run": not sizes.full, "sizes": asdict(sizes)}  # fmt: skip
    started = time.perf_counter()
    for name in names:
        left = budget_s - (time.perf_counter() - started)
        limit = min(PARTS[name][1], left) if sizes.full else left
        if limit <= 5:
            figures[f"{name}_error"] = f"not run: the {budget_s:.0f} s budget was spent"
            continue
        command = [sys.executable, "-m", "benchmarks.bench_gpu", "--part", name] + ([] if sizes.full else ["--dry-run"])
        begin = time.perf_counter()
        try:
            subprocess.run(command, timeout=limit, check=False)
            result = WORK / f"{name}.json"
            figures.update(json.loads(result.read_text()) if result.exists() else {f"{name}_error": "no result written"})
        except subprocess.TimeoutExpired:
            figures[f"{name}_error"] = f"timed out after {limit:.0f} s"
        figures[f"{name}_part_s"] = time.perf_counter() - begin
        save("gpu" if sizes.full else "gpu_dry_run", figures)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny models and sizes on the CPU (what CI runs)")
    parser.add_argument("--part", choices=list(PARTS), help="run one part in this process (the runner's child)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts (default: all)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole run")
    args = parser.parse_args(argv)
    sizes = DRY if args.dry_run else FULL
    if args.part:
        run_part(args.part, sizes)
        return 0
    reason = None if args.dry_run else skip_reason()
    if reason:
        print(f"  skipped: {reason}")
        save("gpu", {"skipped": reason})
        return 0
    names = [n.strip() for n in args.parts.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    figures = run_all(sizes, names, args.budget_s)
    return 1 if any(key.endswith("_error") for key in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
