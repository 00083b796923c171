"""A short caption per photo (BLIP), CLIP-Interrogator style: caption + selected tags = a prompt.

The restyling stage asks :func:`prompt_string` for "caption, tag, tag, ..." so an edit prompt
starts from what the photo already shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from alienstay.encoders.hf import ProcessorTransform, cpu_threads
from alienstay.models import ResolvedModel, resolve
from alienstay.tagging import image_batches, pending_images
from alienstay.workspace import Workspace, write_parquet

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"
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


def load_captioner(model: str = DEFAULT_CAPTION_MODEL, device: str = "cpu") -> Captioner:
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


def read_captions(ws: Workspace) -> pd.DataFrame:
    if not ws.captions_path.exists():
        return pd.DataFrame(columns=CAPTION_COLUMNS)
    return pd.read_parquet(ws.captions_path)


def run_captioning(
    ws: Workspace, captioner: Captioner, batch_size: int = 16, workers: int = 1, save_every: int = 256
) -> int:
    """Caption every usable photo without a caption from this model; saves as it goes (resumable)."""
    existing = read_captions(ws)
    existing = existing[existing["model_id"] == captioner.resolved.model_id]
    rows = pending_images(ws.read_catalog(), existing["image_id"].astype(str))
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
