"""The labelled non-diffusion baseline: an exposure / gamma / colour-temperature grade.

NOT diffusion. It exists so the series and the guard run end to end on a machine without
diffusion weights, and only for the recipes where a grade is honest (time of day, lights).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from alienstay.editing.base import CLASSICAL, EditOutput, EditRequest, fit_size

CLASSICAL_MODEL_ID = "classical:numpy-opencv-grade (NOT diffusion)"


def light_sources(rgb: np.ndarray, quantile: float = 0.97) -> np.ndarray:
    """A soft map of the brightest regions (lamps, lit windows), 0..1."""
    lum = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    bright = (lum >= max(np.quantile(lum, quantile), 0.6)).astype(np.float32)
    sigma = 0.08 * max(lum.shape)
    soft = cv2.GaussianBlur(bright, (0, 0), sigma)
    return soft / max(float(soft.max()), 1e-6)


def classical_grade(image: Image.Image, grade: dict[str, float]) -> Image.Image:
    """Exposure, gamma, colour temperature and saturation, with light sources kept lit and an
    optional warm glow around them. Every operation is global or follows the photo's own lights,
    so the room cannot change: only its light."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    lights = light_sources(rgb)
    graded = np.clip(rgb * grade.get("exposure", 1.0), 0, 1) ** grade.get("gamma", 1.0)
    warm = grade.get("temperature", 0.0)  # > 0 warmer (more red, less blue), < 0 cooler
    graded = graded * np.array([1 + warm, 1.0, 1 - warm], dtype=np.float32)
    gray = graded.mean(axis=-1, keepdims=True)
    graded = gray + (graded - gray) * grade.get("saturation", 1.0)
    keep = grade.get("keep_lights", 0.0) * lights[..., None]
    graded = graded * (1 - keep) + rgb * keep
    glow = grade.get("glow", 0.0)
    if glow:
        halo = cv2.GaussianBlur(lights, (0, 0), 0.06 * max(lights.shape))[..., None]
        graded = graded + glow * halo / max(float(halo.max()), 1e-6) * np.array([1.0, 0.8, 0.5], dtype=np.float32)
    return Image.fromarray((np.clip(graded, 0, 1) * 255 + 0.5).astype(np.uint8))


class ClassicalEditor:
    method = CLASSICAL
    model_id = CLASSICAL_MODEL_ID
    is_diffusion = False

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        return EditOutput(classical_grade(fit_size(image, request.size), request.value.grade))
