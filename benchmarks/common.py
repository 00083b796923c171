"""What every benchmark shares: the machine's own matmul rate, peak memory, result files."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import torch

RESULTS = Path("runs/bench")


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """The fp32 rate this machine's BLAS reaches: the yardstick for model-FLOPs utilisation."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    seconds = time.perf_counter() - start
    return 2 * size**3 * repeats / seconds / 1e9


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save(name: str, figures: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"{name}.json"
    target.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    for key, value in figures.items():
        shown = f"{value:.3g}" if isinstance(value, float) else value
        print(f"  {key:<48} {shown}")
    return target
