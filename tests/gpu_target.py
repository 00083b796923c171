"""The GPU test target's settings, shared by conftest.py and the tests that name a device.

``make test-gpu`` sets ALIENSTAY_TEST_DEVICE=cuda and runs ``pytest -m gpu``: the tests of the
modules below, with the stages' ``device=auto`` picking CUDA and the tests that name a device
passing :data:`TEST_DEVICE`.
"""

from __future__ import annotations

import os

# The test modules that run a model (tagging, captions, editors, maskers, stages, the guard):
# conftest.py puts the `gpu` marker on each of their tests, one entry a module.
GPU_TEST_MODULES = frozenset({
    "test_tagging", "test_editing", "test_editors_gpu", "test_owlsam", "test_stages", "test_faithfulness",
    "test_registries", "test_devices", "test_hardware",
})  # fmt: skip
GPU_TARGET = os.environ.get("ALIENSTAY_TEST_DEVICE", "").strip().lower() == "cuda"
TEST_DEVICE = "cuda" if GPU_TARGET else "cpu"  # what a test that names a device passes
