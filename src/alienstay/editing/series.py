"""A series: one recipe's values applied to a few varied photos with one fixed seed.

The output is a parameter-sweep grid (rows photos, columns values, the original first, the
guard's verdict on every cell) and one row an edit in ``edits.parquet``. Each photo's edits
are appended as soon as they are done (atomic rewrite), and an edit already in the table with
the same settings is skipped, so an interrupted series resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from alienstay import catalog as cat
from alienstay.editing.faithfulness import FAITHFUL, NOT_APPLIED, TOO_STRONG, Guard, verdict
from alienstay.editing.pipelines import EditRequest, Editor, fit_size
from alienstay.editing.recipes import Recipe
from alienstay.workspace import Workspace, atomic_path, read_optional

EDIT_COLUMNS = [
    "edit_id", "image_id", "recipe", "parameter", "value", "method", "model_id", "seed", "steps",
    "guidance_scale", "image_guidance_scale", "strength", "size", "seconds", "output_path", "source_path",
    "structure_ssim", "edge_ssim", "lpips", "dino_distance", "outside_mask_change", "clip_direction",
    "verdict", "verdict_reason",
    # beyond the agreed columns: what the guard also saw, and whether this was diffusion at all
    "pixel_change", "mask_area", "is_diffusion",
]
MIN_PHOTOS, MAX_PHOTOS = 5, 10
LCM_STEPS, LCM_GUIDANCE = 4, 1.0  # what LCM-LoRA is distilled for: a few steps, no guidance branches

log = logging.getLogger("alienstay")


# ---- which photos ------------------------------------------------------------------------
def choose_photos(
    photos: pd.DataFrame, count: int, clusters: pd.DataFrame | None = None, tags: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``count`` varied photos with the reason each was picked (columns image_id, prepared_path, why).

    Variety comes from the best grouping the workspace has: clusters (one photo a cluster, the
    largest first, round after round), else the selected `place` tag, else an even spread over
    the catalog.
    """
    photos = photos.sort_values("image_id").reset_index(drop=True)
    count = min(count, len(photos))
    groups = _groups_from_clusters(photos, clusters) or _groups_from_tags(photos, tags)
    if groups is None:
        picks = np.linspace(0, len(photos) - 1, count).round().astype(int) if count else []
        chosen = photos.iloc[list(dict.fromkeys(picks))].copy()
        chosen["why"] = [f"spread over the catalog (photo {i + 1} of {len(photos)})" for i in chosen.index]
        return chosen[["image_id", "prepared_path", "why"]].reset_index(drop=True)
    kind, members = groups
    rows: list[dict[str, str]] = []
    queues = {name: list(ids) for name, ids in members}
    while len(rows) < count and any(queues.values()):
        for name, queue in queues.items():
            if queue and len(rows) < count:
                rows.append({"image_id": queue.pop(0), "why": f"{kind} {name}"})
    ungrouped = [i for i in photos["image_id"] if i not in {r["image_id"] for r in rows}]
    rows += [{"image_id": i, "why": "not in any group"} for i in ungrouped[: count - len(rows)]]
    chosen = pd.DataFrame(rows).merge(photos[["image_id", "prepared_path"]], on="image_id")
    return chosen[["image_id", "prepared_path", "why"]]


def _groups_from_clusters(photos: pd.DataFrame, clusters: pd.DataFrame | None):
    if clusters is None or clusters.empty:
        return None
    known = clusters[clusters["image_id"].isin(photos["image_id"])]
    known = known.assign(noise=known["cluster"] < 0).sort_values(["noise", "image_id"])
    sizes = known.groupby("cluster").size().sort_values(ascending=False)
    order = [c for c in sizes.index if c >= 0] + [c for c in sizes.index if c < 0]
    members = [(f"{c} ({sizes[c]} photos)" if c >= 0 else "-1 (noise)", known.loc[known["cluster"] == c, "image_id"].tolist()) for c in order]
    return ("cluster", members) if members else None


