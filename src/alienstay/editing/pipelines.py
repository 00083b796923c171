"""The edit methods: three diffusion pipelines and one labelled non-diffusion baseline.

- ``instruct-pix2pix``: an instruction ("make it night") applied by InstructPix2Pix; the image
  guidance scale is the knob between faithfulness (higher) and edit strength (lower).
- ``controlnet``: layout-locked restyling: SD 1.5 img2img steered by a ControlNet whose control
  map (M-LSD straight lines or Canny edges) is computed from the photo itself with OpenCV.
- ``inpaint``: a local addition inside a mask (CLIPSeg from a text query, or a mask file); the
  original is pasted back outside the mask, so the rest of the photo is untouched by construction.
- ``classical``: an exposure / gamma / colour-temperature grade in numpy/OpenCV. NOT diffusion;
  it exists so the series and the guard run end to end on a machine without diffusion weights,
  and only for the recipes where a grade is honest (time of day, lights).

Every model is loaded through ``alienstay.models.resolve`` (hub id or local folder), so a missing
model gives the resolver's message naming the id and the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from PIL import Image

from alienstay.editing.recipes import CLASSICAL, Recipe, Value
from alienstay.models import resolve

log = logging.getLogger("alienstay")

DEFAULT_MODELS = {
    "instruct-pix2pix": "timbrooks/instruct-pix2pix",
    "controlnet": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "inpaint": "stable-diffusion-v1-5/stable-diffusion-inpainting",
    "text-to-image": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
DEFAULT_CONTROLNETS = {"mlsd": "lllyasviel/control_v11p_sd15_mlsd", "canny": "lllyasviel/control_v11p_sd15_canny"}
DEFAULT_MASK_MODEL = "CIDAS/clipseg-rd64-refined"
CLASSICAL_MODEL_ID = "classical:numpy-opencv-grade (NOT diffusion)"


@dataclass(frozen=True)
class Speed:
    """Options that trade quality or memory for speed on small machines."""

    lcm_lora: str | None = None  # hub id or folder of an LCM-LoRA: few-step sampling with LCMScheduler
    attention_slicing: bool = False  # less peak memory, a little slower
    cpu_offload: bool = False  # keep sub-models on the CPU until used (needs an accelerator)


@dataclass(frozen=True)
class EditRequest:
    """One edit of one photo: everything that determines the output (and its resume key)."""

    value: Value
    seed: int
    steps: int
    size: int
    guidance_scale: float | None = None
    image_guidance_scale: float | None = None
    strength: float | None = None
    negative_prompt: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # control map kind, conditioning scale, ...


@dataclass
class EditOutput:
    image: Image.Image
    mask: np.ndarray | None = None  # 1 where the edit was allowed; None for whole-image edits
    control_image: Image.Image | None = None


class Editor(Protocol):
    method: str
    model_id: str  # every model that made the output, joined with " + "
    is_diffusion: bool

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput: ...


# ---- sizes -------------------------------------------------------------------------------
def fit_size(image: Image.Image, size: int, multiple: int = 8) -> Image.Image:
    """Longer side = ``size``, both sides a multiple of 8 (the VAE's downscale factor)."""
    scale = size / max(image.size)
    width = max(multiple, int(image.width * scale) // multiple * multiple)
    height = max(multiple, int(image.height * scale) // multiple * multiple)
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


# ---- control maps (no weights needed) ----------------------------------------------------
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


CONTROL_MAPS = {"mlsd": mlsd_lines, "canny": canny_edges}


# ---- masks -------------------------------------------------------------------------------
def paste_outside_mask(original: Image.Image, edited: Image.Image, mask: np.ndarray) -> Image.Image:
    """The original everywhere the mask is 0: the rest of the photo is untouched by construction."""
    keep = (np.asarray(mask, dtype=np.float32) >= 0.5)[..., None]
    merged = np.where(keep, np.asarray(edited.convert("RGB")), np.asarray(original.convert("RGB")))
    return Image.fromarray(merged.astype(np.uint8))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A mask file (white = edit here) resized to ``size`` (width, height), as 0/1 floats."""
    mask = Image.open(path).convert("L").resize(size, Image.Resampling.NEAREST)
    return (np.asarray(mask) >= 128).astype(np.float32)


class ClipSegMasker:
    """A mask from a text query ("bed") with CLIPSeg."""

    def __init__(self, model: str = DEFAULT_MASK_MODEL) -> None:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        resolved = resolve(model)
        self.model_id = resolved.model_id
        self.processor = CLIPSegProcessor.from_pretrained(resolved.path)
        self.model = CLIPSegForImageSegmentation.from_pretrained(resolved.path).eval()

    def mask(self, image: Image.Image, query: str, threshold: float = 0.4) -> np.ndarray:
        inputs = self.processor(text=[query], images=[image.convert("RGB")], return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = self.model(**inputs).logits
        probs = torch.sigmoid(logits.reshape(1, 1, *logits.shape[-2:]))
        probs = torch.nn.functional.interpolate(probs, size=(image.height, image.width), mode="bilinear")[0, 0]
        mask = (probs.numpy() >= threshold).astype(np.uint8)
        # A little margin so the addition can sit on the object's edge without a seam.
        return cv2.dilate(mask, np.ones((7, 7), np.uint8)).astype(np.float32)


# ---- diffusion ---------------------------------------------------------------------------
def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def apply_speed(pipe: Any, speed: Speed) -> list[str]:
    """LCM-LoRA + LCMScheduler, attention slicing, offload. Returns the LoRA ids loaded."""
    loaded = []
    if speed.lcm_lora:
        from diffusers import LCMScheduler

        resolved = resolve(speed.lcm_lora)
        pipe.load_lora_weights(str(resolved.path))
        pipe.fuse_lora()
        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
        loaded.append(resolved.model_id)
    if speed.attention_slicing:
        pipe.enable_attention_slicing()
    if speed.cpu_offload:
        if torch.cuda.is_available():
            pipe.enable_model_cpu_offload()
        else:
            log.warning("--cpu-offload needs an accelerator; on this CPU-only machine everything stays on the CPU.")
    return loaded


# Only what a diffusers pipeline loads: a hub repo like SD 1.5 also holds single-file checkpoints,
# fp16 / non-EMA variants and a safety checker, tens of GB we never read.
PIPELINE_FILES = [
    "model_index.json",
    *(f"{part}/*.json" for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "feature_extractor")),
    "tokenizer/*.txt",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
]


def _from_pretrained(pipeline_class: Any, model: str, **components: Any) -> tuple[Any, str]:
    resolved = resolve(model, allow_patterns=PIPELINE_FILES)
    # The safety checker is dropped on purpose: hotel rooms are safe, and its false positives
    # would black out photos; it also costs a second large model in memory.
    pipe = pipeline_class.from_pretrained(
        str(resolved.path), safety_checker=None, requires_safety_checker=False, **components
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe, resolved.model_id


class InstructPix2PixEditor:
    method = "instruct-pix2pix"
    is_diffusion = True

    def __init__(self, model: str = DEFAULT_MODELS["instruct-pix2pix"], speed: Speed = Speed()) -> None:
        from diffusers import StableDiffusionInstructPix2PixPipeline

        self.pipe, model_id = _from_pretrained(StableDiffusionInstructPix2PixPipeline, model)
        self.model_id = " + ".join([model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size)
        edited = self.pipe(
            prompt=request.value.instruction,
            image=source,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            image_guidance_scale=request.image_guidance_scale,
            negative_prompt=request.negative_prompt or None,
            generator=_generator(request.seed),
        ).images[0]
        if mask is not None:
            return EditOutput(paste_outside_mask(source, edited, mask), mask=mask)
        return EditOutput(edited)


class ControlNetEditor:
    method = "controlnet"
    is_diffusion = True

    def __init__(
        self,
        model: str = DEFAULT_MODELS["controlnet"],
        controlnet: str | None = None,
        control: str = "mlsd",
        speed: Speed = Speed(),
    ) -> None:
        from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline

        if control not in CONTROL_MAPS:
            raise ValueError(f"unknown control map '{control}'; use one of {sorted(CONTROL_MAPS)}.")
        self.control = control
        resolved_controlnet = resolve(
            controlnet or DEFAULT_CONTROLNETS[control], allow_patterns=["config.json", "diffusion_pytorch_model.safetensors"]
        )
        net = ControlNetModel.from_pretrained(str(resolved_controlnet.path))
        self.pipe, model_id = _from_pretrained(StableDiffusionControlNetImg2ImgPipeline, model, controlnet=net)
        self.model_id = " + ".join([model_id, resolved_controlnet.model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        source = fit_size(image, request.size)
        control_image = CONTROL_MAPS[self.control](source)
        edited = self.pipe(
            prompt=request.value.prompt,
            image=source,
            control_image=control_image,
            height=source.height,
            width=source.width,
            strength=request.strength,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt or None,
            controlnet_conditioning_scale=float(request.extra.get("conditioning_scale", 1.0)),
            generator=_generator(request.seed),
        ).images[0]
        return EditOutput(edited, control_image=control_image)


class InpaintEditor:
    method = "inpaint"
    is_diffusion = True

    def __init__(self, model: str = DEFAULT_MODELS["inpaint"], speed: Speed = Speed()) -> None:
        from diffusers import StableDiffusionInpaintPipeline

        self.pipe, model_id = _from_pretrained(StableDiffusionInpaintPipeline, model)
        self.model_id = " + ".join([model_id, *apply_speed(self.pipe, speed)])

    def edit(self, image: Image.Image, request: EditRequest, mask: np.ndarray | None = None) -> EditOutput:
        if mask is None:
            raise ValueError("inpainting needs a mask: a text query (mask_query) or a mask file.")
        source = fit_size(image, request.size)
        mask_image = Image.fromarray((np.asarray(mask) >= 0.5).astype(np.uint8) * 255)
        edited = self.pipe(
            prompt=request.value.prompt,
            image=source,
            mask_image=mask_image,
            height=source.height,
            width=source.width,
            strength=request.strength,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt or None,
            generator=_generator(request.seed),
        ).images[0]
        return EditOutput(paste_outside_mask(source, edited.resize(source.size), mask), mask=mask)


# ---- the labelled non-diffusion baseline --------------------------------------------------
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


# ---- one place that builds an editor -----------------------------------------------------
def load_editor(
    method: str,
    recipe: Recipe,
    model: str | None = None,
    controlnet: str | None = None,
    control: str | None = None,
    speed: Speed = Speed(),
) -> Editor:
    """The editor for ``method`` (checked against the recipe), its models through the resolver."""
    recipe.check_method(method)
    if method == CLASSICAL:
        return ClassicalEditor()
    if method == "instruct-pix2pix":
        return InstructPix2PixEditor(model or DEFAULT_MODELS[method], speed=speed)
    if method == "controlnet":
        control = control or str(recipe.settings_for(method).get("control", "mlsd"))
        return ControlNetEditor(model or DEFAULT_MODELS[method], controlnet=controlnet, control=control, speed=speed)
    if method == "inpaint":
        return InpaintEditor(model or DEFAULT_MODELS[method], speed=speed)
    raise ValueError(f"unknown method {method}")
