"""The alien portrait: a text-to-image picture of a typical guest, from the persona's own words.

The prompt and negative prompt are package data (``persona/portrait.yaml``), so an installed
wheel has them; ``docs/aliens.md`` shows the same words under ``## Portrait prompt`` for humans
(a test keeps the two equal). The image is saved with a json beside it: prompt, model, seed, steps.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import yaml

from alienstay.workspace.layout import Workspace, atomic_path, write_json

DEFAULT_MODEL = "sd15"  # the text-to-image entry of the `cpu` choice (persona/text_to_image.py)
PROMPT_FILE = "portrait.yaml"


@dataclass(frozen=True)
class PortraitPrompt:
    prompt: str
    negative_prompt: str
    source: str  # where the words came from


def read_portrait_prompt() -> PortraitPrompt:
    """The packaged portrait prompt (whitespace collapsed, as the pipeline's tokenizer sees it)."""
    text = resources.files("alienstay.persona").joinpath(PROMPT_FILE).read_text(encoding="utf-8")
    words = yaml.safe_load(text)
    return PortraitPrompt(
        prompt=" ".join(str(words["prompt"]).split()),
        negative_prompt=" ".join(str(words.get("negative_prompt", "")).split()),
        source=f"alienstay/persona/{PROMPT_FILE} (= docs/aliens.md ## Portrait prompt)",
    )


def render_portrait(
    ws: Workspace, model: str = DEFAULT_MODEL, seed: int = 0, steps: int = 25,
    size: int = 512, guidance_scale: float = 7.5, device: str = "auto", dtype: str = "auto",
) -> Path:
    """Generate the portrait into ws.persona_dir; raises the resolver's ModelUnavailable without weights."""
    from alienstay.persona.text_to_image import TEXT_TO_IMAGE

    words = read_portrait_prompt()
    spec, weights = TEXT_TO_IMAGE.lookup(model, default="sd15")  # "flux-schnell[:FOLDER]" or an SD 1.5 id/folder
    started = time.perf_counter()
    image, model_id = spec.render(weights or spec.default_model, words.prompt, words.negative_prompt, seed, steps,
                                  size, guidance_scale, device=device, dtype=dtype)
    target = ws.persona_dir / f"alien_portrait_seed{seed}.png"
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG")
    write_json(
        {**asdict(words), "model_id": model_id, "text_to_image": spec.name, "seed": seed, "steps": steps, "size": size,
         "guidance_scale": guidance_scale, "seconds": time.perf_counter() - started, "image": target.name},
        target.with_suffix(".json"),
    )
    return target
