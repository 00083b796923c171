"""The `owlv2-sam` masker: a text query to OWLv2 boxes, the boxes to SAM masks, their union.

CLIPSeg predicts a 352 x 352 heat map that is upsampled to the photo and thresholded, so its
edges are as soft as that grid. Here OWLv2 (an open-vocabulary detector) finds every box of
the query above a score floor ("the beds" in a room with two: both, not only the best), and
SAM, prompted with those boxes, draws each object's mask at the photo's own resolution; the
mask is their union. Both load through transformers' PIL image processors
(``Owlv2ImageProcessorPil``, ``SamImageProcessorPil``), so neither needs torchvision.

When nothing scores above the floor the mask is empty (all False), never a guess: the runner
then skips the editor and the guard records why (editing/faithfulness.py, ``EMPTY_MASK``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image

from alienstay.runtime.models import resolve

DETECTOR_ROLE, SEGMENTER_ROLE = "masker", "masker:segmenter"  # the preset roles (presets.py)
DEFAULT_DETECTOR = "google/owlv2-base-patch16-ensemble"
DEFAULT_SEGMENTER = "facebook/sam-vit-base"
# The recipe setting the floor is read from, and its default: transformers' own default for
# Owlv2's post_process_object_detection. A box score, not CLIPSeg's pixel probability, so it is
# a setting of its own (recipes' `mask_threshold` stays CLIPSeg's).
SCORE_SETTING, DEFAULT_SCORE_MIN = "mask_score_min", 0.1
MAX_BOXES = 32  # the highest-scoring boxes kept: SAM decodes one mask a box, overlapping boxes add nothing
MARGIN_PX = 3  # as CLIPSeg's 7x7 dilation: an addition may sit on the object's edge without a seam

log = logging.getLogger("alienstay")


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # (N, 4) float: x0, y0, x1, y1 in the photo's pixels, clipped to it, best first
    scores: np.ndarray  # (N,) OWLv2's sigmoid scores, each above the floor


class OwlSamMasker:
    """OWLv2 boxes for a text query, SAM masks from those boxes; both through the resolver."""

    def __init__(self, detector: str = DEFAULT_DETECTOR, segmenter: str = DEFAULT_SEGMENTER, device: str = "cpu") -> None:
        from transformers import (
            AutoTokenizer,
            Owlv2ForObjectDetection,
            SamModel,
            SamProcessor,
        )
        from transformers.models.owlv2 import Owlv2ImageProcessorPil
        from transformers.models.sam import SamImageProcessorPil

        found, shaper = resolve(detector), resolve(segmenter)
        self.models = {DETECTOR_ROLE: found.model_id, SEGMENTER_ROLE: shaper.model_id}
        self.model_id = f"{found.model_id} + {shaper.model_id}"
        self.revisions = {DETECTOR_ROLE: found.revision, SEGMENTER_ROLE: shaper.revision}
        self.device = device
        # fp32 on every device: the score floor and the mask threshold were chosen in fp32.
        self.detector_processor = Owlv2ImageProcessorPil.from_pretrained(found.path)
        self.tokenizer = AutoTokenizer.from_pretrained(found.path)
        self.detector = Owlv2ForObjectDetection.from_pretrained(found.path).eval().to(device)
        self.segmenter_processor = SamProcessor(image_processor=SamImageProcessorPil.from_pretrained(shaper.path))
        self.segmenter = SamModel.from_pretrained(shaper.path).eval().to(device)

    def detect(self, image: Image.Image, query: str, score_min: float = DEFAULT_SCORE_MIN) -> Detections:
        """Every box of `query` scoring above `score_min`, best first (at most MAX_BOXES), in photo pixels."""
        import torch

        rgb = image.convert("RGB")
        text = self.tokenizer([query], padding="max_length", truncation=True, return_tensors="pt")
        pixels = self.detector_processor(images=[rgb], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            outputs = self.detector(input_ids=text["input_ids"].to(self.device), attention_mask=text["attention_mask"].to(self.device),
                                    pixel_values=pixels.to(self.device))  # fmt: skip
        outputs.logits, outputs.pred_boxes = outputs.logits.float().cpu(), outputs.pred_boxes.float().cpu()
        # OWLv2 pads the photo to a square; the processor scales boxes back with the longer side.
        result = self.detector_processor.post_process_object_detection(outputs, threshold=score_min,
                                                                       target_sizes=[(rgb.height, rgb.width)])[0]  # fmt: skip
        scores, boxes = result["scores"].numpy(), result["boxes"].numpy().astype(np.float64)
        boxes = np.clip(boxes, 0, [rgb.width, rgb.height, rgb.width, rgb.height])
        # A box squeezed to nothing by the clipping (wholly in the square's padding) prompts nothing.
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-scores[keep], kind="stable")[:MAX_BOXES]
        return Detections(boxes=boxes[keep][order], scores=scores[keep][order])

    def segment(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        """One SAM mask a box, (N, H, W) bool at the photo's resolution (the image is encoded once)."""
        import torch

        rgb = image.convert("RGB")
        if len(boxes) == 0:
            return np.zeros((0, rgb.height, rgb.width), dtype=bool)
        inputs = self.segmenter_processor(images=[rgb], input_boxes=[np.asarray(boxes, dtype=float).tolist()], return_tensors="pt")
        with torch.no_grad():
            outputs = self.segmenter(pixel_values=inputs["pixel_values"].to(self.device),
                                     input_boxes=inputs["input_boxes"].to(self.device), multimask_output=False)  # fmt: skip
        masks = self.segmenter_processor.image_processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0]  # (N, 1, H, W) bool: SAM's logits above 0, upsampled to the photo
        return masks[:, 0].numpy().astype(bool)

    def mask(self, image: Image.Image, query: str, threshold: float = DEFAULT_SCORE_MIN) -> np.ndarray:
        """The union of SAM's masks of every box above `threshold`, with a MARGIN_PX margin; (H, W) bool."""
        found = self.detect(image, query, threshold)
        if len(found.boxes) == 0:
            log.warning("owlv2-sam: nothing matched %r above score %s: the mask is empty and the photo is left as it is "
                        "(lower `%s` in the recipe, or pass --mask).", query, threshold, SCORE_SETTING)  # fmt: skip
            return np.zeros((image.height, image.width), dtype=bool)
        return with_margin(self.segment(image, found.boxes).any(axis=0))


def with_margin(mask: np.ndarray, margin: int = MARGIN_PX) -> np.ndarray:
    """`mask` grown by `margin` pixels each way (bool in, bool out)."""
    import cv2

    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.dilate(np.asarray(mask, dtype=np.uint8), kernel).astype(bool)
