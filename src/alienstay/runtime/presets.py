"""Which model serves each role, per preset: one table, one entry a (preset, role).

`cpu` is today's defaults (fast on a laptop), `gpu` the best quality on one 24-80 GB GPU,
`offline` what runs from pip-installed weights alone (no hub). A preset may inherit the
roles it does not name from another (`gpu` from `cpu`), so a new model is one
``MEMBERS.register(Member(...))`` line. `auto` picks by hardware (devices.probe()).
A preset may also name the edit method it uses for every recipe (``Preset.editor``: `gpu`
edits with qwen-image-edit); `--method` wins over it, and the recipe must allow the method.

Each entry names the model's licence (read from its model card) and the files its loader
reads (allow-patterns): `alienstay models download` fetches exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass

from alienstay.runtime.devices import Machine
from alienstay.runtime.registry import Registry

AUTO = "auto"
# The roles a preset fills, in the order `models list` shows them.
ROLES = (
    "tagger", "captioner", "masker", "masker:segmenter", "edit:instruct-pix2pix", "edit:controlnet", "control:mlsd", "control:canny",
    "edit:inpaint", "text-to-image", "guard:clip", "guard:dino", "edit:qwen-image-edit", "edit:kontext",
)  # fmt: skip
# Roles only the `gpu` preset fills (issue 11's editors: too large for a laptop; the owlv2-sam masker's SAM).
GPU_ONLY_ROLES = ("edit:qwen-image-edit", "edit:kontext", "masker:segmenter")
# What a FLUX / Qwen-Image pipeline loads (= editing.flux.FLUX_FILES, a test keeps them equal).
FLUX_FILES = ("model_index.json", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors")

# What a transformers model loads: configs, tokenizer files and the safetensors weights (the
# pickled .bin, TF and Flax copies in the same repos are never read). Repos without
# safetensors fall back to WEIGHTS_FALLBACK (see model_store.download).
TRANSFORMERS_FILES = ("*.json", "*.txt", "*.model", "model.safetensors")
WEIGHTS_FALLBACK = ("pytorch_model.bin",)
# What a diffusers pipeline loads (the same list as editing.pipelines.PIPELINE_FILES, a test
# keeps them equal): SD repos also hold single-file checkpoints, fp16/non-EMA variants and a
# safety checker, tens of GB never read.
PIPELINE_FILES = (
    "model_index.json",
    *(f"{part}/*.json" for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "feature_extractor")),
    "tokenizer/*.txt",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)
CONTROLNET_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    inherits: str | None = None  # roles this preset does not name come from that preset
    # The edit method of every recipe under this preset (`alienstay edit` without --method);
    # None: each recipe's own `method`. Its weights are the preset's `edit:<method>` member.
    editor: str | None = None


@dataclass(frozen=True)
class Member:
    """The model that serves `role` in `preset`."""

    preset: str
    role: str
    model: str  # a hub id, or a registry name whose weights ship with pip packages ("offline", "classical")
    licence: str
    files: tuple[str, ...] | None = TRANSFORMERS_FILES  # allow-patterns; None: nothing to fetch (packaged)
    note: str = ""
    entry: str = ""  # the registry entry that loads it, where the role does not say (a masker: "owlv2-sam")
    folder_form: str = "{folder}"  # how the role's option takes a local copy (FLUX: "flux-schnell:{folder}")

    @property
    def name(self) -> str:
        return f"{self.preset}/{self.role}"

    @property
    def fetchable(self) -> bool:
        return self.files is not None


PRESETS: Registry[Preset] = Registry("preset")
MEMBERS: Registry[Member] = Registry("preset member")

PRESETS.register(Preset("cpu", "fast on a laptop: small 2022-era models, fp32 on the CPU"))
PRESETS.register(Preset("gpu", "best quality on one 24-80 GB GPU (bf16/fp16)", inherits="cpu", editor="qwen-image-edit"))
PRESETS.register(Preset("offline", "pip-installed weights only: no model hub needed", editor="classical"))

_SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
_OPENRAIL = "CreativeML OpenRAIL-M"
for member in (
    Member("cpu", "tagger", "openai/clip-vit-base-patch32", "MIT"),
    Member("cpu", "captioner", "Salesforce/blip-image-captioning-base", "BSD-3-Clause"),
    Member("cpu", "masker", "CIDAS/clipseg-rd64-refined", "Apache-2.0"),
    Member("cpu", "edit:instruct-pix2pix", "timbrooks/instruct-pix2pix", "MIT", PIPELINE_FILES),
    Member("cpu", "edit:controlnet", _SD15, _OPENRAIL, PIPELINE_FILES),
    Member("cpu", "control:mlsd", "lllyasviel/control_v11p_sd15_mlsd", _OPENRAIL, CONTROLNET_FILES),
    Member("cpu", "control:canny", "lllyasviel/control_v11p_sd15_canny", _OPENRAIL, CONTROLNET_FILES),
    Member("cpu", "edit:inpaint", "stable-diffusion-v1-5/stable-diffusion-inpainting", _OPENRAIL, PIPELINE_FILES),
    Member("cpu", "text-to-image", _SD15, _OPENRAIL, PIPELINE_FILES),
    Member("cpu", "guard:clip", "openai/clip-vit-base-patch32", "MIT"),
    Member("cpu", "guard:dino", "facebook/dinov2-small", "Apache-2.0"),
    # gpu: larger encoders where a GPU makes them cheap; Qwen-Image-Edit edits every recipe
    # (Preset.editor), the SD 1.5-based editors stay offered through --method.
    Member("gpu", "tagger", "google/siglip2-so400m-patch14-384", "Apache-2.0", note=(
        "SigLIP 2 (per-word sigmoid scores); google/siglip2-base-patch16-224 is the middle option")),
    Member("gpu", "captioner", "florence-community/Florence-2-large", "MIT", note=(
        "Florence-2 <DETAILED_CAPTION> through transformers' own Florence2 classes (no remote code)")),
    Member("gpu", "guard:dino", "facebook/dinov2-base", "Apache-2.0"),
    # the owlv2-sam masker (editing/owlsam.py): two models, one role each, both fetched by `models download`
    Member("gpu", "masker", "google/owlv2-large-patch14-ensemble", "Apache-2.0", entry="owlv2-sam",
           note="owlv2-sam: OWLv2 finds every box of the mask query"),
    Member("gpu", "masker:segmenter", "facebook/sam-vit-huge", "Apache-2.0", entry="owlv2-sam",
           note="owlv2-sam: SAM masks the boxes at full resolution"),
    Member("gpu", "edit:qwen-image-edit", "Qwen/Qwen-Image-Edit", "Apache-2.0", FLUX_FILES,
           "the gpu editor for every recipe"),
    Member("gpu", "edit:kontext", "black-forest-labs/FLUX.1-Kontext-dev",
           "FLUX.1-dev Non-Commercial License: NOT for commercial use", FLUX_FILES,
           "offered, never a default (--method kontext)"),
    Member("gpu", "text-to-image", "black-forest-labs/FLUX.1-schnell", "Apache-2.0", FLUX_FILES,
           "persona --model flux-schnell", folder_form="flux-schnell:{folder}"),
    Member("offline", "tagger", "offline", "Apache-2.0 (EfficientNet-Lite1) + MIT (all-MiniLM-L6-v2)", None,
           "EfficientNet-Lite1 + all-MiniLM-L6-v2 (ConSE) from the `offline` extra's wheels"),
    Member("offline", "edit:classical", "classical", "this project's code", None, "a colour grade, NOT diffusion"),
):  # fmt: skip
    MEMBERS.register(member)


# The option through which a command takes each role's model (a local copy in a hint); others: --model.
ROLE_OPTIONS = {
    "captioner": "--caption-model", "masker": "--mask-model", "masker:segmenter": "--mask-segmenter",
    "guard:clip": "--clip", "guard:dino": "--dino", "control:mlsd": "--controlnet", "control:canny": "--controlnet",
}  # fmt: skip


def needing(model: str) -> list[Member]:
    """The fetchable members that load `model`, in registration order (cpu before gpu)."""
    return [m for m in MEMBERS if m.model == model and m.fetchable]


def folder_hint(member: Member) -> str:
    """The option and value that pass a local copy of `member`'s weights, as a user types them."""
    folder = "/path/to/" + member.model.split("/")[-1]
    return f"{ROLE_OPTIONS.get(member.role, '--model')} {member.folder_form.format(folder=folder)}"


