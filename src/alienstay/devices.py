"""Where models run and in what precision, decided from what the machine reports.

:func:`probe` asks torch what this machine has; :func:`select_device` and
:func:`select_dtype` are pure functions of that answer and of what the user asked, so they
are tested on this machine's real answer and on any other machine described by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# float32 everywhere; bfloat16 halves memory (accelerators, recent CPUs); int8 is dynamic
# quantisation of the Linear layers, a CPU option. An encoder or captioner entry says which
# of these it supports.
DTYPES = ("float32", "bfloat16", "int8")
AUTO = "auto"
DEVICES_HELP = "auto | cpu | cuda | cuda:N | mps"


class DeviceUnavailable(ValueError):
    """The device asked for is not on this machine; the message names what was found and the fix."""


@dataclass(frozen=True)
class Machine:
    """What torch reports about the accelerators it can use."""

    cuda_devices: int = 0
    cuda_bf16: bool = False  # every visible CUDA device computes in bfloat16 (Ampere or newer)
    mps: bool = False  # Apple silicon's Metal backend
    torch_version: str = ""
    cuda_build: str | None = None  # the CUDA version torch was built with; None for a CPU-only build

    def describe(self) -> str:
        cuda = f"{self.cuda_devices} CUDA device(s)" if self.cuda_build else "a CPU-only torch build (no CUDA)"
        return f"torch {self.torch_version} with {cuda}, MPS {'available' if self.mps else 'not available'}"


def probe() -> Machine:
    """This machine's answer, from torch."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return Machine(
        cuda_devices=count,
        cuda_bf16=bool(count and torch.cuda.is_bf16_supported()),
        mps=mps,
        torch_version=torch.__version__,
        cuda_build=torch.version.cuda,
    )


def select_device(requested: str, machine: Machine) -> str:
    """`auto`: CUDA, then MPS, then the CPU; an explicit device only if the machine has it."""
    requested = requested.strip().lower()
    if requested == AUTO:
        return "cuda" if machine.cuda_devices else "mps" if machine.mps else "cpu"
    if requested == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if match:
        index = int(match.group(1) or 0)
        if index >= machine.cuda_devices:
            fix = ("install a CUDA build of torch on a machine with an NVIDIA GPU" if not machine.cuda_build
                   else f"pick one of cuda:0..cuda:{machine.cuda_devices - 1}" if machine.cuda_devices
                   else "check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
            raise DeviceUnavailable(
                f"--device {requested}: this machine has no such CUDA device ({machine.describe()}). "
                f"Run with --device cpu or --device auto, or {fix}."
            )
        return requested
    if requested == "mps":
        if not machine.mps:
            raise DeviceUnavailable(
                f"--device mps: MPS is not available here ({machine.describe()}). Run with --device cpu or --device auto."
            )
        return "mps"
    raise ValueError(f"--device {requested!r}: use {DEVICES_HELP}.")


def select_dtype(
    requested: str, device: str, machine: Machine, supported: tuple[str, ...] = DTYPES, what: str = "this model"
) -> str:
    """`auto`: bfloat16 on an accelerator that computes in it (and a model that runs in it), float32 otherwise."""
    if requested != AUTO:
        return check_dtype(requested, supported, what)
    # MPS is left at float32: its bfloat16 support depends on the macOS version.
    cuda_bf16 = device.startswith("cuda") and machine.cuda_bf16
    return "bfloat16" if cuda_bf16 and "bfloat16" in supported else "float32"


def check_dtype(dtype: str, supported: tuple[str, ...] = DTYPES, what: str = "this model") -> str:
    """`dtype` if it is known and `supported`; otherwise a ValueError that names the choices."""
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)} (or auto).")
    if dtype not in supported:
        raise ValueError(f"--dtype {dtype}: {what} runs in {', '.join(supported)} only; drop --dtype or pass one of those.")
    return dtype
