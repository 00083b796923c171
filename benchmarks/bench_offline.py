"""The offline ConSE tagger: speed of each classifier runtime against CLIP ViT-B/32, and its quality.

Speed: images/s at batch 32 for the classifier alone through eager PyTorch, channels-last,
BatchNorm folded into the convolutions + channels-last, and ONNX Runtime (with each one's
agreement with eager), then end to end (encode_images with ConSE; encode_with_features, which adds
the class head's features: log class probabilities and pixel statistics; and JPEG decode + transform +
encode_images), all against CLIP ViT-B/32's image tower built from its default config with random
weights (the same compute as trained weights), measured in the same run. Paths are timed in
interleaved rounds and the median kept, so a noisy neighbour hurts all of them alike.

Quality: for the real sample photos and scikit-image's real photos, the top ImageNet classes and
the top vocabulary words of each facet with their probabilities at the encoder's logit scale,
and the cosine spreads within facets that the logit scale was chosen for.

    .venv/bin/python -m benchmarks.bench_offline
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import peak_rss_mb, save

BATCH = 32
ROUNDS = 3
MATMUL_SIZE = 1024
SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples" / "unsplash"))
SKIMAGE_PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]  # skimage's "cat" is chelsea again


def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of EfficientNet-Lite with every BatchNorm folded into the convolution before it."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    def fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.nn.Identity:
        conv.weight, conv.bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        return torch.nn.Identity()

    model = copy.deepcopy(model)
    model._bn0 = fold(model._conv_stem, model._bn0)
    for block in model._blocks:
        if hasattr(block, "_expand_conv"):
            block._bn0 = fold(block._expand_conv, block._bn0)
        block._bn1 = fold(block._depthwise_conv, block._bn1)
        block._bn2 = fold(block._project_conv, block._bn2)
    model._bn1 = fold(model._conv_head, model._bn1)
    return model


def gflops_per_image(forward: Callable[[torch.Tensor], object], size: int) -> float:
    """FLOPs of one size x size image as PyTorch's own counter sees them (2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        forward(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def median_seconds(paths: dict[str, Callable[[], object]], rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds a call of each path: one warm-up call, then `rounds` interleaved timed calls, median."""
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    with torch.inference_mode():
        for call in paths.values():
            call()
        for _ in range(rounds):
            for name, call in paths.items():
                start = time.perf_counter()
                call()
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def speed_figures(encoder, pixels: torch.Tensor) -> dict:
    from transformers import CLIPConfig, CLIPModel

    from alienstay.encoders.offline import (
        ChannelsLastRunner,
        ClassifierRunner,
        OnnxRuntimeRunner,
        compare_runners,
        load_imagenet_classifier,
    )

    eager = ClassifierRunner(load_imagenet_classifier())
    runners = {
        "eager": eager,
        "channels_last": ChannelsLastRunner(load_imagenet_classifier()),
        "fused_channels_last": ChannelsLastRunner(fold_batch_norms(load_imagenet_classifier())),
        "onnxruntime": OnnxRuntimeRunner(load_imagenet_classifier(), encoder.image_model.image_size),
    }
    clip = CLIPModel(CLIPConfig()).eval()
    size = clip.config.vision_config.image_size  # 224; the offline classifier reads its own (Lite1: 240)
    clip_pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
    jpegs = sorted(SAMPLES.glob("*.jpg"))
    jpeg_batch = [jpegs[i % len(jpegs)] for i in range(BATCH)] if jpegs else []
    transform = encoder.image_transform()

    def decode_and_encode() -> torch.Tensor:
        return encoder.encode_images(torch.stack([transform(Image.open(path)) for path in jpeg_batch]))

    paths: dict[str, Callable[[], object]] = {f"classifier_{name}": (lambda r=runner: r(pixels)) for name, runner in runners.items()}
    paths["clip_vit_b32_image_tower"] = lambda: clip.get_image_features(pixel_values=clip_pixels)
    paths["offline_encode_images"] = lambda: encoder.encode_images(pixels)
    # what the tag stage runs with a calibration profile: the same pass plus the class head's features
    paths["offline_encode_with_features"] = lambda: encoder.encode_with_features(pixels)
    if jpeg_batch:
        paths["offline_decode_jpeg_and_encode"] = decode_and_encode
    # The machine's matmul rate is timed in the same rounds, so a busy neighbour slows it alike.
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    paths["matmul"] = lambda: [torch.mm(a, b) for _ in range(10)]
    seconds = median_seconds(paths)
    machine = 2 * MATMUL_SIZE**3 * 10 / seconds.pop("matmul") / 1e9
    rates = {name: BATCH / time_per_call for name, time_per_call in seconds.items()}

    figures: dict = {"batch": BATCH, "threads": torch.get_num_threads(), "default_backend": encoder.backend}
    clip_rate = rates["clip_vit_b32_image_tower"]
    for name, rate in rates.items():
        figures[f"{name}_images_per_s"] = rate
        figures[f"{name}_vs_clip"] = rate / clip_rate
    agreement_pixels = pixels[:8]
    for name, runner in runners.items():
        if name == "eager":
            continue
        agreement = compare_runners(eager, runner, agreement_pixels)
        figures[f"{name}_max_abs_logit_diff"] = agreement["max_abs_logit_diff"]
        figures[f"{name}_same_top5"] = agreement["same_top5"]
    lite0, clip_tower = gflops_per_image(eager, pixels.shape[-1]), gflops_per_image(lambda p: clip.get_image_features(pixel_values=p), size)
    figures["head_features_time_vs_encode_images"] = rates["offline_encode_images"] / rates["offline_encode_with_features"]
    figures["machine_matmul_gflops"] = machine
    figures["lite0_gflops_per_image"] = lite0
    figures["clip_vit_b32_gflops_per_image"] = clip_tower
    figures["clip_model_flops_utilisation"] = clip_rate * clip_tower / machine
    for name in ("eager", encoder.backend):
        figures[f"classifier_{name}_model_flops_utilisation"] = rates[f"classifier_{name}"] * lite0 / machine
    return figures