def _groups_from_tags(photos: pd.DataFrame, tags: pd.DataFrame | None):
    if tags is None or tags.empty:
        return None
    place = tags[(tags["facet"] == "place") & tags["selected"] & tags["image_id"].isin(photos["image_id"])]
    place = place.sort_values(["prob", "image_id"], ascending=[False, True]).drop_duplicates("image_id")
    if place.empty:
        return None
    sizes = place.groupby("tag").size().sort_values(ascending=False)
    members = [(f"'{t}'", place.loc[place["tag"] == t, "image_id"].tolist()) for t in sizes.index]
    return "place tag", members


# ---- settings and identity ---------------------------------------------------------------
@dataclass(frozen=True)
class SeriesSettings:
    method: str
    seed: int = 0
    steps: int | None = None  # None: the recipe's setting for the method
    size: int = 512
    guidance_scale: float | None = None
    image_guidance_scale: float | None = None
    strength: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_request(recipe: Recipe, value_name: str, settings: SeriesSettings) -> EditRequest:
    """Recipe defaults for the method, overridden by what the user passed."""
    defaults = recipe.settings_for(settings.method)

    def pick(name: str, given: Any, fallback: Any) -> Any:
        return given if given is not None else defaults.get(name, fallback)

    extra = {k: v for k, v in defaults.items() if k in ("control", "conditioning_scale", "mask_query", "mask_threshold")}
    return EditRequest(
        value=recipe.value(value_name),
        seed=settings.seed,
        steps=int(pick("steps", settings.steps, 20)),
        size=settings.size,
        guidance_scale=pick("guidance_scale", settings.guidance_scale, None),
        image_guidance_scale=pick("image_guidance_scale", settings.image_guidance_scale, None),
        strength=pick("strength", settings.strength, None),
        negative_prompt=recipe.negative_prompt,
        extra={**extra, **settings.extra},
    )


