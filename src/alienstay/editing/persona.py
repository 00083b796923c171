"""The alien portrait: a text-to-image picture of a typical guest, from the persona's own words.

The prompt is the ```-fenced block under ``## Portrait prompt`` in docs/aliens.md (the lead
writes it), with the ``Negative prompt:`` line below it; without that section, the preamble's
"Look" line is used. The image is saved with a json beside it: prompt, model, seed, steps.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from alienstay.editing.pipelines import DEFAULT_MODELS, _from_pretrained
from alienstay.workspace import Workspace, atomic_path, write_json

PERSONA_DOC = Path(__file__).resolve().parents[3] / "docs" / "aliens.md"
FALLBACK_LOOK = (
    "portrait of a tall, slender alien with translucent blue-violet skin with bioluminescent patterns, "
    "large dark eyes, gill frills, photorealistic"
)


@dataclass(frozen=True)
class PortraitPrompt:
    prompt: str
    negative_prompt: str
    source: str  # where the words came from


def read_portrait_prompt(doc: Path = PERSONA_DOC) -> PortraitPrompt:
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    section = re.search(r"^## Portrait prompt\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if section:
        block = re.search(r"```[^\n]*\n(.*?)```", section.group(1), flags=re.S)
        negative = re.search(r"Negative prompt:\s*`?([^`\n]+)`?", section.group(1))
        if block:
            return PortraitPrompt(
                prompt=" ".join(block.group(1).split()),
                negative_prompt=negative.group(1).strip() if negative else "",
                source=f"{doc} ## Portrait prompt",
            )
    return PortraitPrompt(prompt=FALLBACK_LOOK, negative_prompt="", source="preamble Look line (no ## Portrait prompt)")


def render_portrait(
    ws: Workspace, model: str = DEFAULT_MODELS["text-to-image"], seed: int = 0, steps: int = 25,
    size: int = 512, guidance_scale: float = 7.5, doc: Path = PERSONA_DOC,
) -> Path:
    """Generate the portrait into ws.persona_dir; raises the resolver's ModelUnavailable without weights."""
    from diffusers import StableDiffusionPipeline

    words = read_portrait_prompt(doc)
    pipe, model_id = _from_pretrained(StableDiffusionPipeline, model)
    started = time.perf_counter()
    image = pipe(
        prompt=words.prompt,
        negative_prompt=words.negative_prompt or None,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        height=size,
        width=size,
        generator=torch.Generator(device="cpu").manual_seed(seed),
    ).images[0]
    target = ws.persona_dir / f"alien_portrait_seed{seed}.png"
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG")
    write_json(
        {**asdict(words), "model_id": model_id, "seed": seed, "steps": steps, "size": size,
         "guidance_scale": guidance_scale, "seconds": time.perf_counter() - started, "image": target.name},
        target.with_suffix(".json"),
    )
    return target
