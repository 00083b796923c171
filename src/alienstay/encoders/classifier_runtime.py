"""Runtimes for an ImageNet classifier on CPU: eager PyTorch, channels-last, ONNX Runtime.

ONNX Runtime is several times faster on CPU (PyTorch's depthwise convolutions are slow there);
it is used only when it agrees with eager PyTorch on a probe batch.
"""

from __future__ import annotations

import io
import logging
import warnings

import torch

log = logging.getLogger("alienstay")

# Agreement an accelerated classifier must show with eager PyTorch on the probe batch.
MAX_LOGIT_DIFF = 1e-3
BACKENDS = ("auto", "onnxruntime", "channels_last", "eager")
DEFAULT_PROBE_SIZE = 224


class ClassifierRunner:
    """Pixels (B, 3, S, S) -> ImageNet logits (B, 1000) through one runtime."""

    name = "eager"

    def __init__(self, model: torch.nn.Module, device: str = "cpu"):
        self.model = model.to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels.to(self.device))


class ChannelsLastRunner(ClassifierRunner):
    """Eager PyTorch in NHWC memory order: oneDNN's depthwise kernels are much faster there."""

    name = "channels_last"

    def __init__(self, model: torch.nn.Module, device: str = "cpu"):
        super().__init__(model.to(memory_format=torch.channels_last), device)

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels.to(self.device).contiguous(memory_format=torch.channels_last))


class OnnxRuntimeRunner:
    """The classifier exported to ONNX (in memory) and run by ONNX Runtime's CPU kernels."""

    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, image_size: int = DEFAULT_PROBE_SIZE):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        # Idle ORT threads would otherwise spin and steal the cores that decode the next batch.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            export_onnx(model, image_size), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        array = pixels.detach().cpu().float().contiguous().numpy()
        (logits,) = self.session.run(None, {"pixels": array})
        return torch.from_numpy(logits)


def export_onnx(model: torch.nn.Module, image_size: int = DEFAULT_PROBE_SIZE) -> bytes:
    """ONNX bytes with a dynamic batch axis, by the TorchScript exporter (needs no onnxscript)."""
    buffer = io.BytesIO()
    probe = torch.zeros(1, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            (probe,),
            buffer,
            dynamo=False,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return buffer.getvalue()


def build_classifier_runner(
    model: torch.nn.Module, backend: str = "auto", device: str = "cpu", image_size: int = DEFAULT_PROBE_SIZE
):
    """The requested runtime; `auto` takes ONNX Runtime on CPU if it agrees with eager, else channels-last."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "eager":
        return ClassifierRunner(model, device)
    if backend == "channels_last" or (backend == "auto" and device != "cpu"):
        return ChannelsLastRunner(model, device)
    try:
        runner = OnnxRuntimeRunner(model, image_size)
    except Exception as error:  # onnxruntime missing or the export failed: eager still works
        if backend == "onnxruntime":
            raise
        log.warning("offline tagger: ONNX Runtime unavailable (%s); using PyTorch channels-last", error)
        return ChannelsLastRunner(model, device)
    agreement = compare_runners(ClassifierRunner(model), runner, probe_pixels(size=image_size))
    if agreement["max_abs_logit_diff"] > MAX_LOGIT_DIFF or not agreement["same_top5"]:
        if backend == "onnxruntime":
            raise RuntimeError(f"ONNX Runtime disagrees with eager PyTorch: {agreement}")
        log.warning("offline tagger: ONNX Runtime disagrees with PyTorch (%s); using PyTorch", agreement)
        return ChannelsLastRunner(model, device)
    return runner


def probe_pixels(batch: int = 2, seed: int = 0, size: int = DEFAULT_PROBE_SIZE) -> torch.Tensor:
    """A fixed batch of smooth random images in the classifier's input range, for agreement checks."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 14, 14, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


def compare_runners(reference, candidate, pixels: torch.Tensor | None = None) -> dict[str, float | bool]:
    """Max absolute logit difference and whether the top-5 classes match on every image."""
    pixels = probe_pixels() if pixels is None else pixels
    expected, actual = reference(pixels).float(), candidate(pixels).float()
    same_top5 = bool((expected.topk(5, dim=-1).indices == actual.topk(5, dim=-1).indices).all())
    return {"max_abs_logit_diff": float((expected - actual).abs().max()), "same_top5": same_top5}
