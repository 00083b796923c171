"""A short caption per photo (BLIP), CLIP-Interrogator style: caption + selected tags = a prompt.

The restyling stage asks :func:`prompt_string` for "caption, tag, tag, ..." so an edit prompt
starts from what the photo already shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from alienstay.catalog import OK, TAG_INPUT_COLUMNS
from alienstay.devices import probe, select_device, select_dtype
from alienstay.encoders.hf import ProcessorTransform, cpu_threads
from alienstay.models import ResolvedModel, resolve
from alienstay.registry import Registry
from alienstay.tagging.reader import image_batches, pending_images
from alienstay.workspace import Workspace, write_parquet

CAPTION_COLUMNS = ["image_id", "caption", "model_id", "model_revision"]


@dataclass
class Captioner:
    resolved: ResolvedModel
    model: torch.nn.Module
    tokenizer: object
    image_processor: object
    device: str = "cpu"
    max_new_tokens: int = 20

    def image_transform(self) -> ProcessorTransform:
        return ProcessorTransform(self.image_processor)

    @torch.inference_mode()
    def caption(self, pixels: torch.Tensor) -> list[str]:
        tokens = self.model.generate(
            pixel_values=pixels.to(self.device), max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1
        )
        return [text.strip() for text in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


@dataclass(frozen=True)
class CaptionerEntry:
    """One kind of captioner: its loader (model id or folder, device, dtype) and what it needs."""

    name: str  # what `--caption-model NAME` (or `NAME:MODEL`) selects
    load: Callable[[str, str, str], Captioner]
    default_model: str
    description: str
    dtypes: tuple[str, ...] = ("float32",)
    roles: tuple[str, ...] = ("captioner",)


CAPTIONERS: Registry[CaptionerEntry] = Registry("captioner")
DEFAULT_CAPTIONER = "blip"  # the kind a bare hub id or folder is loaded as


def load_blip(model: str, device: str = "cpu", dtype: str = "float32") -> Captioner:
    from transformers import AutoImageProcessor, AutoTokenizer, BlipForConditionalGeneration

    torch.set_num_threads(cpu_threads())
    resolved = resolve(model)
    network = BlipForConditionalGeneration.from_pretrained(resolved.path).eval().to(device)
    return Captioner(
        resolved=resolved,
        model=network,
        tokenizer=AutoTokenizer.from_pretrained(resolved.path),
        image_processor=AutoImageProcessor.from_pretrained(resolved.path),
        device=device,
    )


CAPTIONERS.register(CaptionerEntry(
    name="blip", load=load_blip, default_model="Salesforce/blip-image-captioning-base",
    description="BLIP image captioning through transformers (a hub id or a folder in the hub's layout)",
))
DEFAULT_CAPTION_MODEL = CAPTIONERS.get(DEFAULT_CAPTIONER).default_model


def load_captioner(model: str = DEFAULT_CAPTIONER, device: str = "cpu", dtype: str = "float32") -> Captioner:
    """A captioner's name (its default model), `NAME:MODEL`, or a hub id / folder (loaded as the default kind)."""
    entry, model = CAPTIONERS.lookup(model, DEFAULT_CAPTIONER)
    machine = probe()
    device = select_device(device, machine)  # `auto`, or refused when the machine lacks it
    dtype = select_dtype(dtype, device, machine, entry.dtypes, f"the {entry.name} captioner")
    return entry.load(model, device, dtype)


def read_captions(ws: Workspace) -> pd.DataFrame:
    captions = ws.read_captions(optional=True)
    return pd.DataFrame(columns=CAPTION_COLUMNS) if captions is None else captions


def run_captioning(
    ws: Workspace, captioner: Captioner, batch_size: int = 16, workers: int = 1, save_every: int = 256
) -> int:
    """Caption every usable photo without a caption from this model; saves as it goes (resumable)."""
    existing = read_captions(ws)
    existing = existing[existing["model_id"] == captioner.resolved.model_id]
    rows = pending_images(ws.read_catalog(columns=list(TAG_INPUT_COLUMNS), status=OK), existing["image_id"].astype(str))
    new: list[dict] = []

    def save() -> None:
        write_parquet(pd.concat([existing, pd.DataFrame(new, columns=CAPTION_COLUMNS)], ignore_index=True), ws.captions_path)

    for batch in image_batches(rows, captioner.image_transform(), batch_size=batch_size, workers=workers):
        if batch.pixels is None:
            continue
        for image_id, text in zip(batch.ids, captioner.caption(batch.pixels)):
            new.append({"image_id": image_id, "caption": text, **captioner.resolved.record()})
        if len(new) % save_every < len(batch.ids):
            save()
    save()
    ws.log_run("caption", **captioner.resolved.record(), captioned_now=len(new))
    return len(new)


def prompt_string(ws: Workspace, image_id: str, max_tags: int = 12) -> str:
    """ "caption, tag, tag, ..." for one photo: its caption (when captioned) and its selected tags, surest first."""
    captions = read_captions(ws)
    caption = captions.loc[captions["image_id"] == image_id, "caption"]
    tags = ws.read_tags()
    chosen = tags[(tags["image_id"] == image_id) & tags["selected"]].sort_values("prob", ascending=False, kind="stable")
    parts = ([caption.iloc[-1]] if len(caption) and caption.iloc[-1] else []) + chosen["tag"].head(max_tags).tolist()
    return ", ".join(parts)
