"""The CLI's help for options that name registry entries, written from the registries themselves.

Only registries whose modules import without torch are read here (encoders, editors, maskers,
control maps, text-to-image and structure models), so `alienstay --help` stays quick; a new entry
appears in the help with no edit to the CLI. (The captioners' and tag engines' modules load torch:
`--caption-model` and `--engine` name theirs in their help, and docs/models.md lists them all.)
"""

from __future__ import annotations

from alienstay.editing.controls import CONTROL_MAPS
from alienstay.editing.masks import DEFAULT_MASKER, MASKERS
from alienstay.editing.methods import EDITORS
from alienstay.editing.registry import EditorSpec
from alienstay.editing.structure import STRUCTURE_MODELS
from alienstay.encoders import ENCODERS
from alienstay.persona.text_to_image import TEXT_TO_IMAGE


def _extras(entry: object) -> str:
    needs = getattr(entry, "needs", ())
    return f"needs alienstay[{','.join(needs)}]" if needs else ""


def tag_model_help() -> str:
    return (f"auto (the first of hf, offline whose weights can be had) | {ENCODERS.choices(_extras)} | "
            "NAME:MODEL | a hub id | a local folder (docs/models.md).")


def _editor_remark(spec: EditorSpec) -> str:
    if not spec.is_diffusion:
        return "NOT diffusion"
    return "NON-COMMERCIAL weights" if "commercial" in spec.licence.lower() else ""


def method_help() -> str:
    return (f"{EDITORS.choices(_editor_remark)}; default: the preset's editor "
            "(`alienstay models list`), else the recipe's.")


def masker_help() -> str:
    return f"Text-query masks: {MASKERS.choices()}; default: the preset's, else {DEFAULT_MASKER}."


def mask_model_help() -> str:
    """The first role of each masker is what --mask-model replaces."""
    firsts = "; ".join(f"{spec.name}: {spec.default_model}" for spec in MASKERS)
    return f"The masker's model (its first role); default: the preset's, else the masker's own ({firsts})."


def mask_segmenter_help() -> str:
    second = [f"{spec.name}: {model}" for spec in MASKERS for role, model in list(spec.models.items())[1:2]]
    return f"A two-model masker's second model ({'; '.join(second)}); default: the preset's, else that one."


def control_help() -> str:
    return f"Control map for controlnet: {CONTROL_MAPS.choices()}."


def dino_help() -> str:
    return (f"Structure model for the self-similarity distance: {STRUCTURE_MODELS.choices(lambda s: s.default_model or '')}"
            " | NAME:MODEL | a hub id or folder (`preset`: the preset's).")


def persona_model_help() -> str:
    return (f"Text-to-image: {TEXT_TO_IMAGE.choices(lambda s: s.description)}; NAME:FOLDER_OR_ID, "
            "or a bare hub id / folder (sd15's loader).")
