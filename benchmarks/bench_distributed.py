"""The tag stage on Ray Data vs the local engine, on this one machine: the price of Ray's overhead.

Same photos, same tiny encoder (the tests' tiny CLIP, built for 224 px input so decoding and
resizing cost what they cost with real CLIP; the model itself is nearly free), same settings.
Figures, measured in this one run:

- images/s end to end (catalog -> tags.parquet + embeddings) for the local engine and for Ray
  (Ray already started; the run includes starting the encoder actors, as every run does);
- their ratio, and the seconds Ray takes to start on this machine;
- whether both engines wrote the same tags (a sanity check, not a timing).

On one machine Ray cannot be much faster: it runs the same work (one decoding process, one
encoder) on the same cores, plus scheduling, object-store copies and actor start-up. Its
speedup comes from more machines (each node adds decode tasks and encoder actors); this
benchmark shows what Ray costs, or not, where it cannot help.

    .venv/bin/python -m benchmarks.bench_distributed
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_tagging import prepared_catalog, write_photos
from benchmarks.common import save

IMAGES = 512
BATCH = 32


def tag_locally(ws, encoder, vocab) -> float:
    from alienstay import tagging

    start = time.perf_counter()
    tagging.run_tagging(ws, encoder, vocab, batch_size=BATCH, workers=1, show_progress=False)
    return time.perf_counter() - start


def tag_on_ray(ws, encoder, vocab) -> float:
    from alienstay.tagging.ray_engine import run_tagging_on_ray

    start = time.perf_counter()
    run_tagging_on_ray(ws, encoder, vocab, batch_size=BATCH, show_progress=False)
    return time.perf_counter() - start


def main() -> None:
    import ray

    from alienstay import tagging
    from alienstay.encoders import load_encoder
    from alienstay.vocabulary.words import load_vocabulary
    from alienstay.testing.tiny_models import build_tiny_clip
    from alienstay.workspace.layout import Workspace

    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        paths = write_photos(root / "photos", IMAGES)
        encoder = load_encoder(str(build_tiny_clip(root / "tiny-clip", image_size=224)))
        vocab = load_vocabulary()
        local_ws, ray_ws = Workspace(root / "local").ensure(), Workspace(root / "ray").ensure()
        for ws in (local_ws, ray_ws):
            prepared_catalog(ws, paths)
            tagging.cached_word_embeddings(ws, encoder, vocab)  # text once per model: not part of the rate

        local_seconds = tag_locally(local_ws, encoder, vocab)
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        ray_start_seconds = time.perf_counter() - start
        ray_seconds = tag_on_ray(ray_ws, encoder, vocab)
        ray.shutdown()

        local_tags, ray_tags = local_ws.read_tags(), ray_ws.read_tags()
        same = (
            local_tags["image_id"].equals(ray_tags["image_id"])
            and local_tags["selected"].equals(ray_tags["selected"])
            and np.allclose(local_tags["score"], ray_tags["score"], atol=1e-6)
        )
        save(
            "distributed",
            {
                "images": IMAGES,
                "local_images_per_s": IMAGES / local_seconds,
                "ray_images_per_s": IMAGES / ray_seconds,
                "ray_over_local_rate": local_seconds / ray_seconds,
                "ray_start_seconds": ray_start_seconds,
                "ray_extra_seconds_per_run": ray_seconds - local_seconds,
                "same_tags": bool(same),
                "note": "one 2-core machine, same cores for both engines: a ratio near 1 is all Ray can do here; "
                "its speedup needs more machines",
            },
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
