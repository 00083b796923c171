"""Device and dtype selection: pure functions of what the machine reports, and this machine's answer."""

from __future__ import annotations

import pytest
import torch

from alienstay.encoders import load_encoder
from alienstay.runtime.devices import (
    DTYPES,
    DeviceUnavailable,
    Machine,
    probe,
    select_device,
    select_dtype,
)

CPU_ONLY = Machine(torch_version="2.x", cuda_build=None)
TWO_GPUS = Machine(cuda_devices=2, cuda_bf16=True, torch_version="2.x", cuda_build="12.4")
OLD_GPU = Machine(cuda_devices=1, cuda_bf16=False, torch_version="2.x", cuda_build="12.4")
MAC = Machine(mps=True, torch_version="2.x")


def test_this_machines_answer_is_what_torch_reports():
    here = probe()
    assert here.cuda_devices == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert here.torch_version == torch.__version__ and here.cuda_build == torch.version.cuda
    expected = "cuda" if here.cuda_devices else "mps" if here.mps else "cpu"
    assert select_device("auto", here) == expected
    assert select_dtype("auto", select_device("cpu", here), here) == "float32"


def test_the_machine_is_asked_once_a_process_and_free_memory_at_each_call(monkeypatch):
    from alienstay.runtime import devices

    devices._accelerators.cache_clear()
    asked = []
    real = torch.cuda.is_available
    monkeypatch.setattr(torch.cuda, "is_available", lambda: asked.append(1) or real())
    first, second = probe(), probe()
    assert len(asked) == 1 and first.cuda_devices == second.cuda_devices
    if first.cuda_devices:  # free memory is fresh: a real number each time
        assert all(free > 0 for free in second.cuda_free_bytes)


def test_auto_prefers_cuda_then_mps_then_the_cpu():
    assert select_device("auto", TWO_GPUS) == "cuda"
    assert select_device("auto", MAC) == "mps"
    assert select_device("auto", CPU_ONLY) == "cpu"
    assert select_device("cuda:1", TWO_GPUS) == "cuda:1" and select_device("CPU", TWO_GPUS) == "cpu"


def test_a_device_the_machine_lacks_is_refused_with_what_was_found_and_the_fix():
    with pytest.raises(DeviceUnavailable, match="CPU-only torch build") as error:
        select_device("cuda", CPU_ONLY)
    assert "--device cpu" in str(error.value) and "CUDA build of torch" in str(error.value)
    with pytest.raises(DeviceUnavailable, match="pick one of cuda:0..cuda:1"):
        select_device("cuda:2", TWO_GPUS)
    with pytest.raises(DeviceUnavailable, match="MPS is not available"):
        select_device("mps", CPU_ONLY)
    with pytest.raises(ValueError, match="auto | cpu | cuda | cuda:N | mps"):
        select_device("tpu", CPU_ONLY)


def test_auto_dtype_is_bfloat16_only_where_the_device_and_the_model_compute_in_it():
    assert select_dtype("auto", "cuda", TWO_GPUS) == "bfloat16"
    assert select_dtype("auto", "cuda", TWO_GPUS, supported=("float32",)) == "float32"  # e.g. the offline tagger
    assert select_dtype("auto", "cuda", OLD_GPU) == "float32"
    assert select_dtype("auto", "mps", MAC) == "float32" and select_dtype("auto", "cpu", TWO_GPUS) == "float32"
    assert select_dtype("int8", "cpu", CPU_ONLY) == "int8" and set(DTYPES) == {"float32", "bfloat16", "int8"}
    with pytest.raises(ValueError, match="runs in float32 only"):
        select_dtype("bfloat16", "cpu", CPU_ONLY, supported=("float32",))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
def test_the_tag_stage_refuses_cuda_here_before_loading_anything():
    with pytest.raises(DeviceUnavailable, match="--device cuda"):
        load_encoder("no-such-org/never-downloaded", device="cuda")  # refused before the resolver is asked
