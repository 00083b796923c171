"""The faithfulness guard on the real sample photos, with edits whose truth we control.

Light and colour changes must pass as structure-preserving; a warp, a crop-shift or a pasted
object must fail; a masked edit that leaks outside its mask must be caught.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from alienstay.editing.base import fit_size
from alienstay.editing.faithfulness import (
    FAITHFUL,
    NOT_APPLIED,
    TOO_STRONG,
    Guard,
    Metrics,
    direction_cosine,
    verdict,
)
from alienstay.editing.masks import paste_outside_mask
from alienstay.editing.recipes import RecipeError, load_recipes

SIZE = 384  # the guard's own working size is 256: this keeps the test fast and realistic


@pytest.fixture(scope="module")
def photos(samples_dir: Path) -> list[Image.Image]:
    return [fit_size(Image.open(p), SIZE) for p in sorted(samples_dir.glob("*.jpg"))]


@pytest.fixture(scope="module")
def thresholds() -> dict[str, float]:
    return load_recipes().get("time_of_day").thresholds


def as_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))


def as_float(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


LIGHT_AND_COLOUR = {
    "darker x0.5": lambda a: a * 0.5,
    "brighter x1.2": lambda a: a * 1.2,
    "brighter gamma 0.75": lambda a: a**0.75,
    "warm colour cast": lambda a: a * np.array([1.12, 1.0, 0.8], dtype=np.float32),
    "blue night cast": lambda a: (a * 0.4) ** 1.2 * np.array([0.85, 0.9, 1.1], dtype=np.float32),
}


def warp_rotate(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.warpAffine(a, cv2.getRotationMatrix2D((w / 2, h / 2), 3, 1.0), (w, h), borderMode=cv2.BORDER_REFLECT)


def warp_perspective(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    d = 0.05 * w
    src = np.float32([[0, 0], [w, 0], [0, h], [w, h]])
    dst = np.float32([[d, d], [w - d, 0], [0, h], [w, h - d]])
    return cv2.warpPerspective(a, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT)


def crop_shift(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return cv2.resize(a[:, int(0.04 * w):], (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize("name", sorted(LIGHT_AND_COLOUR))
def test_light_and_colour_changes_pass_as_faithful(photos, thresholds, name):
    guard = Guard(use_lpips=False)
    for photo in photos:
        edited = as_image(LIGHT_AND_COLOUR[name](as_float(photo)))
        metrics = guard.measure(photo, edited)
        decision, reason = verdict(metrics, thresholds)
        assert decision == FAITHFUL, f"{name} on a real photo judged {decision}: {reason}"


@pytest.mark.parametrize("change", [warp_rotate, warp_perspective, crop_shift], ids=["rotate 3 deg", "perspective 5%", "crop-shift 4%"])
def test_geometric_changes_fail_as_too_strong(photos, thresholds, change):
    guard = Guard(use_lpips=False)
    for photo in photos:
        metrics = guard.measure(photo, as_image(change(as_float(photo))))
        decision, reason = verdict(metrics, thresholds)
        assert decision == TOO_STRONG, f"{change.__name__} passed: {reason}"
        assert metrics.structure_ssim < thresholds["structure_min"]


def test_a_pasted_object_fails_as_too_strong(photos, thresholds):
    guard = Guard(use_lpips=False)
    for index, photo in enumerate(photos):
        donor = as_float(photos[(index + 3) % len(photos)].resize(photo.size))
        edited = as_float(photo).copy()
        h, w = edited.shape[:2]
        top, left = h // 3, w // 3
        edited[top:top + h // 3, left:left + w // 3] = donor[: h // 3, : w // 3]  # another room's furniture
        metrics = guard.measure(photo, as_image(edited))
        assert verdict(metrics, thresholds)[0] == TOO_STRONG, metrics


def test_an_unchanged_photo_is_not_applied(photos, thresholds):
    guard = Guard(use_lpips=False)
    photo = photos[0]
    almost = as_image(as_float(photo) + 1 / 255)  # one grey level: invisible
    decision, reason = verdict(guard.measure(photo, almost), thresholds)
    assert decision == NOT_APPLIED and "pixel change" in reason


def bed_mask(photo: Image.Image) -> np.ndarray:
    mask = np.zeros((photo.height, photo.width), dtype=np.float32)
    mask[photo.height // 2: photo.height * 3 // 4, photo.width // 4: photo.width // 2] = 1.0
    return mask


def test_a_masked_edit_that_stays_inside_its_mask_passes(photos):
    thresholds = load_recipes().get("bed_decoration").thresholds
    guard = Guard(use_lpips=False)
    photo, donor = photos[0], photos[4].resize(photos[0].size)
    mask = bed_mask(photo)
    edited = paste_outside_mask(photo, donor, mask)  # something new inside, the original outside
    metrics = guard.measure(photo, edited, mask=mask)
    assert metrics.outside_mask_change == 0.0
    assert verdict(metrics, thresholds)[0] == FAITHFUL


def test_a_masked_edit_that_leaks_outside_its_mask_is_caught(photos):
    thresholds = load_recipes().get("bed_decoration").thresholds
    guard = Guard(use_lpips=False)
    photo = photos[0]
    mask = bed_mask(photo)
    leaked = as_float(paste_outside_mask(photo, photos[4].resize(photo.size), mask))
    leaked[: photo.height // 4] *= np.array([1.0, 0.7, 0.7], dtype=np.float32)  # the ceiling turned red too
    metrics = guard.measure(photo, as_image(leaked), mask=mask)
    decision, reason = verdict(metrics, thresholds)
    assert decision == TOO_STRONG and "outside_mask_change" in reason


def test_a_mask_covering_most_of_the_photo_is_not_local(photos):
    thresholds = load_recipes().get("bed_decoration").thresholds
    photo = photos[1]
    mask = np.ones((photo.height, photo.width), dtype=np.float32)
    metrics = Guard(use_lpips=False).measure(photo, photos[2].resize(photo.size), mask=mask)
    decision, reason = verdict(metrics, thresholds)
    assert decision == TOO_STRONG and "mask_area" in reason


def test_missing_metrics_are_nan_and_never_decide(thresholds):
    metrics = Metrics(pixel_change=0.1, structure_ssim=0.9, edge_ssim=0.9)
    assert math.isnan(metrics.lpips) and math.isnan(metrics.dino_distance) and math.isnan(metrics.clip_direction)
    assert verdict(metrics, thresholds)[0] == FAITHFUL


def test_lpips_is_recorded_missing_without_its_weights(photos):
    try:
        import lpips  # noqa: F401
    except Exception:
        metrics = Guard(use_lpips=True).measure(photos[0], photos[0])
        assert math.isnan(metrics.lpips)
    else:
        pytest.fail("lpips is installed: replace this test by one that checks its value")


def test_clip_direction_says_whether_the_edit_moved_as_asked(thresholds):
    import torch

    text_delta = torch.tensor([1.0, 0.0, 0.0])
    assert direction_cosine(torch.tensor([2.0, 0.1, 0.0]), text_delta) > 0.9
    assert direction_cosine(torch.tensor([-1.0, 0.0, 0.0]), text_delta) == pytest.approx(-1.0)
    assert direction_cosine(torch.zeros(3), text_delta) == 0.0
    wrong_way = Metrics(pixel_change=0.1, structure_ssim=0.9, edge_ssim=0.9, clip_direction=-0.2)
    assert verdict(wrong_way, thresholds)[0] == NOT_APPLIED


def test_clip_direction_through_a_tiny_encoder_loaded_by_the_resolver(photos, tmp_path):
    from alienstay.encoders import load_encoder
    from alienstay.testing.tiny_models import build_tiny_clip

    encoder = load_encoder(str(build_tiny_clip(tmp_path / "clip")))
    guard = Guard(encoder=encoder, use_lpips=False)
    photo = photos[2]
    darker = as_image(as_float(photo) * 0.5)
    metrics = guard.measure(photo, darker, source_text="a photo of a room", target_text="a photo of a room at night")
    assert -1.0 <= metrics.clip_direction <= 1.0 and metrics.clip_direction != 0.0
    same = guard.measure(photo, photo, source_text="a photo of a room", target_text="a photo of a room at night")
    assert same.clip_direction == 0.0


def test_dino_self_similarity_distance_with_a_tiny_dinov2(photos, tmp_path):
    from alienstay.editing.faithfulness import load_guard
    from alienstay.testing.tiny_pipelines import build_tiny_dino

    guard = load_guard(dino=str(build_tiny_dino(tmp_path / "dino")))
    guard.use_lpips = False
    photo = photos[3]
    assert guard.measure(photo, photo).dino_distance == pytest.approx(0.0, abs=1e-6)
    assert guard.measure(photo, as_image(warp_rotate(as_float(photo)))).dino_distance > 0.0


def test_recipe_files_are_validated_with_a_clear_error(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("recipes:\n  sunset:\n    parameter: light\n    method: magic\n    values: {red: {prompt: x}}\n")
    with pytest.raises(RecipeError, match="unknown method 'magic'"):
        load_recipes(bad)
    book = load_recipes()
    assert book.get("night").name == "time_of_day"  # a value finds its recipe
    assert set(book.get("alien_style").persona) >= {"A1", "A4"}
    with pytest.raises(RecipeError, match="does not allow method 'classical'"):
        book.get("bed_decoration").check_method("classical")


def test_a_direction_that_may_not_decide_is_recorded_but_ignored(thresholds):
    wrong_way = Metrics(pixel_change=0.1, structure_ssim=0.9, edge_ssim=0.9, clip_direction=-0.2)
    decision, reason = verdict(wrong_way, thresholds, direction_decides=False)
    assert decision == FAITHFUL and "not deciding" in reason


@pytest.mark.parametrize("broken", ["missing", "raises"])
def test_a_broken_lpips_install_is_recorded_with_its_reason_and_warned(photos, monkeypatch, caplog, broken):
    import logging
    import sys
    import types

    from alienstay.editing import faithfulness

    if broken == "missing":
        monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    else:
        module = types.ModuleType("lpips")

        def no_backbone(**_):
            raise OSError("AlexNet weights cannot be downloaded")

        module.LPIPS = no_backbone
        monkeypatch.setitem(sys.modules, "lpips", module)
    monkeypatch.setattr(faithfulness, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="alienstay"):
        metrics = Guard().measure(photos[0], photos[0])
        again = Guard().measure(photos[1], photos[1])
    assert math.isnan(metrics.lpips) and metrics.missing.startswith("lpips not measured")
    # not installed: left out on purpose (docs/restyling.md), recorded without an install hint and not warned about
    assert ("not installed (left out on purpose" if broken == "missing" else "OSError: AlexNet weights cannot be downloaded") in metrics.missing
    assert "install the" not in metrics.missing or broken != "missing"
    assert again.missing == metrics.missing
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "lpips not measured" in r.getMessage()]
    assert len(warnings) == (0 if broken == "missing" else 1)  # a broken install said once, recorded on every edit
    assert Guard(use_lpips=False).measure(photos[0], photos[0]).missing == ""
