"""REPORT.md from the workspace alone: each stage's note, stitched in the order of the flow.

Every stage writes its own note into ``report/`` (dataset.md, tags.md, clusters.md, the
edit grids); this module only orders them, adds what the edit table says, and says plainly
which stage has not run yet and the command that runs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import DamagedTable, Workspace, write_text


@dataclass(frozen=True)
class Section:
    title: str
    note: str  # file name inside report/
    command: str  # what fills it when missing
    inputs: tuple[str, ...] = ()  # workspace tables it is made from (a damaged one is named)


STAGE_NOTES = [
    Section("The dataset", "dataset.md", "alienstay stats", ("catalog", "metadata")),
    Section("Tags: what an alien can search by", "tags.md", "alienstay tag && alienstay analyse", ("catalog", "tags")),
    Section("Tags checked against labelled photos", "evaluation.md", "alienstay evaluate --labels FILE"),
    Section("Clusters by tags vs the real classes", "clusters.md", "alienstay cluster", ("catalog", "tags", "clusters")),
    Section("The hotel question by retrieval", "retrieval.md", "alienstay retrieval", ("catalog", "embedding_ids")),
]


def demote_headings(markdown: str, levels: int = 1) -> str:
    """A stage note's own `#` headings sit one level below the report's section heading."""
    lines = []
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            line = "#" * levels + line
        lines.append(line)
    return "\n".join(lines)


def stage_section(ws: Workspace, section: Section, damaged: dict[str, str]) -> str:
    path = ws.report_dir / section.note
    broken = [damaged[name] for name in section.inputs if name in damaged]
    if broken:  # a note from before the damage would no longer match the tables: say so instead
        return f"## {section.title}\n\n" + "".join(f"_Damaged input, not shown: {text}_\n\n" for text in broken)
    if not path.exists():
        commands = " && ".join(f"{c} --workspace {ws.root}" for c in section.command.split(" && "))  # each takes it
        return f"## {section.title}\n\n_Not run yet: `{commands}`._\n"
    note = path.read_text(encoding="utf-8")
    if note.startswith("# "):  # the note's own title gives way to the report's section title
        note = note.split("\n", 1)[1] if "\n" in note else ""
    return f"## {section.title}\n\n{demote_headings(note.strip())}\n"


def edits_section(ws: Workspace, damaged: dict[str, str]) -> str:
    title = "## Restyles, and whether they still show the same room\n\n"
    if "edits" in damaged:
        return title + f"_Damaged, not shown: {damaged['edits']}_\n"
    edits = ws.read("edits", optional=True)
    if edits is None:
        return title + f"_Not run yet: `alienstay edit --recipe night --workspace {ws.root}`._\n"
    parts = [title]
    methods = ", ".join(sorted(edits["method"].astype(str).unique()))
    parts.append(
        f"{len(edits)} edits of {edits['image_id'].nunique()} photos over every run in this workspace "
        f"(each grid shows its recipe's latest series); methods: {methods}.\n"
    )
    if "classical" in set(edits["method"].astype(str)):
        parts.append(
            "\n**Note:** the `classical` method is a photographic grade (exposure, colour "
            "temperature), NOT diffusion; it runs where no diffusion weights could be had.\n"
        )
    verdicts = edits.pivot_table(
        index=["recipe", "method"], columns="verdict", values="edit_id", aggfunc="count", fill_value=0
    )
    parts.append("\nVerdicts per recipe and method (faithful / too_strong / not_applied):\n\n")
    parts.append(verdicts.to_markdown() + "\n")
    for recipe in sorted(edits["recipe"].astype(str).unique()):
        grid = ws.report_dir / f"edits_{recipe}.png"
        if grid.exists():
            parts.append(f"\n### {recipe}\n\n![{recipe} series]({grid.name})\n")
    flagged = edits[edits["verdict"] != "faithful"]
    if len(flagged):
        columns = [c for c in ["image_id", "recipe", "value", "verdict", "verdict_reason"] if c in flagged]
        parts.append("\nFlagged edits (not shown to guests as-is):\n\n")
        parts.append(flagged[columns].to_markdown(index=False) + "\n")
    return "".join(parts)


def persona_section(ws: Workspace) -> str:
    """The guest drawn by code (always: vector, no weights needed), and the diffusion portrait when rendered."""
    from alienstay.persona.illustration import CAPTION, draw

    title = "## The alien guest\n\n"
    text = "The persona and its hypotheses are in `docs/aliens.md`.\n"
    drawn = draw(ws.report_dir, stem="alien_illustration")[1]
    parts = [title, text, f"\n![the alien guest, drawn by code]({drawn.name})\n\n_{CAPTION}_\n"]
    images = sorted(ws.persona_dir.glob("*.png")) if ws.persona_dir.exists() else []
    if not images:
        parts.append(f"\n_No diffusion portrait yet: `alienstay persona --workspace {ws.root}` needs a text-to-image model._\n")
        return "".join(parts)
    image = images[-1]
    meta_path = image.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    caption = ", ".join(f"{k}: {meta[k]}" for k in ("model_id", "seed", "steps") if k in meta)
    relative = Path("..") / image.relative_to(ws.root)
    parts.append(f"\n![alien portrait, text-to-image]({relative.as_posix()})\n\n_Rendered by `alienstay persona`: {caption}_\n")
    return "".join(parts)


def tagger_fallback(ws: Workspace) -> list[str]:
    """The offline tagger made the tags: a fallback with less to say than CLIP or SigLIP, named first."""
    try:
        meta_path = ws.tag_outputs().embeddings_meta
        model = json.loads(meta_path.read_text()).get("model_id", "") if meta_path.exists() else ""
    except (DamagedTable, OSError, ValueError):  # a damaged manifest or meta is named under "Damaged tables"
        return []
    if not str(model).startswith("offline"):
        return []
    return [f"tag: the offline tagger (`{model}`: ImageNet classes bridged to the words, calibrated), NOT CLIP or "
            "SigLIP; the facets it does not judge are silent (the photo pages say \"not judged\")"]


def demo_notes(ws: Workspace) -> str:
    """What could not run as designed on this machine (the tagger, the demo's edits and portrait), said at the top."""
    path = ws.report_dir / "demo.json"
    log = json.loads(path.read_text()) if path.exists() else {}
    lines = [f"- {line}" for line in tagger_fallback(ws) + log.get("fallbacks", []) + log.get("skipped", [])]
    return "**Fell back or skipped on this machine:**\n\n" + "\n".join(lines) + "\n" if lines else ""


def damaged_notes(damaged: dict[str, str]) -> str:
    """Tables that exist but cannot be read, first: each with how to restore it."""
    if not damaged:
        return ""
    return "**Damaged tables:**\n\n" + "\n".join(f"- `{name}`: {text}" for name, text in damaged.items()) + "\n"


def build_report(ws: Workspace) -> Path:
    """Write report/REPORT.md from whatever the workspace holds now."""
    damaged = ws.damaged()
    sections = [f"# alienstay report: `{ws.root}`\n", damaged_notes(damaged), demo_notes(ws), persona_section(ws)]
    sections += [stage_section(ws, section, damaged) for section in STAGE_NOTES]
    sections.append(edits_section(ws, damaged))
    return write_text("\n".join(sections), ws.report_dir / "REPORT.md")
