"""A caption per photo (BLIP, or Florence-2's detailed caption), CLIP-Interrogator style:
caption + selected tags = a prompt.

:func:`prompt_string` gives "caption, tag, tag, ..." for one photo, a text-to-image style
prompt of what the photo already shows. No recipe uses it yet: the restyling prompts are the
recipes' own instructions (docs/tagging.md, the tag stage's captions).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from alienstay.encoders.hf import ProcessorTransform, cpu_threads
from alienstay.runtime.devices import (
    PIPELINE_DTYPES,
    probe,
    select_device,
    select_dtype,
)
from alienstay.runtime.models import ResolvedModel, resolve
from alienstay.runtime.registry import Registry
from alienstay.runtime.weights import Weights, default_model
from alienstay.tagging.reader import image_batches, pending_images
from alienstay.workspace.catalog import OK, TAG_INPUT_COLUMNS
from alienstay.workspace.layout import Workspace, write_parquet

CAPTION_COLUMNS = ["image_id", "caption", "model_id", "model_revision", "device", "dtype"]


@dataclass
class Captioner:
    resolved: ResolvedModel
    model: torch.nn.Module
    tokenizer: object
    image_processor: object
    device: str = "cpu"
    max_new_tokens: int = 20
    min_new_tokens: int = 0  # the benchmark forces a fixed length, so models compare at equal work
    dtype: str = "float32"

    def record(self) -> dict[str, str]:
        return {**self.resolved.record(), "device": self.device, "dtype": self.dtype}

    def image_transform(self) -> ProcessorTransform:
        return ProcessorTransform(self.image_processor)

    def prompt_inputs(self, batch: int) -> dict[str, torch.Tensor]:
        """What the decoder is given besides the pixels (BLIP: nothing, it captions unprompted)."""
        return {}

    @torch.inference_mode()
    def caption(self, pixels: torch.Tensor) -> list[str]:
        tokens = self.model.generate(
            pixel_values=pixels.to(self.device, dtype=self.model.dtype), **self.prompt_inputs(len(pixels)),
            max_new_tokens=self.max_new_tokens, min_new_tokens=self.min_new_tokens, do_sample=False, num_beams=1,
        )
        return [text.strip() for text in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


# Florence-2 is prompted with a task token; the detailed caption (a few sentences) gives an
# edit prompt the room's furniture and materials; <MORE_DETAILED_CAPTION> runs past the 77
# tokens a Stable Diffusion text encoder reads.
FLORENCE_TASK = "<DETAILED_CAPTION>"


@dataclass
class Florence2Captioner(Captioner):
    """Florence-2 through transformers' own Florence2ForConditionalGeneration (no remote code)."""

    prompt_ids: torch.Tensor | None = None  # (1, L): image tokens + the task's prompt, laid out by the processor
    max_new_tokens: int = 96

    def prompt_inputs(self, batch: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.prompt_ids.expand(batch, -1).to(self.device)}


@dataclass(frozen=True)
class CaptionerEntry:
    """One kind of captioner: its loader (model id or folder, device, dtype) and what it needs."""

    name: str  # what `--caption-model NAME` (or `NAME:MODEL`) selects
    load: Callable[[str, str, str], Captioner]
    description: str
    # role -> weights; the first is what `NAME` loads, "ROLE@NAME" keys other checkpoints it loads
    weights: dict[str, Weights] = field(default_factory=dict)
    dtypes: tuple[str, ...] = ("float32",)
    roles: tuple[str, ...] = ("captioner",)
    model_types: tuple[str, ...] = ()  # config.json model_type values a bare hub id / folder is loaded as this kind

    @property
    def default_model(self) -> str | None:
        return default_model(self.weights)


CAPTIONERS: Registry[CaptionerEntry] = Registry("captioner", group="alienstay.captioners")
DEFAULT_CAPTIONER = "blip"  # the kind a bare hub id or folder is loaded as


