"""A tiny stand-in for each hub model a registry entry loads by default, by its hub id.

tests/test_registry_contract.py loads every entry whose default weights all have a stand-in
(None: the entry needs no weights file, as the classical grade); an entry without one is
checked by its declaration alone. A new entry's test adds its model's builder here with
:func:`add_stand_in`, so the contract test loads it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alienstay.testing import tiny_flux, tiny_maskers, tiny_models, tiny_pipelines, tiny_qwen

Build = Callable[[Path], Path]

STAND_INS: dict[str, Build | None] = {
    "openai/clip-vit-base-patch32": tiny_models.build_tiny_clip,
    "Salesforce/blip-image-captioning-base": tiny_models.build_tiny_blip,
    "florence-community/Florence-2-base": tiny_models.build_tiny_florence2,
    "CIDAS/clipseg-rd64-refined": tiny_pipelines.build_tiny_clipseg,
    "google/owlv2-base-patch16-ensemble": tiny_maskers.build_tiny_owlv2,
    "facebook/sam-vit-base": tiny_maskers.build_tiny_sam,
    "timbrooks/instruct-pix2pix": tiny_pipelines.build_tiny_instruct_pix2pix,
    "stable-diffusion-v1-5/stable-diffusion-v1-5": tiny_pipelines.build_tiny_sd,
    "stable-diffusion-v1-5/stable-diffusion-inpainting": tiny_pipelines.build_tiny_inpaint,
    "lllyasviel/control_v11p_sd15_mlsd": tiny_pipelines.build_tiny_controlnet,
    "lllyasviel/control_v11p_sd15_canny": tiny_pipelines.build_tiny_controlnet,
    "Qwen/Qwen-Image-Edit": tiny_qwen.build_tiny_qwen_image_edit,
    "black-forest-labs/FLUX.1-Kontext-dev": tiny_flux.build_tiny_flux_kontext,
    "black-forest-labs/FLUX.1-schnell": tiny_flux.build_tiny_flux,
    "facebook/dinov2-small": tiny_pipelines.build_tiny_dino,
    "classical": None,  # the colour grade: plain code
}


def add_stand_in(model: str, build: Build | None) -> None:
    """Name the tiny builder of `model` (a hub id an entry declares), so the contract test loads that entry."""
    STAND_INS[model] = build


def stand_in(model: str, root: Path) -> str | None:
    """A folder with `model`'s tiny stand-in, built once under `root` (None: the entry needs no weights)."""
    build = STAND_INS[model]
    if build is None:
        return None
    folder = root / model.replace("/", "--")
    if not folder.exists():
        build(folder)
    return str(folder)
