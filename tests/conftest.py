"""Shared fixtures. The real sample photos are used in place from ../shared beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", REPO.parent / "shared" / "samples" / "unsplash"))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir() or not any(SAMPLES.glob("*.jpg")):
        pytest.skip(f"real sample photos not found at {SAMPLES} (set ALIENSTAY_SAMPLES)")
    return SAMPLES


@pytest.fixture
def workspace(tmp_path: Path):
    from alienstay.workspace import Workspace

    return Workspace(tmp_path / "ws").ensure()
