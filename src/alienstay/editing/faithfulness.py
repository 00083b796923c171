"""The faithfulness guard: does the edited photo still show the same room, and did the edit happen?

A guest must not be misled. Each edit gets metrics and one verdict:

- ``not_applied``: the image barely changed, or it did not move towards what the text asked
  (CLIP directional similarity at or below the recipe's limit);
- ``too_strong``: the room's structure changed (walls, furniture, layout), or a masked edit
  leaked outside its mask, or the mask covers too much of the photo to be "local";
- ``faithful``: changed, in the asked direction, with the structure kept.

Design of the structure metrics: light and colour are what our recipes are allowed to change,
so a global brightness change or a colour cast must PASS, while a warp, a crop-shift or a
pasted object must FAIL. Both metrics therefore compare *structure*, not intensity:

- ``structure_ssim``: SSIM of locally normalised luminance (each pixel minus its local mean,
  divided by its local contrast), which cancels gain, offset and colour casts;
- ``edge_ssim``: SSIM of gradient-magnitude maps of that normalised luminance.

Each is summarised by its worst tile rather than the image mean: a pasted object or a moved
lamp changes one region, and a mean over the whole frame would dilute it away.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from alienstay.editing.base import editable
from alienstay.runtime.presets import preset_model

if TYPE_CHECKING:
    import torch

    from alienstay.encoders import ImageTextEncoder

log = logging.getLogger("alienstay")

FAITHFUL = "faithful"
TOO_STRONG = "too_strong"
NOT_APPLIED = "not_applied"
VERDICTS = (FAITHFUL, TOO_STRONG, NOT_APPLIED)
# Why a masked edit with an empty mask changed nothing (the runner does not even run the editor).
EMPTY_MASK = ("the mask is empty: nothing matched the mask query (or the mask file is black), so nothing was edited; "
              "lower the masker's threshold (mask_threshold / mask_score_min) or pass --mask")

WORK_SIDE = 256  # structure is compared at this longer side: fine detail is the diffusion's noise
TILES = 4  # the frame is cut into TILES x TILES regions; the worst one counts
LOCAL_SIGMA = 4.0  # px at WORK_SIDE: the neighbourhood that defines "local" brightness
SATURATED = 0.97  # a channel at or above this is clipped highlight
PRE_BLUR = 1.0  # px at WORK_SIDE
CONTRAST_FLOOR = 0.25  # x the image's 90th-percentile local contrast: flat areas are not amplified into noise


@dataclass
class Metrics:
    pixel_change: float  # mean |edit - original| over RGB in [0, 1]
    structure_ssim: float
    edge_ssim: float
    lpips: float = math.nan  # NaN: not measured (no weights); never a made-up number
    dino_distance: float = math.nan
    outside_mask_change: float = math.nan  # NaN for edits without a mask
    mask_area: float = math.nan
    clip_direction: float = math.nan
    missing: str = ""  # why a metric that was asked for is NaN ("" when every asked metric was measured)

    def record(self) -> dict[str, float]:
        return asdict(self)


# ---- structure ---------------------------------------------------------------------------
def to_float_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def working_size(rgb: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def normalised_luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance with local mean and contrast divided out: what is left is structure."""
    # A light blur first: pixel noise and re-synthesised texture are not the room's structure.
    lum = cv2.GaussianBlur(luminance(rgb), (0, 0), PRE_BLUR)
    mean = cv2.GaussianBlur(lum, (0, 0), LOCAL_SIGMA)
    var = cv2.GaussianBlur(lum * lum, (0, 0), LOCAL_SIGMA) - mean * mean
    contrast = np.sqrt(np.clip(var, 0, None))
    # The floor is relative to the image's own contrast, so a darkened (night) photo is not
    # penalised for having less absolute contrast than the original.
    floor = CONTRAST_FLOOR * float(np.percentile(contrast, 90)) + 1e-4
    return (lum - mean) / (contrast + floor)


