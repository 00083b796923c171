"""Seconds a caption on this CPU: Florence-2-base against BLIP-base, both full-size configs with
random weights (no hub here), on the sample photos, through the caption stage's own loaders.

`python -m benchmarks captions`. Each model writes exactly TOKENS new tokens a caption
(min = max), so the figure is the cost of a caption of that length, not of what random
weights happen to say; Florence-2's real detailed captions run longer (see docs/tagging.md).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import peak_rss_mb, save

SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples" / "unsplash"))
PHOTOS = 2  # a couple of captions each keeps the benchmark to a few minutes on 2 shared cores
TOKENS = 32


def seconds_a_caption(folder: Path, photos: list[Path]) -> tuple[float, int]:
    from alienstay.captioning.captioners import load_captioner

    captioner = load_captioner(str(folder))
    captioner.min_new_tokens = captioner.max_new_tokens = TOKENS
    transform = captioner.image_transform()
    pixels = [transform(Image.open(p).convert("RGB"))[None] for p in photos]
    captioner.caption(pixels[0])  # warm-up: first-call allocations are not a caption's cost
    start = time.perf_counter()
    for one in pixels:  # one photo at a time: the latency a user waits for
        captioner.caption(one)
    params = sum(p.numel() for p in captioner.model.parameters())
    return (time.perf_counter() - start) / len(pixels), params


def main() -> None:
    from alienstay.testing.tiny_models import (
        build_full_size_blip,
        build_full_size_florence2,
    )

    photos = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:PHOTOS]
    if len(photos) < PHOTOS:
        raise SystemExit(f"need {PHOTOS} photos in {SAMPLES}: set ALIENSTAY_SAMPLES to a folder of photos.")
    figures: dict = {"threads": torch.get_num_threads(), "photos": len(photos), "new_tokens_a_caption": TOKENS}
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("blip_base", build_full_size_blip), ("florence2_base", build_full_size_florence2)):
            seconds, params = seconds_a_caption(build(Path(tmp) / name), photos)
            figures[f"{name}_seconds_a_caption"] = seconds
            figures[f"{name}_params_millions"] = params / 1e6
    figures["florence2_over_blip_time_ratio"] = figures["florence2_base_seconds_a_caption"] / figures["blip_base_seconds_a_caption"]
    figures["peak_rss_mb"] = peak_rss_mb()
    save("captions", figures)


if __name__ == "__main__":
    main()