def real_photos() -> dict[str, Image.Image]:
    photos = {path.stem: Image.open(path).convert("RGB") for path in sorted(SAMPLES.glob("*.jpg"))}
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        photos[f"skimage.{name}"] = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    from matplotlib import cbook

    photos["matplotlib.grace_hopper"] = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    return photos


def vocabulary_embeddings(encoder, vocabulary) -> torch.Tensor:
    """One embedding a word: the normalised mean of its prompts' embeddings (a prompt ensemble)."""
    rows = [encoder.encode_texts(list(word.prompts)).mean(dim=0) for word in vocabulary.words]
    return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


def quality_report(encoder, photos: dict[str, Image.Image]) -> dict:
    from alienstay.vocabulary.words import load_vocabulary

    vocabulary = load_vocabulary()
    pixels = torch.stack([encoder.image_transform()(photo) for photo in photos.values()])
    cosines = encoder.encode_images(pixels) @ vocabulary_embeddings(encoder, vocabulary).T
    top_classes = encoder.top_classes(pixels, k=3)
    spreads, top_probs = [], []
    print(f"\nquality at logit_scale={encoder.logit_scale} (vocabulary {vocabulary.hash})")
    for row, (name, classes) in enumerate(zip(photos, top_classes, strict=True)):
        print(f"- {name}: ImageNet " + ", ".join(f"{c} {p:.2f}" for c, p in classes))
        for facet, where in vocabulary.facet_slices().items():
            facet_cosines = cosines[row, where]
            probs = (encoder.logit_scale * facet_cosines).softmax(dim=-1)
            best = probs.topk(min(3, len(probs)))
            words = [vocabulary.words[where.start + int(i)].tag for i in best.indices]
            print(f"    {facet:<10} " + ", ".join(f"{w} {p:.2f}" for w, p in zip(words, best.values.tolist(), strict=True)))
            spreads.append(float(facet_cosines.std()))
            top_probs.append(float(best.values[0]))
    return {
        "quality_photos": len(photos),
        "facet_cosine_std_median": statistics.median(spreads),
        "facet_top_prob_median": statistics.median(top_probs),
        "facet_top_prob_max": max(top_probs),
    }


def main() -> None:
    from alienstay.encoders.offline import load_offline_encoder

    start = time.perf_counter()
    encoder = load_offline_encoder()
    figures: dict = {"load_seconds": time.perf_counter() - start, "model_id": encoder.model_id}
    pixels = torch.stack([encoder.image_transform()(photo) for photo in real_photos().values()])
    pixels = pixels[torch.arange(BATCH) % len(pixels)]  # real photos, repeated to a full batch
    figures.update(speed_figures(encoder, pixels))
    figures.update(quality_report(encoder, real_photos()))
    figures["peak_rss_mb"] = peak_rss_mb()
    save("offline", figures)


if __name__ == "__main__":
    main()
