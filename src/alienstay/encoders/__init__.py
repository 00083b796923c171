"""Image-text encoders: anything that puts images and words in one space.

The tag stage, analysis, clustering and search only ever see this interface, so a hub
model (CLIP, SigLIP) and the offline ConSE tagger are interchangeable. Each kind of encoder
is one entry of :data:`ENCODERS` (its loader, default model, dtypes, roles, and whether its
text direction may decide a faithfulness verdict); stages look entries up, never model ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from PIL import Image

from alienstay.runtime.devices import (
    DTYPES,
    Machine,
    check_dtype,
    probe,
    select_device,
    select_dtype,
)
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import Weights, default_model

if TYPE_CHECKING:  # only annotations: the registry (and the CLI's help) loads without torch
    import torch


@runtime_checkable
class ImageTextEncoder(Protocol):
    model_id: str  # what ran: a hub id, a local folder, or "offline:<image model>+<text model>"
    revision: str  # hub commit, hash of a local folder's weights, or package versions
    logit_scale: float  # temperature for the softmax within a facet

    def image_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable function RGB image -> pixel tensor, run inside DataLoader workers."""
        ...

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """A batch of transformed images -> (B, D) L2-normalised float32 embeddings."""
        ...

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Prompts -> (N, D) L2-normalised float32 embeddings in the same space as images."""
        ...


@dataclass(frozen=True)
class EncoderEntry:
    """One kind of encoder: how to load it and what the stages may rely on."""

    name: str  # what `--model NAME` (or `NAME:MODEL`) selects
    load: Callable[[str | None, str, str], ImageTextEncoder]  # (model id or folder, device, dtype)
    description: str
    # role -> the weights it loads: the first is what `--model NAME` loads, "ROLE@NAME" keys are
    # other checkpoints it is known to load (presets name them); empty: none (a newcomer's stub)
    weights: dict[str, Weights] = field(default_factory=dict)
    takes_model: bool = True  # False: the weights are fixed (packaged), `NAME` alone says it all
    dtypes: tuple[str, ...] = ("float32",)
    roles: tuple[str, ...] = ("tagger",)  # tagger, guard (the faithfulness guard's CLIP), search
    # Its text direction (image change towards the edit's words) is trustworthy enough to
    # decide a faithfulness verdict; otherwise the guard records it and decides without it.
    direction_decides: bool = True
    # Its text side alone (model, device, dtype) -> an object with encode_texts, model_id and
    # revision, for search by meaning (similarity/query.py); None: the whole encoder is loaded.
    load_text: Callable[[str | None, str, str], object] | None = None
    needs: tuple[str, ...] = ()  # the alienstay extras it needs (`pip install 'alienstay[EXTRA]'`)

    @property
    def default_model(self) -> str | None:
        """The hub id `--model NAME` loads (None: its weights are fixed, or it names none)."""
        return default_model(self.weights)


ENCODERS: Registry[EncoderEntry] = Registry("encoder", group="alienstay.encoders")
DEFAULT_ENCODER = "hf"  # the kind a bare hub id or folder is loaded as
AUTO = "auto"
AUTO_ORDER = ("hf", "offline")  # `--model auto`: the first whose weights can be had


def _load_hf(model: str | None, device: str, dtype: str) -> ImageTextEncoder:
    from alienstay.encoders.hf import load_hf_encoder

    return load_hf_encoder(model, device=device, dtype=dtype)


def _load_hf_text(model: str | None, device: str, dtype: str) -> object:
    from alienstay.encoders.query_text import load_hf_text

    return load_hf_text(model, device=device, dtype=dtype)


def _load_offline(model: str | None, device: str, dtype: str) -> ImageTextEncoder:
    from alienstay.encoders.offline import load_offline_encoder

    return load_offline_encoder(device=device)


def _load_offline_text(model: str | None, device: str, dtype: str) -> object:
    from alienstay.encoders.query_text import load_offline_text

    return load_offline_text(device=device)


ENCODERS.register(EncoderEntry(
    name="hf", load=_load_hf, dtypes=DTYPES,
    weights={
        "tagger": Weights("openai/clip-vit-base-patch32", "MIT"),
        # SigLIP 2 (per-word sigmoid scores): the gpu preset's tagger
        "tagger@siglip2-so400m": Weights("google/siglip2-so400m-patch14-384", "Apache-2.0"),
        "tagger@siglip2-base": Weights("google/siglip2-base-patch16-224", "Apache-2.0"),
    },
    roles=("tagger", "guard", "search"), load_text=_load_hf_text,
    description="CLIP / SigLIP dual encoders through transformers: a hub id or a folder in the hub's layout",
))
ENCODERS.register(EncoderEntry(
    name="offline", load=_load_offline, takes_model=False, needs=("offline",),
    weights={"tagger": Weights("offline", "Apache-2.0 (EfficientNet-Lite1) + MIT (all-MiniLM-L6-v2)", files=None)}, direction_decides=False, roles=("tagger", "search"),
    load_text=_load_offline_text,
    description="ConSE from pip-installed weights (ImageNet classifier + sentence encoder): no hub needed",
))
OFFLINE = "offline"
__all__ = ["DTYPES", "ENCODERS", "EncoderEntry", "ImageTextEncoder", "encoder_entry", "load_encoder", "reload_argument"]


def entry_for(model: str) -> tuple[EncoderEntry, str | None]:
    """`NAME`, `NAME:MODEL` or a bare hub id / folder (the default kind) -> (entry, model to load)."""
    return ENCODERS.lookup(model, DEFAULT_ENCODER)


def load_encoder(model: str = AUTO, device: str = "cpu", dtype: str = "float32") -> ImageTextEncoder:
    """`auto` (the first of AUTO_ORDER whose weights can be had), an entry's name, `NAME:MODEL`, a hub id or a folder.

    `device` and `dtype` may be `auto` (see alienstay.runtime.devices); a device this machine does not
    have is refused (DeviceUnavailable, a ValueError) before any weight is read.
    """
    if dtype != AUTO:
        check_dtype(dtype)
    machine = probe()
    device = select_device(device, machine)
    if model == AUTO:
        return _load_auto(device, dtype, machine)
    entry, model_id = entry_for(model)
    return load_entry(entry, model_id, device, dtype, machine)


def load_entry(
    entry: EncoderEntry, model_id: str | None, device: str, dtype: str, machine: Machine | None = None,
    text_only: bool = False,
) -> ImageTextEncoder:
    """`text_only`: the entry's text side where it has one of its own (search needs no image tower)."""
    dtype = select_dtype(dtype, device, machine or probe(), entry.dtypes, f"the {entry.name} encoder")
    load = entry.load_text if text_only and entry.load_text is not None else entry.load
    encoder = load(model_id if entry.takes_model else None, device, dtype)
    encoder.encoder_name = entry.name  # how anyone later finds its entry (see encoder_entry)
    return encoder


