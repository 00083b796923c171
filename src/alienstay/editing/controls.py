"""Control maps for ControlNet, computed from the photo itself (no weights needed).

To add one: a function PIL image -> PIL image (white structure on black) and one
``CONTROL_MAPS.register(ControlSpec(name=..., ...))`` naming the ControlNet trained on that kind
of map; ``--control NAME`` and a recipe's ``control: NAME`` then use it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from alienstay.editing.registry import ControlSpec
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import CONTROLNET_FILES, Weights

CONTROL_MAPS: Registry[ControlSpec] = Registry("control map", group="alienstay.control_maps")
OPENRAIL = "CreativeML OpenRAIL-M"


def mlsd_lines(image: Image.Image) -> Image.Image:
    """Straight line segments, white on black: the room's walls, windows and furniture edges."""
    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    detector = cv2.createLineSegmentDetector()
    lines = detector.detect(gray)[0]
    canvas = np.zeros_like(gray)
    min_length = 0.03 * max(gray.shape)  # short segments are texture, not layout
    for x1, y1, x2, y2 in (lines.reshape(-1, 4) if lines is not None else []):
        if np.hypot(x2 - x1, y2 - y1) >= min_length:
            cv2.line(canvas, (int(x1), int(y1)), (int(x2), int(y2)), 255, 1, cv2.LINE_AA)
    return Image.fromarray(canvas).convert("RGB")


def canny_edges(image: Image.Image, low: int = 100, high: int = 200) -> Image.Image:
    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    return Image.fromarray(cv2.Canny(gray, low, high)).convert("RGB")


CONTROL_MAPS.register(ControlSpec(
    name="mlsd", compute=mlsd_lines, weights={"controlnet": Weights("lllyasviel/control_v11p_sd15_mlsd", OPENRAIL, CONTROLNET_FILES)},
    description="straight line segments (OpenCV LSD): walls, windows, furniture edges",
))
CONTROL_MAPS.register(ControlSpec(
    name="canny", compute=canny_edges, weights={"controlnet": Weights("lllyasviel/control_v11p_sd15_canny", OPENRAIL, CONTROLNET_FILES)},
    description="Canny edges: every edge, texture included",
))
