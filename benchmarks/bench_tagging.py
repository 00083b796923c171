"""The tag stage: encode-only rate and MFU, end to end vs encode-only, int8 vs fp32, memory, naive baseline.

Model: CLIP ViT-B/32 built from ``CLIPConfig()`` defaults with random weights (the compute of
the real openai/clip-vit-base-patch32), saved with ``save_pretrained`` and loaded through the
same resolver and encoder as real weights. Photos: synthetic 640x480 JPEGs on disk, as
preprocess writes them. Figures are ratios measured in this one run:

- encode-only images/s (pixel tensors ready) and its model-FLOPs utilisation against this
  machine's own fp32 matmul rate (``matmul_gflops``), FLOPs counted by torch's flop counter;
- end to end (files on disk -> tags.parquet + embeddings) as a share of encode-only;
- int8 (dynamic quantisation of the Linear layers) speed vs fp32, and agreement: image
  embedding cosine and the share of identical selected tags;
- peak memory of the reader/writer path for 100,000 catalog rows vs 1,000 (tiny encoder,
  each size in its own process);
- our end-to-end rate vs the naive per-image tagger (re-encodes every prompt of the
  vocabulary for each photo, one photo at a time), measured on a few photos.

    .venv/bin/python -m benchmarks.bench_tagging
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from benchmarks.common import matmul_gflops, peak_rss_mb, save

BATCH = 32
E2E_IMAGES = 320
NAIVE_IMAGES = 3
ROUNDS = 3


# ---- fixtures on disk ---------------------------------------------------------------------
def synthetic_photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Smooth shapes plus sensor-like noise: JPEG sizes close to real 640 px hotel photos."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = smooth + rng.normal(0, 6, size=smooth.shape).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_photos(folder: Path, count: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:06d}.jpg"
        synthetic_photo(i, size).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def prepared_catalog(ws, paths: list[Path]) -> None:
    """Catalog rows as preprocess leaves them: status ok, prepared_path set."""
    from alienstay.workspace import catalog as cat

    frame = pd.DataFrame(
        {
            "image_id": [f"img{i:07d}" for i in range(len(paths))],
            "split": "folder",
            "source": "folder",
            "path": [str(p) for p in paths],
            "prepared_path": [str(p) for p in paths],
            "status": cat.OK,
            "reason": "",
        }
    )
    ws.write_catalog(cat.conform(frame))


# ---- measurements --------------------------------------------------------------------------
def vision_gflops_per_image(encoder) -> float:
    """FLOPs of the image tower for one 224 px image, 2 per multiply-add (torch's counter):
    about 8.8 for ViT-B/32, the "4.4 GFLOPs" usually quoted being multiply-adds."""
    from torch.utils.flop_counter import FlopCounterMode

    pixels = torch.zeros(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter:
        encoder.encode_images(pixels)
    return counter.get_total_flops() / 1e9


def encode_rate(encoder, pixels: torch.Tensor, rounds: int = ROUNDS) -> float:
    encoder.encode_images(pixels)  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        encoder.encode_images(pixels)
        times.append(time.perf_counter() - start)
    return len(pixels) / statistics.median(times)


def end_to_end(ws_root: Path, paths: list[Path], encoder, vocab, workers: int = 1):
    """Files on disk -> tags.parquet; returns (images/s, tags, embeddings)."""
    from alienstay import tagging
    from alienstay.workspace.layout import Workspace

    ws = Workspace(ws_root).ensure()
    prepared_catalog(ws, paths)
    tagging.cached_word_embeddings(ws, encoder, vocab)  # text once per model: not part of the per-photo rate
    start = time.perf_counter()
    tagging.run_tagging(ws, encoder, vocab, batch_size=BATCH, workers=workers, show_progress=False)
    seconds = time.perf_counter() - start
    _, matrix, _ = tagging.read_embeddings(ws)
    return len(paths) / seconds, ws.read_tags(), matrix


def naive_rate(encoder, vocab, paths: list[Path]) -> float:
    """The public per-image tagger's loop: every prompt re-encoded for every photo, batch of one."""
    prompts = [p for w in vocab.words for p in w.prompts]
    transform = encoder.image_transform()
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            pixels = transform(image.convert("RGB"))[None]
        texts = encoder.encode_texts(prompts)
        image_embedding = encoder.encode_images(pixels)
        (image_embedding @ texts.T).softmax(dim=1)
    return len(paths) / (time.perf_counter() - start)


def high_water_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Unlike getrusage's ru_maxrss it is not inherited
    from the parent across fork + exec, so a child's figure is its own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def memory_run(rows: int) -> dict:
    """Child process: tag `rows` catalog rows (a few tiny JPEGs repeated) with a tiny CLIP; peak RSS."""
    from alienstay import tagging
    from alienstay.encoders.hf import load_hf_encoder
    from alienstay.vocabulary.words import load_vocabulary
    from alienstay.testing.tiny_models import build_tiny_clip
    from alienstay.workspace.layout import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = write_photos(tmp / "photos", 16, size=(64, 48))
        encoder, vocab = load_hf_encoder(str(build_tiny_clip(tmp / "tiny-clip"))), load_vocabulary()
        # A tiny model gains nothing from a second thread and a loaded machine makes OpenMP spin.
        torch.set_num_threads(1)
        ws = Workspace(tmp / "ws").ensure()
        prepared_catalog(ws, [photos[i % len(photos)] for i in range(rows)])
        before = high_water_rss_mb()
        start = time.perf_counter()
        summary = tagging.run_tagging(
            ws, encoder, vocab, batch_size=256, workers=2, rows_per_shard=4096, show_progress=False
        )
        seconds = time.perf_counter() - start
        return {
            "rows": rows,
            "tagged": summary.consolidated,
            "peak_rss_mb_before_tagging": before,
            "peak_rss_mb": high_water_rss_mb(),
            "seconds": seconds,
            "tags_parquet_mb": ws.tags_path.stat().st_size / 1e6,
        }


def measure_memory(rows: int) -> dict:
    output = subprocess.check_output(
        [sys.executable, "-m", "benchmarks.bench_tagging", "--memory", str(rows)],
        cwd=Path(__file__).resolve().parents[1],
        text=True,
    )
    return json.loads(output.strip().splitlines()[-1])


def selected_agreement(reference: pd.DataFrame, other: pd.DataFrame) -> tuple[float, float]:
    """Share of (image, word) selections equal, and share of photos whose whole tag set is equal."""
    merged = reference.merge(other, on=["image_id", "tag"], suffixes=("_a", "_b"))
    same = merged["selected_a"] == merged["selected_b"]
    per_image = same.groupby(merged["image_id"]).all()
    return float(same.mean()), float(per_image.mean())


def main() -> None:
    from alienstay.encoders.hf import cpu_threads, load_hf_encoder
    from alienstay.vocabulary.words import load_vocabulary

    figures: dict = {"cpu_threads": cpu_threads(), "batch": BATCH}
    # Memory first, each size in its own process (peak RSS of the reader/writer path).
    for rows in (1_000, 100_000):
        result = measure_memory(rows)
        figures[f"memory_{rows}_rows_peak_rss_mb"] = result["peak_rss_mb"]
        figures[f"memory_{rows}_rows_rss_before_tagging_mb"] = result["peak_rss_mb_before_tagging"]
        figures[f"memory_{rows}_rows_images_per_s"] = result["rows"] / result["seconds"]
    growth = {r: figures[f"memory_{r}_rows_peak_rss_mb"] - figures[f"memory_{r}_rows_rss_before_tagging_mb"] for r in (1_000, 100_000)}
    figures["memory_100k_over_1k_peak_rss"] = figures["memory_100000_rows_peak_rss_mb"] / figures["memory_1000_rows_peak_rss_mb"]
    figures["memory_kb_per_extra_catalog_row"] = (growth[100_000] - growth[1_000]) * 1024 / 99_000
    from alienstay.testing.tiny_models import (
        build_full_size_clip,  # the tests' tiny tokenizer on the full-size CLIP
    )

    vocab = load_vocabulary()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_full_size_clip(tmp / "clip-vit-b32")
        photos = write_photos(tmp / "photos", E2E_IMAGES)
        figures["photo_kb_mean"] = float(np.mean([p.stat().st_size for p in photos]) / 1024)

        fp32 = load_hf_encoder(str(model_dir))
        int8 = load_hf_encoder(str(model_dir), dtype="int8")
        transform = fp32.image_transform()
        pixels = torch.stack([transform(Image.open(p).convert("RGB")) for p in photos[:BATCH]])

        gflops = vision_gflops_per_image(fp32)
        figures["vision_gflops_per_image"] = gflops
        rate32, rate8, matmul = [], [], []
        for _ in range(2):  # interleaved, so a noisy neighbour hurts all three alike; best of each kept
            matmul.append(matmul_gflops())
            rate32.append(encode_rate(fp32, pixels))
            rate8.append(encode_rate(int8, pixels))
        figures["matmul_gflops"] = max(matmul)
        figures["encode_only_fp32_images_per_s"] = max(rate32)
        figures["encode_only_fp32_mfu"] = max(rate32) * gflops / max(matmul)
        figures["encode_only_int8_images_per_s"] = max(rate8)
        figures["int8_vs_fp32_encode_speed"] = max(rate8) / max(rate32)
        # One thread as well: on a machine shared with other jobs, two OpenMP threads on two
        # cores stall at every barrier when either core is taken, and one thread can win.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        figures["encode_only_fp32_1_thread_images_per_s"] = encode_rate(fp32, pixels)
        figures["encode_only_int8_1_thread_images_per_s"] = encode_rate(int8, pixels)
        torch.set_num_threads(threads)

        e2e32, tags32, emb32 = end_to_end(tmp / "ws-fp32", photos, fp32, vocab)
        figures["end_to_end_fp32_images_per_s"] = e2e32
        figures["end_to_end_fp32_share_of_encode_only"] = e2e32 / max(rate32)
        e2e8, tags8, emb8 = end_to_end(tmp / "ws-int8", photos, int8, vocab)
        figures["end_to_end_int8_images_per_s"] = e2e8
        figures["end_to_end_int8_share_of_encode_only"] = e2e8 / max(rate8)

        cosine = (emb32 * emb8).sum(axis=1)
        figures["int8_embedding_cosine_mean"] = float(cosine.mean())
        figures["int8_embedding_cosine_min"] = float(cosine.min())
        figures["int8_prob_max_abs_diff"] = float((tags32["prob"] - tags8["prob"]).abs().max())
        cells, photos_same = selected_agreement(tags32, tags8)
        figures["int8_selected_tags_identical_share"] = cells
        figures["int8_photos_with_identical_tag_sets"] = photos_same
        top1 = (tags32.loc[tags32["selected"], ["image_id", "tag"]].merge(
            tags8.loc[tags8["selected"], ["image_id", "tag"]]).shape[0] / max(int(tags32["selected"].sum()), 1))
        figures["int8_recall_of_fp32_selected_tags"] = top1

        naive = naive_rate(fp32, vocab, photos[:NAIVE_IMAGES])
        figures["naive_per_image_images_per_s"] = naive
        figures["ours_vs_naive_end_to_end"] = e2e32 / naive
        del fp32, int8

    figures["peak_rss_mb_this_process"] = peak_rss_mb()
    save("tagging", figures)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory":
        print(json.dumps(memory_run(int(sys.argv[2]))))
    else:
        main()