def encoder_entry(encoder: ImageTextEncoder) -> EncoderEntry:
    """The registry entry an encoder was loaded from (the default kind for one built by hand)."""
    return ENCODERS.get(getattr(encoder, "encoder_name", DEFAULT_ENCODER))


def reload_argument(encoder: ImageTextEncoder) -> str:
    """What to pass `load_encoder` elsewhere (a Ray worker) to load this same encoder again."""
    entry = encoder_entry(encoder)
    if not entry.takes_model:
        return entry.name
    model = encoder.model_id
    folder = Path(model).expanduser()
    if folder.is_dir():  # another process may run in another folder: an absolute path
        model = str(folder.resolve())
    return model if entry.name == DEFAULT_ENCODER else f"{entry.name}:{model}"


_FALLBACKS_SAID: set[tuple[str, str]] = set()


def _load_auto(device: str, dtype: str, machine: Machine) -> ImageTextEncoder:
    import logging

    from alienstay.runtime.models import ModelUnavailable

    log = logging.getLogger("alienstay")
    first, *fallbacks = (ENCODERS.get(name) for name in AUTO_ORDER)
    try:
        encoder = load_entry(first, first.default_model, device, dtype, machine)
    except ModelUnavailable as error:
        fallback = fallbacks[0]
        if dtype != AUTO and dtype not in fallback.dtypes:
            log.warning("model auto: the %s tagger runs in %s; --dtype %s is not applied.",
                        fallback.name, fallback.dtypes[0], dtype)
            dtype = fallback.dtypes[0]
        encoder = load_entry(fallback, fallback.default_model, device, dtype, machine)
        said = (first.default_model, encoder.model_id)
        if said not in _FALLBACKS_SAID:  # once a process: the demo loads `auto` for the tagger and each edit's guard
            _FALLBACKS_SAID.add(said)
            log.warning(
                "model auto: %s could not be had (%s). RUNNING THE %s TAGGER %s instead: weaker than CLIP; see docs/tagging.md.",
                first.default_model, str(error).splitlines()[0], fallback.name.upper(), encoder.model_id,
            )
        return encoder
    log.warning("model auto: running %s from the hub cache", encoder.model_id)
    return encoder
