"""Where models run and in what precision, decided from what the machine reports.

:func:`probe` asks torch what this machine has; :func:`select_device` and
:func:`select_dtype` are pure functions of that answer and of what the user asked, so they
are tested on this machine's real answer and on any other machine described by hand.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

# float32 everywhere; bfloat16 halves memory (accelerators, recent CPUs); int8 is dynamic
# quantisation of the Linear layers, a CPU option. An encoder or captioner entry says which
# of these it supports.
DTYPES = ("float32", "bfloat16", "int8")
# Diffusion pipelines also run in float16 (SD 1.5's usual precision on GPUs without bfloat16).
PIPELINE_DTYPES = ("float32", "float16", "bfloat16")
KNOWN_DTYPES = DTYPES + ("float16",)
AUTO = "auto"
DTYPES_HELP = "auto | float32 | bfloat16 | float16 (pipelines) | int8 (dynamic quantisation, CPU)"
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
    cuda_names: tuple[str, ...] = ()  # one a visible CUDA device
    cuda_free_bytes: tuple[int, ...] = ()  # free memory of each, when probed
    cuda_total_bytes: tuple[int, ...] = ()

    def describe(self) -> str:
        cuda = f"{self.cuda_devices} CUDA device(s)" if self.cuda_build else "a CPU-only torch build (no CUDA)"
        return f"torch {self.torch_version} with {cuda}, MPS {'available' if self.mps else 'not available'}"


def probe() -> Machine:
    """This machine's answer, from torch. What the machine has is asked once a process (the CLI, the
    encoders, the presets and the placement all ask); free memory is read at each call, since it
    changes as models load."""
    machine = _accelerators()
    if not machine.cuda_devices:
        return machine
    import torch

    free = tuple(torch.cuda.mem_get_info(i)[0] for i in range(machine.cuda_devices))
    return replace(machine, cuda_free_bytes=free)


@functools.cache
def _accelerators() -> Machine:
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    memory = [torch.cuda.mem_get_info(i) for i in range(count)]
    return Machine(
        cuda_devices=count,
        cuda_bf16=bool(count and torch.cuda.is_bf16_supported()),
        mps=mps,
        torch_version=torch.__version__,
        cuda_build=torch.version.cuda,
        cuda_names=tuple(torch.cuda.get_device_name(i) for i in range(count)),
        cuda_free_bytes=tuple(free for free, _ in memory),
        cuda_total_bytes=tuple(total for _, total in memory),
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
    """`auto`: on CUDA bfloat16 where the GPU and the model compute in it, else float16 where the
    model runs in it; on MPS float16 where the model runs in it; float32 otherwise (the CPU)."""
    if requested != AUTO:
        return check_dtype(requested, supported, what)
    cuda = device.startswith("cuda")
    if cuda and machine.cuda_bf16 and "bfloat16" in supported:
        return "bfloat16"
    # MPS never gets bfloat16 by itself: its support depends on the macOS version.
    if (cuda or device == "mps") and "float16" in supported:
        return "float16"
    return "float32"


def check_dtype(dtype: str, supported: tuple[str, ...] = DTYPES, what: str = "this model") -> str:
    """`dtype` if it is known and `supported`; otherwise a ValueError that names the choices."""
    if dtype not in KNOWN_DTYPES:
        raise ValueError(f"--dtype {dtype!r}: use one of {', '.join(KNOWN_DTYPES)} (or auto).")
    if dtype not in supported:
        raise ValueError(f"--dtype {dtype}: {what} runs in {', '.join(supported)} only; drop --dtype or pass one of those.")
    return dtype


def device_index(device: str) -> int:
    return int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0


def free_memory(device: str, machine: Machine) -> int | None:
    """Free accelerator memory on `device` as probed, None where unknown (CPU, MPS)."""
    index = device_index(device)
    if device.startswith("cuda") and index < len(machine.cuda_free_bytes):
        return machine.cuda_free_bytes[index]
    return None


def needs_offload(device: str, machine: Machine, needed_bytes: int) -> bool:
    """Model CPU offload: only on CUDA, and only when the free memory is below what the model needs."""
    free = free_memory(device, machine)
    return free is not None and free < needed_bytes


def batch_size_for(device: str, machine: Machine) -> int:
    """The tag stage's default batch: 32 on the CPU (cache-sized), 64 on MPS, and on CUDA 256, or
    128 below 16 GB free (a ViT-L image batch of 256 in bf16 stays under ~4 GB of activations)."""
    if device.startswith("cuda"):
        free = free_memory(device, machine)
        return 128 if free is not None and free < 16 * 2**30 else 256
    return 64 if device == "mps" else 32


def describe_device(device: str, machine: Machine) -> str:
    """One line for the command to say what it runs on."""
    index = device_index(device)
    if device.startswith("cuda") and index < len(machine.cuda_names):
        name = machine.cuda_names[index]
        free = free_memory(device, machine)
        total = machine.cuda_total_bytes[index] if index < len(machine.cuda_total_bytes) else None
        memory = f", {free / 2**30:.1f} of {total / 2**30:.1f} GiB free" if free is not None and total else ""
        return f"{device} ({name}{memory})"
    if device == "mps":
        return "mps (Apple silicon)"
    return f"cpu ({machine.describe()})"
