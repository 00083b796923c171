"""benchmarks/bench_gpu.py: its CPU dry run (tiny models, every part) keeps the GPU code paths alive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PARTS = ("photos", "clip_b32", "siglip2_so400m", "florence2_large", "qwen_image_edit")


def run_bench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "benchmarks.bench_gpu", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path}, timeout=900)  # fmt: skip


@pytest.mark.slow
def test_the_dry_run_measures_every_part_with_tiny_models_on_the_cpu(tmp_path):
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")  # `python -m benchmarks.bench_gpu` from a scratch folder
    (tmp_path / "tests").symlink_to(REPO / "tests")
    result = run_bench(tmp_path, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads((tmp_path / "runs" / "bench" / "gpu_dry_run.json").read_text())
    assert figures["dry_run"] is True and figures["device"].startswith("cpu")
    assert not [key for key in figures if key.endswith("_error")]
    for part in PARTS:
        assert figures[f"{part}_part_s"] > 0
    assert figures["photos_written"] == figures["sizes"]["photos"]
    for name in ("clip_b32", "siglip2_so400m"):
        assert figures[f"{name}_encode_only_img_s"] > 0 and figures[f"{name}_end_to_end_img_s"] > 0
    assert figures["florence2_large_captions_s_batch2"] > 0
    assert figures["qwen_reference_edit_s"] > 0 and figures["qwen_fast_series_1x1_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the benchmark runs instead of skipping")
def test_without_cuda_it_says_why_it_skipped_and_exits_0(tmp_path):
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")
    result = run_bench(tmp_path)
    assert result.returncode == 0 and "skipped: no CUDA device" in result.stdout
    assert "no CUDA device" in json.loads((tmp_path / "runs" / "bench" / "gpu.json").read_text())["skipped"]


def test_an_unknown_part_is_refused_naming_the_parts(tmp_path):
    (tmp_path / "benchmarks").symlink_to(REPO / "benchmarks")
    result = run_bench(tmp_path, "--dry-run", "--parts", "photos,nope")
    assert result.returncode == 2 and "nope" in result.stderr and "qwen_image_edit" in result.stderr