def edit_key(image_id: str, recipe: Recipe, method: str, model_id: str, request: EditRequest) -> str:
    """Everything that determines the pixels, hashed: the same key means the same edit."""
    spec = {
        "image_id": image_id, "recipe": recipe.name, "method": method, "model_id": model_id,
        "value": request.value.name, "instruction": request.value.instruction, "prompt": request.value.prompt,
        "grade": request.value.grade, "seed": request.seed, "steps": request.steps, "size": request.size,
        "guidance_scale": request.guidance_scale, "image_guidance_scale": request.image_guidance_scale,
        "strength": request.strength, "negative": request.negative_prompt, "extra": request.extra,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- running -----------------------------------------------------------------------------
MaskFor = Callable[[str, Image.Image, EditRequest], "np.ndarray | None"]


def no_mask(image_id: str, image: Image.Image, request: EditRequest) -> None:
    return None


def read_edits(ws: Workspace) -> pd.DataFrame:
    edits = ws.read_edits()
    return pd.DataFrame(columns=EDIT_COLUMNS) if edits is None else edits


def run_series(
    ws: Workspace,
    recipe: Recipe,
    photos: pd.DataFrame,
    editor: Editor,
    settings: SeriesSettings,
    guard: Guard,
    mask_for: MaskFor = no_mask,
    on_edit: Callable[[], None] = lambda: None,
) -> pd.DataFrame:
    """Every value of ``recipe`` on every photo; returns this series' rows of edits.parquet."""
    table = read_edits(ws)
    done = set(table["edit_id"]) if not table.empty else set()
    series_ids: list[str] = []
    for photo in photos.itertuples():
        try:
            original = fit_size(Image.open(photo.prepared_path), settings.size)
        except (OSError, ValueError) as error:  # one unreadable photo must not stop the series
            log.warning("skipping %s: %s cannot be read (%s); rerun preprocess.", photo.image_id, photo.prepared_path, error)
            continue
        new_rows = []
        for value in recipe.value_names:
            request = build_request(recipe, value, settings)
            key = edit_key(photo.image_id, recipe, editor.method, editor.model_id, request)
            series_ids.append(key)
            output_path = ws.edits_dir / f"{key}.png"
            if key in done and output_path.exists():
                # Same pixels, judged again: the thresholds or the guard's models may have changed.
                previous = table.loc[table["edit_id"] == key].iloc[0]
                new_rows.append(_remeasure(recipe, photo, original, request, guard, mask_for, previous))
                on_edit()
                continue
            new_rows.append(_one_edit(recipe, photo, original, editor, request, guard, mask_for, key, output_path))
            on_edit()
        if new_rows:
            fresh = pd.DataFrame(new_rows, columns=EDIT_COLUMNS)
            table = fresh if table.empty else pd.concat([table[~table["edit_id"].isin(fresh["edit_id"])], fresh], ignore_index=True)
            ws.write_edits(table)  # after every photo: an interruption loses one photo at most
            done |= set(fresh["edit_id"])
    return table[table["edit_id"].isin(series_ids)].reset_index(drop=True)


def _remeasure(recipe, photo, original, request, guard, mask_for, previous: pd.Series) -> dict[str, Any]:
    edited = Image.open(previous["output_path"]).convert("RGB")
    mask = mask_for(photo.image_id, original, request)
    metrics = guard.measure(original, edited, mask=mask, source_text=recipe.source, target_text=request.value.prompt)
    return {**previous.to_dict(), **_judged(metrics, recipe, guard)}


def _judged(metrics, recipe: Recipe, guard: Guard) -> dict[str, Any]:
    decision, reason = verdict(metrics, recipe.thresholds, guard.direction_decides)
    return {
        "structure_ssim": metrics.structure_ssim, "edge_ssim": metrics.edge_ssim, "lpips": metrics.lpips,
        "dino_distance": metrics.dino_distance, "outside_mask_change": metrics.outside_mask_change,
        "clip_direction": metrics.clip_direction, "verdict": decision, "verdict_reason": reason,
        "pixel_change": metrics.pixel_change, "mask_area": metrics.mask_area,
    }


def _one_edit(recipe, photo, original, editor, request, guard, mask_for, key, output_path) -> dict[str, Any]:
    mask = mask_for(photo.image_id, original, request)
    started = time.perf_counter()
    output = editor.edit(original, request, mask=mask)
    seconds = time.perf_counter() - started
    edited = output.image.resize(original.size, Image.Resampling.LANCZOS) if output.image.size != original.size else output.image
    with atomic_path(output_path) as tmp:
        edited.save(tmp, format="PNG")
    metrics = guard.measure(original, edited, mask=output.mask, source_text=recipe.source, target_text=request.value.prompt)
    return {
        "edit_id": key, "image_id": photo.image_id, "recipe": recipe.name, "parameter": recipe.parameter,
        "value": request.value.name, "method": editor.method, "model_id": editor.model_id, "seed": request.seed,
        "steps": request.steps if editor.is_diffusion else 0,
        "guidance_scale": _num(request.guidance_scale), "image_guidance_scale": _num(request.image_guidance_scale),
        "strength": _num(request.strength), "size": request.size, "seconds": seconds,
        "output_path": str(output_path), "source_path": str(photo.prepared_path),
        **_judged(metrics, recipe, guard), "is_diffusion": editor.is_diffusion,
    }


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def usable_photos(ws: Workspace) -> pd.DataFrame:
    photos = cat.usable(ws.read_catalog())
    photos = photos[photos["prepared_path"].notna()]
    if photos.empty:
        raise ValueError(
            f"no usable prepared photos in {ws.catalog_path}: run `alienstay preprocess --workspace {ws.root}` first."
        )
    return photos


# ---- the grid ----------------------------------------------------------------------------
VERDICT_COLOURS = {FAITHFUL: "#1a7f37", TOO_STRONG: "#cf222e", NOT_APPLIED: "#6e7781"}


def draw_grid(rows: pd.DataFrame, recipe: Recipe, photos: pd.DataFrame, target: Path) -> Path:
    """Rows photos, columns values (original first); each cell titled with its verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = recipe.value_names
    n_rows, n_cols = len(photos), len(values) + 1
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 2.2 * n_rows + 0.9), squeeze=False)
    for r, photo in enumerate(photos.itertuples()):
        cells = rows[rows["image_id"] == photo.image_id].set_index("value")
        size = int(cells["size"].iloc[0]) if len(cells) else 512
        axes[r][0].imshow(fit_size(Image.open(photo.prepared_path), size))
        axes[r][0].set_title("original", fontsize=8)
        axes[r][0].set_ylabel(_short(photo.image_id), fontsize=7)
        for c, value in enumerate(values, start=1):
            axis = axes[r][c]
            if value in cells.index:
                cell = cells.loc[value]
                axis.imshow(Image.open(cell["output_path"]))
                axis.set_title(f"{value}: {cell['verdict']}\nstruct {cell['structure_ssim']:.2f} edge {cell['edge_ssim']:.2f}",
                               fontsize=7, color=VERDICT_COLOURS.get(cell["verdict"], "black"))
                for spine in axis.spines.values():
                    spine.set_edgecolor(VERDICT_COLOURS.get(cell["verdict"], "black"))
                    spine.set_linewidth(3)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    first = rows.iloc[0]
    kind = "diffusion" if bool(first["is_diffusion"]) else "CLASSICAL GRADE - NOT DIFFUSION"
    figure.suptitle(
        f"{recipe.name} ({recipe.parameter}, persona {'/'.join(recipe.persona)}): {first['method']} [{kind}]\n"
        f"model {first['model_id']} | seed {first['seed']} | steps {first['steps']} | size {first['size']}",
        fontsize=9,
    )
    figure.tight_layout()
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return target


def _short(image_id: str, width: int = 22) -> str:
    return image_id if len(image_id) <= width else "..." + image_id[-(width - 3):]


# ---- the stage: workspace in, workspace out ---------------------------------------------
@dataclass(frozen=True)
class EditOptions:
    """Everything `alienstay edit` can be told; None means the recipe's or the method's default."""

    recipe: str = "time_of_day"
    images: int = 8
    method: str | None = None
    steps: int | None = None
    size: int = 512
    seed: int = 0
    recipes_path: Path | None = None
    model: str | None = None
    controlnet: str | None = None
    control: str | None = None
    guidance: float | None = None
    image_guidance: float | None = None
    strength: float | None = None
    mask: Path | None = None
    mask_model: str = "CIDAS/clipseg-rd64-refined"
    lcm_lora: str | None = None
    attention_slicing: bool = False
    cpu_offload: bool = False
    clip: str = "none"
    dino: str | None = None


@dataclass
class SeriesResult:
    recipe: Recipe
    photos: pd.DataFrame
    rows: pd.DataFrame
    grid_path: Path


def photos_for_workspace(ws: Workspace, count: int) -> pd.DataFrame:
    """The varied photos a series would edit, with why each was picked."""
    if not MIN_PHOTOS <= count <= MAX_PHOTOS:
        raise ValueError(f"--images {count}: pick between {MIN_PHOTOS} and {MAX_PHOTOS} photos for a readable grid.")
    return choose_photos(usable_photos(ws), count, read_optional(ws.clusters_path), read_optional(ws.tags_path))


def load_guard(clip: str = "none", dino: str | None = None) -> Guard:
    """The guard with the learned models asked for; 'none' leaves that metric recorded as missing."""
    encoder = None
    if clip and clip != "none":
        from alienstay.encoders import encoder_entry, load_encoder

        encoder = load_encoder(clip)
    dino_model = dino_processor = None
    if dino:
        from transformers import AutoImageProcessor, AutoModel

        from alienstay.models import resolve

        resolved = resolve(dino)
        dino_processor = AutoImageProcessor.from_pretrained(resolved.path)
        dino_model = AutoModel.from_pretrained(resolved.path).eval()
    # The encoder registry says whether an encoder's text direction may decide a verdict.
    direction_decides = encoder is None or encoder_entry(encoder).direction_decides
    if not direction_decides:
        log.warning("--clip %s: the offline encoder's CLIP direction is recorded but does not decide verdicts.", clip)
    return Guard(encoder=encoder, dino_model=dino_model, dino_processor=dino_processor, direction_decides=direction_decides)


def make_mask_for(recipe: Recipe, method: str, mask: Path | None, mask_model: str) -> MaskFor:
    """Masks for a masked recipe: a file, a folder of <stem>.png, or CLIPSeg on the recipe's query."""
    from alienstay.editing.pipelines import ClipSegMasker, read_mask

    query = recipe.settings_for(method).get("mask_query")
    if mask is None and not query:
        return no_mask
    if mask is not None:
        mask = Path(mask)
        if not mask.exists():
            raise ValueError(f"mask {mask} does not exist: pass a mask image or a folder of <image stem>.png masks.")

        def from_file(image_id: str, image: Image.Image, request: EditRequest) -> np.ndarray:
            path = mask / f"{Path(image_id).stem}.png" if mask.is_dir() else mask
            if not path.is_file():
                raise ValueError(f"no mask for {image_id}: expected {path}.")
            return read_mask(path, image.size)

        return from_file
    masker = ClipSegMasker(mask_model)

    def from_query(image_id: str, image: Image.Image, request: EditRequest) -> np.ndarray:
        return masker.mask(image, str(request.extra.get("mask_query", query)), float(request.extra.get("mask_threshold", 0.4)))

    return from_query


def mask_identity(recipe: Recipe, method: str, options: EditOptions) -> dict[str, str]:
    """What decides a masked edit's mask, so a new mask file or mask model is a new edit."""
    if options.mask is not None:
        mask = Path(options.mask)
        stamp = mask.stat().st_mtime_ns if mask.exists() else "missing"
        return {"mask_file": f"{mask.resolve()}@{stamp}"}
    if recipe.settings_for(method).get("mask_query"):
        return {"mask_model": options.mask_model}
    return {}


def edit_workspace(ws: Workspace, options: EditOptions, on_edit: Callable[[], None] = lambda: None,
                   on_start: Callable[[int], None] = lambda total: None) -> SeriesResult:
    """Run one recipe's series on the workspace: edits/, edits.parquet, report/edits_<recipe>.png."""
    from alienstay.editing.pipelines import Speed, load_editor
    from alienstay.editing.recipes import load_recipes

    recipe = load_recipes(options.recipes_path).get(options.recipe)
    method = options.method or recipe.method
    recipe.check_method(method)
    photos = photos_for_workspace(ws, options.images)
    speed = Speed(lcm_lora=options.lcm_lora, attention_slicing=options.attention_slicing, cpu_offload=options.cpu_offload)
    editor = load_editor(method, recipe, model=options.model, controlnet=options.controlnet, control=options.control, speed=speed)
    guard = load_guard(options.clip, options.dino)
    mask_for = make_mask_for(recipe, method, options.mask, options.mask_model)
    extra = {"control": options.control} if options.control else {}
    extra.update(mask_identity(recipe, method, options))
    lcm = options.lcm_lora is not None and editor.is_diffusion
    settings = SeriesSettings(
        method=method, seed=options.seed, size=options.size,
        steps=options.steps if options.steps is not None or not lcm else LCM_STEPS,
        guidance_scale=options.guidance if options.guidance is not None or not lcm else LCM_GUIDANCE,
        image_guidance_scale=options.image_guidance, strength=options.strength, extra=extra,
    )
    on_start(len(photos) * len(recipe.values))
    rows = run_series(ws, recipe, photos, editor, settings, guard, mask_for, on_edit)
    if rows.empty:
        raise ValueError(f"no photo of the series could be edited (see the warnings above); check {ws.catalog_path}.")
    grid = draw_grid(rows, recipe, photos, ws.report_dir / f"edits_{recipe.name}.png")
    ws.log_run("edit", recipe=recipe.name, method=method, model_id=editor.model_id, seed=options.seed,
               steps=options.steps, size=options.size, images=len(photos), clip=options.clip, dino=options.dino)
    return SeriesResult(recipe=recipe, photos=photos, rows=rows, grid_path=grid)
