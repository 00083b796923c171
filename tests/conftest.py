"""Shared fixtures. The real sample photos are used in place from ../shared beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", REPO.parent / "shared" / "samples" / "unsplash"))


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


@pytest.fixture
def workspace(tmp_path: Path):
    from alienstay.workspace import Workspace

    return Workspace(tmp_path / "ws").ensure()


@pytest.fixture(scope="session")
def prepared(samples_dir: Path, tmp_path_factory):
    """The sample photos through the real stages (ingest folder, then preprocess), once a session."""
    from tiny_models import prepared_workspace

    return prepared_workspace(tmp_path_factory.mktemp("samples") / "ws", samples_dir)


@pytest.fixture
def ws(prepared, tmp_path: Path):
    """A fresh workspace with the prepared one's catalog (its prepared photos shared, read-only)."""
    from alienstay.workspace import Workspace

    fresh = Workspace(tmp_path / "ws").ensure()
    fresh.write_catalog(prepared.read_catalog())
    return fresh
