"""Which model serves each role, per preset: one table, one entry a (preset, role).

`cpu` is today's defaults (fast on a laptop), `gpu` the best quality on one 24-80 GB GPU,
`offline` what runs from pip-installed weights alone (no hub). A preset may inherit the
roles it does not name from another (`gpu` from `cpu`), so a new model is one
``MEMBERS.register(Member(...))`` line. `auto` picks by hardware (devices.probe()).
A preset may also name the edit method it uses for every recipe (``Preset.editor``: `gpu`
edits with qwen-image-edit); `--method` wins over it, and the recipe must allow the method.

A member names a registry entry (registry kind, entry name, weights key), never a model id:
the hub id, its licence and the files its loader reads (what `alienstay models download`
fetches) are the entry's ``weights`` (runtime/weights.py), stated once beside its loader.
"""

from __future__ import annotations

from dataclasses import dataclass

from alienstay.runtime.devices import Machine
from alienstay.runtime.registry import Registry, registry_of
from alienstay.runtime.weights import (  # noqa: F401  (the file lists, named here since before the registries held them)
    CONTROLNET_FILES,
    FLUX_FILES,
    PIPELINE_FILES,
    TRANSFORMERS_FILES,
    WEIGHTS_FALLBACK,
    Weights,
    defaults,
)

AUTO = "auto"
# The roles a preset fills, in the order `models list` shows them.
ROLES = (
    "tagger", "captioner", "masker", "masker:segmenter", "edit:instruct-pix2pix", "edit:controlnet", "control:mlsd", "control:canny",
    "edit:inpaint", "text-to-image", "guard:clip", "guard:dino", "edit:qwen-image-edit", "edit:kontext",
)  # fmt: skip
# Roles only the `gpu` preset fills (issue 11's editors: too large for a laptop; the owlv2-sam masker's SAM).
GPU_ONLY_ROLES = ("edit:qwen-image-edit", "edit:kontext", "masker:segmenter")


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
    """The model that serves `role` in `preset`: an entry's weights, named by registry, entry and key."""

    preset: str
    role: str
    registry: str  # the kind of the registry ("encoder", "edit method", "masker"...)
    entry: str  # the entry that loads it (a masker member's entry is the masker the preset uses)
    key: str = ""  # which of the entry's weights ("tagger@siglip2-so400m"); "": its first default
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.preset}/{self.role}"

    @property
    def spec(self) -> object:
        return registry_of(self.registry).get(self.entry)

    @property
    def weights(self) -> Weights:
        declared = self.spec.weights
        key = self.key or next(iter(defaults(declared)))
        if key not in declared:
            raise ValueError(f"preset member {self.name}: the {self.registry} {self.entry!r} declares no weights "
                             f"{key!r}; use one of {', '.join(declared)}.")
        return declared[key]

    @property
    def model(self) -> str:
        return self.weights.model

    @property
    def licence(self) -> str:
        return self.weights.licence

    @property
    def files(self) -> tuple[str, ...] | None:
        return self.weights.files

    @property
    def folder_form(self) -> str:
        """How the role's option takes a local copy (FLUX: "flux-schnell:{folder}"), as the entry says."""
        return getattr(self.spec, "folder_form", "{folder}")

    @property
    def fetchable(self) -> bool:
        return self.files is not None


PRESETS: Registry[Preset] = Registry("preset", group="alienstay.presets")
MEMBERS: Registry[Member] = Registry("preset member", group="alienstay.preset_members")

PRESETS.register(Preset("cpu", "fast on a laptop: small 2022-era models, fp32 on the CPU"))
PRESETS.register(Preset("gpu", "best quality on one 24-80 GB GPU (bf16/fp16)", inherits="cpu", editor="qwen-image-edit"))
PRESETS.register(Preset("offline", "pip-installed weights only: no model hub needed", editor="classical"))

for member in (
    Member("cpu", "tagger", "encoder", "hf"),
    Member("cpu", "captioner", "captioner", "blip"),
    Member("cpu", "masker", "masker", "clipseg"),
    Member("cpu", "edit:instruct-pix2pix", "edit method", "instruct-pix2pix"),
    Member("cpu", "edit:controlnet", "edit method", "controlnet"),
    Member("cpu", "control:mlsd", "control map", "mlsd"),
    Member("cpu", "control:canny", "control map", "canny"),
    Member("cpu", "edit:inpaint", "edit method", "inpaint"),
    Member("cpu", "text-to-image", "text-to-image model", "sd15"),
    Member("cpu", "guard:clip", "encoder", "hf"),
    Member("cpu", "guard:dino", "structure model", "dinov2"),
    # gpu: larger encoders where a GPU makes them cheap; Qwen-Image-Edit edits every recipe
    # (Preset.editor), the SD 1.5-based editors stay offered through --method.
    Member("gpu", "tagger", "encoder", "hf", "tagger@siglip2-so400m", note=(
        "SigLIP 2 (per-word sigmoid scores); google/siglip2-base-patch16-224 is the middle option")),
    Member("gpu", "captioner", "captioner", "florence2", "captioner@large", note=(
        "Florence-2 <DETAILED_CAPTION> through transformers' own Florence2 classes (no remote code)")),
    Member("gpu", "guard:dino", "structure model", "dinov2", "guard:dino@base"),
    # the owlv2-sam masker (editing/owlsam.py): two models, one role each, both fetched by `models download`
    Member("gpu", "masker", "masker", "owlv2-sam", "masker@large", note="owlv2-sam: OWLv2 finds every box of the mask query"),
    Member("gpu", "masker:segmenter", "masker", "owlv2-sam", "masker:segmenter@huge",
           note="owlv2-sam: SAM masks the boxes at full resolution"),
    Member("gpu", "edit:qwen-image-edit", "edit method", "qwen-image-edit", note="the gpu editor for every recipe"),
    Member("gpu", "edit:kontext", "edit method", "kontext", note="offered, never a default (--method kontext)"),
    Member("gpu", "text-to-image", "text-to-image model", "flux-schnell", note="persona --model flux-schnell"),
    Member("offline", "tagger", "encoder", "offline",
           note="EfficientNet-Lite1 + all-MiniLM-L6-v2 (ConSE) from the `offline` extra's wheels"),
    Member("offline", "edit:classical", "edit method", "classical", note="a colour grade, NOT diffusion"),
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