def members(preset: str) -> dict[str, Member]:
    """role -> the member serving it in `preset` (its own entries over the inherited ones)."""
    chain, name = [], preset
    while name:
        chain.append(PRESETS.get(name))
        name = chain[-1].inherits
    table: dict[str, Member] = {}
    for link in reversed(chain):  # the base first, so the preset's own entries win
        table.update({m.role: m for m in MEMBERS if m.preset == link.name})
    order = {role: i for i, role in enumerate(ROLES)}
    return dict(sorted(table.items(), key=lambda item: order.get(item[0], len(order))))


def model_for(preset: str, role: str) -> Member | None:
    """The member serving `role` in `preset`, or None when the preset has none (offline: no captioner)."""
    return members(pick(preset) if preset == AUTO else preset).get(role)


def preset_model(preset: str | None, role: str) -> str | None:
    """The hub id serving `role` in `preset`; None without a preset or where it has no fetchable model."""
    if preset is None:
        return None
    member = model_for(preset, role)
    return member.model if member is not None and member.fetchable else None


def preset_editor(preset: str | None) -> str | None:
    """The edit method `preset` (or the preset it inherits from) uses for every recipe; None: the recipe's."""
    name = pick(preset) if preset is not None else None
    while name:
        link = PRESETS.get(name)
        if link.editor:
            return link.editor
        name = link.inherits
    return None


def pick(preset: str, machine: Machine | None = None) -> str:
    """`auto`: `gpu` where CUDA is present, `cpu` otherwise; any other name is checked and returned."""
    if preset != AUTO:
        return PRESETS.get(preset).name
    if machine is None:
        from alienstay.runtime.devices import probe

        machine = probe()
    return "gpu" if machine.cuda_devices else "cpu"
