"""The edit methods, one registry entry each: what a recipe gives them and how to build them.

To add a method: write its ``Editor`` class (``edit(image, request, mask) -> EditOutput``),
then one ``EDITORS.register(...)`` below naming the recipe field it reads, the settings it
understands and its default models. Recipes can then name it in ``methods:`` and
``alienstay edit --method NAME`` runs it; nothing else changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alienstay.editing.base import CLASSICAL, Speed  # noqa: F401  (callers import them here)
from alienstay.editing.registry import EditorSpec
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import FLUX_FILES, PIPELINE_FILES, Weights

if TYPE_CHECKING:
    from alienstay.editing.pipelines import Editor
    from alienstay.editing.recipes import Recipe

OPENRAIL = "CreativeML OpenRAIL-M"
SD15 = Weights("stable-diffusion-v1-5/stable-diffusion-v1-5", OPENRAIL, PIPELINE_FILES)
# The EditRequest fields; every other setting travels in EditRequest.extra (and its edit key).
REQUEST_SETTINGS = ("steps", "guidance_scale", "image_guidance_scale", "strength")
# What a masked method's recipe may say about its text-query mask: the query, CLIPSeg's pixel
# threshold and owlv2-sam's box score floor (editing/masks.py reads the one its masker names).
MASK_SETTINGS = ("mask_query", "mask_threshold", "mask_score_min")

EDITORS: Registry[EditorSpec] = Registry("edit method", group="alienstay.editors")


def _instruct_pix2pix(model: str, recipe: "Recipe", speed: Speed, **_: Any) -> "Editor":
    from alienstay.editing.pipelines import InstructPix2PixEditor

    return InstructPix2PixEditor(model, speed=speed)


def _controlnet(model: str, recipe: "Recipe", speed: Speed, controlnet: str | None = None,
                control: str | None = None, **_: Any) -> "Editor":
    from alienstay.editing.pipelines import ControlNetEditor

    control = control or str(recipe.settings_for("controlnet").get("control", "mlsd"))
    return ControlNetEditor(model, controlnet=controlnet, control=control, speed=speed)


def _inpaint(model: str, recipe: "Recipe", speed: Speed, **_: Any) -> "Editor":
    from alienstay.editing.pipelines import InpaintEditor

    return InpaintEditor(model, speed=speed)


def _kontext(model: str, recipe: "Recipe", speed: Speed, **_: Any) -> "Editor":
    from alienstay.editing.flux import KontextEditor

    return KontextEditor(model, speed=speed)


def _qwen_image_edit(model: str, recipe: "Recipe", speed: Speed, **_: Any) -> "Editor":
    from alienstay.editing.qwen import QwenImageEditEditor

    return QwenImageEditEditor(model, speed=speed)


def _classical(model: str | None, recipe: "Recipe", **_: Any) -> "Editor":
    from alienstay.editing.classical import ClassicalEditor

    return ClassicalEditor()


EDITORS.register(EditorSpec(
    name="instruct-pix2pix", build=_instruct_pix2pix, reads="instruction", settings=("steps", "guidance_scale", "image_guidance_scale"),
    weights={"pipeline": Weights("timbrooks/instruct-pix2pix", "MIT", PIPELINE_FILES)},
    description="an instruction applied by InstructPix2Pix; image guidance trades faithfulness for strength",
))
EDITORS.register(EditorSpec(
    name="controlnet", build=_controlnet, reads="prompt",
    settings=("steps", "guidance_scale", "strength", "control", "conditioning_scale"),
    weights={"pipeline": SD15},  # the ControlNet itself: the control map's entry (controls.py)
    description="SD 1.5 img2img steered by a ControlNet on the photo's own lines or edges",
))
EDITORS.register(EditorSpec(
    name="inpaint", build=_inpaint, reads="prompt", settings=("steps", "guidance_scale", "strength", *MASK_SETTINGS),
    weights={"pipeline": Weights("stable-diffusion-v1-5/stable-diffusion-inpainting", OPENRAIL, PIPELINE_FILES)},
    needs_mask=True,
    description="a local addition inside a mask; the original is pasted back outside it",
))
# Current instruction editors trained to keep the rest of the image (issue 11; editing/flux.py, qwen.py).
# `instruction_suffix`: the recipe's per-method words appended to the value's instruction.
EDITORS.register(EditorSpec(
    name="qwen-image-edit", build=_qwen_image_edit, reads="instruction",
    settings=("steps", "guidance_scale", "instruction_suffix", *MASK_SETTINGS),
    weights={"pipeline": Weights("Qwen/Qwen-Image-Edit", "Apache-2.0", FLUX_FILES)},
    description="Qwen-Image-Edit: Qwen2.5-VL reads the photo and the instruction, the VAE keeps its look (the gpu editor)",
))
EDITORS.register(EditorSpec(
    name="kontext", build=_kontext, reads="instruction",
    settings=("steps", "guidance_scale", "instruction_suffix", *MASK_SETTINGS),
    weights={"pipeline": Weights("black-forest-labs/FLUX.1-Kontext-dev",
                                 "FLUX.1-dev Non-Commercial License: NOT for commercial use", FLUX_FILES)},
    description="FLUX.1 Kontext [dev]: the photo as in-context tokens; NON-COMMERCIAL weights, never a default",
))
EDITORS.register(EditorSpec(
    name=CLASSICAL, build=_classical, reads="grade", settings=(), is_diffusion=False,
    weights={"pipeline": Weights("classical", "this project's code", files=None)},
    description="an exposure / gamma / colour grade in numpy and OpenCV: NOT diffusion",
))


def setting_names() -> tuple[str, ...]:
    """Every setting some registered method understands (the recipe schema's settings)."""
    names = dict.fromkeys(REQUEST_SETTINGS)
    for spec in EDITORS:
        names.update(dict.fromkeys(spec.settings))
    return tuple(names)


def load_editor(
    method: str,
    recipe: "Recipe",
    model: str | None = None,
    controlnet: str | None = None,
    control: str | None = None,
    speed: Speed = Speed(),
) -> "Editor":
    """The editor for ``method`` (checked against the recipe), its models through the resolver."""
    recipe.check_method(method)
    spec = EDITORS.get(method)
    return spec.build(model or spec.default_models.get("pipeline"), recipe, speed=speed, controlnet=controlnet, control=control)