def load_blip(model: str, device: str = "cpu", dtype: str = "float32") -> Captioner:
    from transformers import (
        AutoImageProcessor,
        AutoTokenizer,
        BlipForConditionalGeneration,
    )

    torch.set_num_threads(cpu_threads())
    resolved = resolve(model)
    network = BlipForConditionalGeneration.from_pretrained(resolved.path, dtype=getattr(torch, dtype)).eval().to(device)
    return Captioner(
        resolved=resolved,
        model=network,
        tokenizer=AutoTokenizer.from_pretrained(resolved.path),
        image_processor=AutoImageProcessor.from_pretrained(resolved.path),
        device=device,
        dtype=dtype,
    )


def load_florence2(model: str, device: str = "cpu", dtype: str = "float32") -> Florence2Captioner:
    from PIL import Image
    from transformers import AutoProcessor, Florence2ForConditionalGeneration

    torch.set_num_threads(cpu_threads())
    resolved = resolve(model)
    network = Florence2ForConditionalGeneration.from_pretrained(resolved.path, dtype=getattr(torch, dtype)).eval().to(device)
    processor = AutoProcessor.from_pretrained(resolved.path)
    # The processor lays out the image tokens and the task's prompt; the prompt is the same for
    # every photo, so it is made once here (from a blank image) and the reader brings the pixels.
    prompt = processor(text=[FLORENCE_TASK], images=[Image.new("RGB", (8, 8))], return_tensors="pt")["input_ids"]
    return Florence2Captioner(
        resolved=resolved, model=network, tokenizer=processor.tokenizer, image_processor=processor.image_processor,
        device=device, dtype=dtype, prompt_ids=prompt,
    )


CAPTIONERS.register(CaptionerEntry(
    name="blip", load=load_blip, weights={"captioner": Weights("Salesforce/blip-image-captioning-base", "BSD-3-Clause")},
    model_types=("blip",), dtypes=PIPELINE_DTYPES,
    description="BLIP image captioning through transformers (a hub id or a folder in the hub's layout)",
))
CAPTIONERS.register(CaptionerEntry(
    name="florence2", load=load_florence2,
    weights={"captioner": Weights("florence-community/Florence-2-base", "MIT"),
             "captioner@large": Weights("florence-community/Florence-2-large", "MIT")},
    dtypes=("float32", "bfloat16"), model_types=("florence2",),
    description=f"Florence-2 (MIT) {FLORENCE_TASK} through transformers' Florence2 classes",
))


def entry_for(model: str) -> tuple[CaptionerEntry, str]:
    """`NAME`, `NAME:MODEL`, or a hub id / folder: the kind its config.json's model_type names (default: blip)."""
    entry, model_id = CAPTIONERS.lookup(model, DEFAULT_CAPTIONER)
    if model_id != model:  # named explicitly
        return entry, model_id
    from alienstay.runtime.models import ModelUnavailable

    folder = Path(model_id).expanduser()
    try:  # a folder is read in place (resolve would hash its weights); a hub id through the cache
        config = (folder if folder.is_dir() else resolve(model_id).path) / "config.json"
        model_type = json.loads(config.read_text()).get("model_type") if config.exists() else None
    except ModelUnavailable:
        return entry, model_id  # the loader raises it again, with the fix
    return next((e for e in CAPTIONERS if model_type in e.model_types), entry), model_id


def load_captioner(model: str = DEFAULT_CAPTIONER, device: str = "cpu", dtype: str = "float32") -> Captioner:
    """A captioner's name (its default model), `NAME:MODEL`, or a hub id / folder (the kind its config names)."""
    entry, model = entry_for(model)
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
            new.append({"image_id": image_id, "caption": text, **captioner.record()})
        if len(new) % save_every < len(batch.ids):
            save()
    save()
    ws.log_run("caption", **captioner.record(), captioned_now=len(new))
    return len(new)


def prompt_string(ws: Workspace, image_id: str, max_tags: int = 12) -> str:
    """ "caption, tag, tag, ..." for one photo: its caption (when captioned) and its selected tags, surest first."""
    captions = read_captions(ws)
    caption = captions.loc[captions["image_id"] == image_id, "caption"]
    tags = ws.read_tags()
    chosen = tags[(tags["image_id"] == image_id) & tags["selected"]].sort_values("prob", ascending=False, kind="stable")
    parts = ([caption.iloc[-1]] if len(caption) and caption.iloc[-1] else []) + chosen["tag"].head(max_tags).tolist()
    return ", ".join(parts)