def edge_map(normalised: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(normalised, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(normalised, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.GaussianBlur(np.hypot(gx, gy), (0, 0), 1.0)


def worst_tile(ssim_map: np.ndarray, counted: np.ndarray, tiles: int = TILES) -> float:
    """The lowest tile mean of the SSIM map over counted pixels (a tile with none counts as 1)."""
    rows = np.array_split(np.arange(ssim_map.shape[0]), tiles)
    cols = np.array_split(np.arange(ssim_map.shape[1]), tiles)
    means = []
    for r in rows:
        for c in cols:
            weights = counted[np.ix_(r, c)]
            means.append(float((ssim_map[np.ix_(r, c)] * weights).sum() / weights.sum()) if weights.any() else 1.0)
    return min(means)


def ssim_worst_tile(a: np.ndarray, b: np.ndarray, counted: np.ndarray) -> float:
    data_range = float(max(a.max(), b.max()) - min(a.min(), b.min())) or 1.0
    _, ssim_map = structural_similarity(a, b, data_range=data_range, gaussian_weights=True, full=True)
    return worst_tile(ssim_map, counted)


def blown_highlights(original: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Pixels a brightening pushed to white that were already bright: they carry no structure left
    to compare, and losing a window's detail to exposure is light, not a changed room. A white
    object pasted onto a darker area is not excused: its original there was not bright."""
    return (edited.max(axis=-1) > SATURATED) & (luminance(original) > 0.75)


def structure_metrics(
    original: np.ndarray, edited: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """(structure_ssim, edge_ssim) of two RGB float images of the same size, worst tile each.

    With a mask, the masked area is where a local addition was asked for (petals, a towel swan):
    its structure is meant to change, so only the rest of the photo is compared.
    """
    small_a, small_b = working_size(original), working_size(edited)
    excused = blown_highlights(small_a, small_b)
    if mask is not None:
        small_mask = cv2.resize(np.asarray(mask, dtype=np.float32), small_a.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        excused |= editable(small_mask)
    counted = ~cv2.dilate(excused.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    a, b = normalised_luminance(small_a), normalised_luminance(small_b)
    return ssim_worst_tile(a, b, counted), ssim_worst_tile(edge_map(a), edge_map(b), counted)


# ---- masks -------------------------------------------------------------------------------
def outside_mask_change(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> float:
    """Mean |change| where the mask is 0: a local edit must leave the rest of the photo alone."""
    outside = ~editable(mask)
    if not outside.any():
        return 0.0
    return float(np.abs(edited - original).mean(axis=-1)[outside].mean())


# ---- learned metrics (each optional: NaN when its model is not given) -------------------
def dino_self_similarity_distance(model: "torch.nn.Module", processor, original: Image.Image, edited: Image.Image) -> float:
    """Distance of the ViT patch self-similarity matrices (Tumanyan et al., Splicing ViT features).

    The matrix says which parts of the image look alike, not how they look, so it keeps the
    layout and ignores appearance: a restyle keeps it, a moved wall does not.
    """
    import torch

    inputs = processor(images=[original.convert("RGB"), edited.convert("RGB")], return_tensors="pt").to(model.device)
    with torch.no_grad():
        tokens = model(**inputs).last_hidden_state[:, 1:, :]  # drop the CLS token
    tokens = torch.nn.functional.normalize(tokens.float(), dim=-1)
    similarity = tokens @ tokens.transpose(1, 2)
    return float((similarity[0] - similarity[1]).pow(2).mean().sqrt())


def clip_direction(
    encoder: "ImageTextEncoder", original: Image.Image, edited: Image.Image, source_text: str, target_text: str
) -> float:
    """cos(E_img(edit) - E_img(orig), E_txt(target) - E_txt(source)): did it move as the text asked."""
    import torch

    transform = encoder.image_transform()
    with torch.no_grad():
        images = encoder.encode_images(torch.stack([transform(original.convert("RGB")), transform(edited.convert("RGB"))]))
        texts = encoder.encode_texts([source_text, target_text])
    return direction_cosine(images[1] - images[0], texts[1] - texts[0])


def direction_cosine(image_delta: "torch.Tensor", text_delta: "torch.Tensor") -> float:
    import torch

    if float(image_delta.norm()) < 1e-8 or float(text_delta.norm()) < 1e-8:
        return 0.0  # no movement at all: no direction
    return float(torch.nn.functional.cosine_similarity(image_delta.float(), text_delta.float(), dim=0))


NO_LPIPS = "lpips not measured: the lpips package is not installed (left out on purpose: it needs torchvision)"


class LpipsUnavailable(RuntimeError):
    """LPIPS cannot be measured here; the message says why (recorded with the edit)."""


@functools.lru_cache(maxsize=1)
def _lpips_metric():
    """The LPIPS network, built once; a broken or missing install raises LpipsUnavailable."""
    try:
        import lpips  # (pulls torchvision and downloads the AlexNet backbone weights)

        return lpips.LPIPS(net="alex", verbose=False)
    except ImportError as error:  # not installed: left out on purpose (docs/restyling.md), so no install hint
        raise LpipsUnavailable(NO_LPIPS) from error
    except Exception as error:  # a broken torchvision, weights that cannot be had
        raise LpipsUnavailable(
            f"lpips not measured: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
            " (install the `lpips` package and make its AlexNet weights available to measure it)"
        ) from error


_warned: set[str] = set()


def lpips_distance(original: Image.Image, edited: Image.Image) -> float:
    """LPIPS needs the `lpips` package and its pretrained backbone; without them LpipsUnavailable."""
    import torch

    metric = _lpips_metric()
    to_tensor = lambda im: torch.from_numpy(to_float_rgb(im)).permute(2, 0, 1)[None] * 2 - 1  # noqa: E731
    with torch.no_grad():
        return float(metric(to_tensor(original), to_tensor(edited)))


def _lpips_or_reason(original: Image.Image, edited: Image.Image) -> tuple[float, str]:
    """(LPIPS, "") or (NaN, why): a missing metric is recorded with its reason, warned once."""
    try:
        return lpips_distance(original, edited), ""
    except LpipsUnavailable as error:
        if str(error) not in _warned:
            _warned.add(str(error))
            # the expected absence is recorded, not announced; a broken install is worth a warning
            log.log(logging.INFO if str(error) == NO_LPIPS else logging.WARNING, "%s; recorded in each edit's missing_metrics.", error)
        return math.nan, str(error)


# ---- the guard ---------------------------------------------------------------------------
@dataclass
class Guard:
    """The optional learned models the guard uses; each None means its metric is recorded missing."""

    encoder: "ImageTextEncoder | None" = None
    dino_model: "torch.nn.Module | None" = None
    dino_processor: object | None = None
    use_lpips: bool = True
    # Whether the CLIP direction may decide the verdict. False for the offline ConSE encoder: its
    # image embedding is built from ImageNet class names, which a change of light or colour does
    # not move (on the 8 samples a classical night grade scored -0.18..0.15), so it is recorded
    # but would call honest relightings "not applied".
    direction_decides: bool = True

    def measure(
        self,
        original: Image.Image,
        edited: Image.Image,
        mask: np.ndarray | None = None,
        source_text: str | None = None,
        target_text: str | None = None,
    ) -> Metrics:
        if edited.size != original.size:
            original = original.resize(edited.size, Image.Resampling.LANCZOS)
        a, b = to_float_rgb(original), to_float_rgb(edited)
        structure, edges = structure_metrics(a, b, mask)
        metrics = Metrics(pixel_change=float(np.abs(b - a).mean()), structure_ssim=structure, edge_ssim=edges)
        if mask is not None:
            metrics.outside_mask_change = outside_mask_change(a, b, mask)
            metrics.mask_area = float(editable(mask).mean())
        if self.dino_model is not None:
            metrics.dino_distance = dino_self_similarity_distance(self.dino_model, self.dino_processor, original, edited)
        if self.encoder is not None and source_text and target_text:
            metrics.clip_direction = clip_direction(self.encoder, original, edited, source_text, target_text)
        if self.use_lpips:
            metrics.lpips, metrics.missing = _lpips_or_reason(original, edited)
        return metrics


def verdict(metrics: Metrics, thresholds: dict[str, float], direction_decides: bool = True) -> tuple[str, str]:
    """(verdict, reason). Missing (NaN) metrics never decide anything."""
    if metrics.mask_area == 0.0:  # NaN (no mask) is not 0: only a masked edit whose mask is empty
        return NOT_APPLIED, EMPTY_MASK
    if metrics.pixel_change < thresholds["change_min"]:
        return NOT_APPLIED, f"pixel change {metrics.pixel_change:.4f} < {thresholds['change_min']}"
    failures = [
        f"{name} {value:.3f} {op} {limit}"
        for name, value, op, limit in (
            ("structure_ssim", metrics.structure_ssim, "<", thresholds["structure_min"]),
            ("edge_ssim", metrics.edge_ssim, "<", thresholds["edge_min"]),
            ("dino_distance", metrics.dino_distance, ">", thresholds["dino_max"]),
            ("lpips", metrics.lpips, ">", thresholds["lpips_max"]),
            ("outside_mask_change", metrics.outside_mask_change, ">", thresholds["outside_mask_max"]),
            ("mask_area", metrics.mask_area, ">", thresholds["mask_area_max"]),
        )
        if not math.isnan(value) and (value < limit if op == "<" else value > limit)
    ]
    if failures:
        return TOO_STRONG, "; ".join(failures)
    direction = metrics.clip_direction
    if direction_decides and not math.isnan(direction) and direction <= thresholds["clip_direction_min"]:
        return NOT_APPLIED, f"clip_direction {direction:.3f} <= {thresholds['clip_direction_min']}"
    kept = f"structure {metrics.structure_ssim:.2f}, edges {metrics.edge_ssim:.2f}"
    if not math.isnan(direction):
        kept += f", clip direction {direction:.2f}" + ("" if direction_decides else " (recorded, not deciding)")
    return FAITHFUL, kept


def load_guard(clip: str = "none", dino: str | None = None, device: str = "cpu", preset: str | None = None) -> Guard:
    """The guard with the learned models asked for; 'none' leaves that metric recorded as missing."""
    encoder = None
    clip, dino = (preset_model(preset, f"guard:{name}") if value == "preset" else value
                  for name, value in (("clip", clip), ("dino", dino)))  # fmt: skip
    if clip and clip != "none":
        from alienstay.encoders import encoder_entry, load_encoder

        encoder = load_encoder(clip, device=device, dtype="float32")  # the guard's thresholds were set in fp32
    dino_model = dino_processor = None
    if dino:
        from alienstay.editing.structure import load_structure_model

        dino_model, dino_processor = load_structure_model(dino, device)
    # The encoder registry says whether an encoder's text direction may decide a verdict.
    direction_decides = encoder is None or encoder_entry(encoder).direction_decides
    if not direction_decides:
        log.warning("--clip %s: this encoder's CLIP direction is recorded but does not decide verdicts.", clip)
    return Guard(encoder=encoder, dino_model=dino_model, dino_processor=dino_processor, direction_decides=direction_decides)
