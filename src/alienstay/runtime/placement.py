"""Putting a diffusion pipeline on its device: precision, and model CPU offload when memory is short.

Offload keeps each sub-model on the CPU until the pipeline calls it, so a pipeline that does
not fit in the free GPU memory still runs (slower) instead of failing with out-of-memory. It is
switched on by itself when the probed free memory is below what the pipeline needs, and the
command says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from alienstay.runtime.devices import (
    Machine,
    device_index,
    free_memory,
    needs_offload,
    probe,
)

log = logging.getLogger("alienstay")
# Weights are most of a 512 px pipeline's peak; the rest (activations, VAE decode, the CUDA
# context) is covered by this factor and a fixed margin, as measured for SD 1.5 in fp16.
HEADROOM, MARGIN_BYTES = 1.3, 1 * 2**30


@dataclass(frozen=True)
class Placed:
    device: str
    dtype: str
    offload: bool = False
    reason: str = ""  # why offload is on, said once by the command

    def record(self) -> dict[str, str]:
        return {"device": self.device, "dtype": self.dtype}


def weight_bytes(pipe: Any) -> int:
    """Bytes of every torch sub-model of a pipeline (UNet, VAE, text encoder, ControlNet...)."""
    modules = [c for c in getattr(pipe, "components", {}).values() if isinstance(c, torch.nn.Module)]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def needed_bytes(pipe: Any) -> int:
    return int(weight_bytes(pipe) * HEADROOM) + MARGIN_BYTES


def place_pipeline(
    pipe: Any, device: str = "cpu", dtype: str = "float32", cpu_offload: bool = False, machine: Machine | None = None
) -> Placed:
    """Cast `pipe` to `dtype`, then move it to `device`, or offload it where asked or where memory is short."""
    machine = machine or probe()
    pipe.to(dtype=getattr(torch, dtype))
    if not device.startswith("cuda"):
        if cpu_offload:
            log.warning("--cpu-offload needs a CUDA GPU; on %s everything stays on that device.", device)
        pipe.to(device)
        return Placed(device, dtype)
    need = needed_bytes(pipe)
    if cpu_offload or needs_offload(device, machine, need):
        free = free_memory(device, machine) or 0
        reason = ("--cpu-offload" if cpu_offload else
                  f"{free / 2**30:.1f} GiB free on {device} < {need / 2**30:.1f} GiB the pipeline needs")  # fmt: skip
        pipe.enable_model_cpu_offload(gpu_id=device_index(device))
        log.warning("model CPU offload on (%s): slower, but it fits.", reason)
        return Placed(device, dtype, offload=True, reason=reason)
    pipe.to(device)
    return Placed(device, dtype)


def edit_placement(device: str = "auto", dtype: str = "auto", machine: Machine | None = None) -> tuple[str, str]:
    """The concrete device and dtype of a diffusion pipeline (fp16/bf16 on a GPU, fp32 on the CPU)."""
    from alienstay.runtime.devices import PIPELINE_DTYPES, select_device, select_dtype

    machine = machine or probe()
    chosen = select_device(device, machine)
    return chosen, select_dtype(dtype, chosen, machine, PIPELINE_DTYPES, "a diffusion pipeline")


def seeded_generator(seed: int) -> torch.Generator:
    """Seeds live on the CPU on every device: diffusers draws the initial noise there and moves it,
    so one seed gives the same starting latents on a laptop and on a GPU."""
    return torch.Generator(device="cpu").manual_seed(seed)


def placement_of(editor: Any) -> dict[str, str]:
    """Where an editor runs, for its output rows: its pipeline's device and dtype; numpy on the CPU otherwise."""
    placed = getattr(getattr(editor, "pipe", None), "alienstay_placed", None)
    if isinstance(placed, Placed):
        return placed.record()
    return {"device": "cpu", "dtype": "float32"}
