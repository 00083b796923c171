"""Shared fixtures. The real sample photos are used in place from ../shared beside the checkout.

The GPU target (``make test-gpu``: ``ALIENSTAY_TEST_DEVICE=cuda pytest -m gpu``) runs every test
of the modules in GPU_TEST_MODULES (those that run a model), with the stages' ``device=auto`` picking
CUDA and the tests that name a device taking the ``test_device`` fixture. Without a CUDA device it
skips them, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", REPO.parent / "shared" / "samples" / "unsplash"))
# The test modules that run a model (tagging, captions, editors, maskers, stages, the guard):
# the `gpu` marker is put on each of their tests here, one entry a module.
GPU_TEST_MODULES = frozenset({
    "test_tagging", "test_editing", "test_editors_gpu", "test_owlsam", "test_stages", "test_faithfulness",
    "test_registries", "test_devices", "test_hardware", "test_reader",
})  # fmt: skip
GPU_TARGET = os.environ.get("ALIENSTAY_TEST_DEVICE", "").strip().lower() == "cuda"


def share_cores_between_workers() -> int:
    """Under pytest-xdist, each worker gets its share of the cores for torch's thread pool.

    Every model loader sized torch's pool to all the cores (encoders.hf.cpu_threads), so 12
    workers ran 12 x 16 threads on 16 cores, and the CPU-side work (VAE group norms, classical
    edits) crawled past 60 s a test. OMP_NUM_THREADS is what cpu_threads honours, in this worker
    and in the processes it starts."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if workers <= 1:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // workers)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return threads


share_cores_between_workers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = pytest.mark.gpu
    missing = None
    if GPU_TARGET:
        import torch

        if not torch.cuda.is_available():
            missing = pytest.mark.skip(reason=f"ALIENSTAY_TEST_DEVICE=cuda but torch {torch.__version__} sees no CUDA "
                                              "device: the GPU target needs an NVIDIA GPU (make test runs on the CPU)")
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in GPU_TEST_MODULES:
            item.add_marker(gpu)
            if missing:
                item.add_marker(missing)


def missing_samples_message(samples: Path = SAMPLES) -> str | None:
    """Why the sample photos cannot be used, or None when they can."""
    if not samples.is_dir() or not any(samples.glob("*.jpg")):
        return f"real sample photos not found at {samples} (set ALIENSTAY_SAMPLES, or check out ../shared beside the repository)"
    return None


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    missing = missing_samples_message()
    if missing and on_ci():
        # On CI a skip would count as a pass: every model, edit, guard, Ray and notebook test
        # needs the photos, so their absence fails the run, naming the folder.
        pytest.fail(f"CI is set and {missing}", pytrace=False)
    if missing:
        pytest.skip(missing)  # locally: skipped, with the reason
    return SAMPLES


@pytest.fixture(scope="session")
def test_device() -> str:
    """`cuda` under the GPU target, `cpu` otherwise: what a test that names its device passes."""
    return "cuda" if GPU_TARGET else "cpu"


@pytest.fixture
def workspace(tmp_path: Path):
    from alienstay.workspace.layout import Workspace

    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture(scope="session")
def prepared(samples_dir: Path, tmp_path_factory):
    """The sample photos through the real stages (ingest folder, then preprocess), once a session."""
    from alienstay.testing.tiny_models import prepared_workspace

    return prepared_workspace(tmp_path_factory.mktemp("samples") / "ws", samples_dir)


@pytest.fixture
def ws(prepared, tmp_path: Path):
    """A fresh workspace with the prepared one's catalog (its prepared photos shared, read-only)."""
    from alienstay.workspace.layout import Workspace

    fresh = Workspace(tmp_path / "ws").ensure()
    fresh.write_catalog(prepared.read_catalog())
    return fresh
