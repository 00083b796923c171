"""The facts of one set of weights a registry entry loads: its hub id, licence and files.

Every entry that loads a model names them here (``entry.weights``: role -> ``Weights``), so
presets, `alienstay models list|download`, the CLI's help and docs/models.md read one place.
``files`` are the allow-patterns the loader reads (what `models download` fetches); ``None``
means nothing to fetch: the weights ship with pip packages or the entry is plain code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# What a transformers model loads: configs, tokenizer files and the safetensors weights (the
# pickled .bin, TF and Flax copies in the same repos are never read). Repos without
# safetensors fall back to WEIGHTS_FALLBACK (see model_store.download).
TRANSFORMERS_FILES = ("*.json", "*.txt", "*.model", "model.safetensors")
WEIGHTS_FALLBACK = ("pytorch_model.bin",)
# What a diffusers Stable Diffusion pipeline loads: SD repos also hold single-file checkpoints,
# fp16/non-EMA variants and a safety checker, tens of GB never read.
PIPELINE_FILES = (
    "model_index.json",
    *(f"{part}/*.json" for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "feature_extractor")),
    "tokenizer/*.txt",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)
# What a FLUX / Qwen-Image pipeline loads.
FLUX_FILES = ("model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors")
CONTROLNET_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
# A role key's alternatives: "tagger@siglip2" is another checkpoint the entry loads for "tagger",
# offered to presets and users, never its default.
ALTERNATIVE = "@"


@dataclass(frozen=True)
class Weights:
    model: str  # a hub id; for packaged weights (files None) a plain label ("offline", "classical")
    licence: str  # read from the model card; say so plainly where it restricts use
    files: tuple[str, ...] | None = TRANSFORMERS_FILES

    @property
    def fetchable(self) -> bool:
        return self.files is not None


def defaults(weights: Mapping[str, Weights]) -> dict[str, Weights]:
    """role -> the weights an entry loads when no model is named (its alternatives left out)."""
    return {role: w for role, w in weights.items() if ALTERNATIVE not in role}


def default_model(weights: Mapping[str, Weights]) -> str | None:
    """The hub id of an entry's first role: what `--model NAME` loads (None: it loads no weights)."""
    first = next(iter(defaults(weights).values()), None)
    return first.model if first is not None and first.fetchable else None
