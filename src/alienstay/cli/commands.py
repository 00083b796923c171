"""The `alienstay` command: one sub-command a stage, each a thin shell over a stage module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from alienstay.cli import choices
from alienstay.cli.common import (
    WorkspaceOption,
    classical_hint,
    console,
    fail,
    open_workspace,
    quiet_third_parties,
)
from alienstay.cli.ingest import ingest_app
from alienstay.cli.retrieval import retrieval
from alienstay.cli.serve import serve
from alienstay.workspace.layout import DEFAULT_WORKSPACE, WorkspaceError

app = typer.Typer(
    help="alienstay: hotel photos an alien guest can search and trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(ingest_app, name="ingest")
from alienstay.cli.models import (  # noqa: E402
    DeviceOption,
    DtypeOption,
    ModelsDirOption,
    StagePresetOption,
    announce,
    models_app,
    use_models_dir,
)

app.add_typer(models_app, name="models")
from alienstay.cli.labels import register as _register_label_commands  # noqa: E402

_register_label_commands(app)  # evaluate, calibrate


@app.callback()
def _every_command(
    models_dir: ModelsDirOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Also show third-party warnings and weight-loading bars.")] = False,
) -> None:
    """alienstay: hotel photos an alien guest can search and trust."""
    if not verbose:
        quiet_third_parties()
    use_models_dir(models_dir)  # looked in before the hub cache by every model-loading stage


# ---- preprocess ------------------------------------------------------------------------
@app.command()
def preprocess(
    min_side: Annotated[int, typer.Option(help="Reject images whose shorter side is below this.")] = 128,
    max_side: Annotated[int, typer.Option(help="Longer side of the prepared copy, in pixels.")] = 640,
    near_threshold: Annotated[
        int, typer.Option(help="Perceptual-hash Hamming distance for near duplicates (-1: off).")
    ] = 4,
    workers: Annotated[int, typer.Option(help="Decoding threads.")] = 2,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Decode-check, orient, convert to RGB, size-check and dedupe every new catalog row."""
    from rich.table import Table

    from alienstay.stages import preprocess as stage

    settings = stage.PreprocessSettings(min_side=min_side, max_side=max_side, near_threshold=near_threshold, workers=workers)
    summary = stage.run(open_workspace(workspace), settings).table
    table = Table(title="preprocess: kept and dropped, and why")
    for column in summary.columns:
        table.add_column(column, justify="right" if column in {"images", "this_run"} else "left")
    for row in summary.itertuples(index=False):
        table.add_row(*(str(value) for value in row))
    Console().print(table)


# ---- stats -----------------------------------------------------------------------------
@app.command()
def stats(
    reference: Annotated[
        Optional[Path],
        typer.Option("--reference", help="Real per-chain counts TSV (chain_id<TAB>images).  "
                     "[default: the packaged hotels50k_train_images_per_chain.tsv]"),
    ] = None,  # fmt: skip
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Write the dataset note (report/dataset.md and its figures): counts, balance, sources, sizes."""
    from rich.table import Table

    from alienstay.stages import stats as stage

    note = stage.run(open_workspace(workspace), stage.StatsSettings(reference))
    table = Table(title="balance (full note in report/dataset.md)")
    for column in ("classes of", "source", "classes", "images", "gini", "imbalance_ratio"):
        table.add_column(column)
    for row in note.balance.itertuples(index=False):
        table.add_row(row[0], row[1], f"{row.classes:,}", f"{row.images:,}", f"{row.gini:.3f}",
                      f"{row.imbalance_ratio:,.1f}")  # fmt: skip
    Console().print(table)
    console.print(f"dataset note -> {note.path} ({len(note.figures)} figures)")


# ---- tag / analyse ---------------------------------------------------------------------
VocabularyOption = Annotated[
    Optional[Path],
    typer.Option("--vocabulary", help="Your own vocabulary YAML (same format as the packaged one)."),
]


@app.command()
def tag(
    model: Annotated[
        str, typer.Option("--model", help=choices.tag_model_help())
    ] = "auto",
    vocabulary: VocabularyOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=0, help="0: by device (32 CPU, 256 GPU).")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Processes decoding photos ahead of the model.")] = 1,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    preset: StagePresetOption = None,
    rows_per_shard: Annotated[int, typer.Option("--rows-per-shard", min=1, help="Photos per resumable shard.")] = 512,
    engine: Annotated[str, typer.Option("--engine", help="local (this process) | ray (Ray Data: this machine or a cluster).")] = "local",
    ray_address: Annotated[str, typer.Option("--ray-address", help="With --engine ray: local (start Ray here) | auto | host:port of a cluster.")] = "local",
    ray_actors: Annotated[int, typer.Option("--ray-actors", min=0, help="With --engine ray: encoder actors (0: half the cluster's CPUs).")] = 0,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Select by this profile (`alienstay calibrate`).")] = None,
    caption: Annotated[bool, typer.Option("--caption", help="Also write a short caption per photo (BLIP).")] = False,
    caption_model: Annotated[str, typer.Option("--caption-model", help="A captioner's name (blip, florence2: docs/models.md) | NAME:MODEL | a hub id | a folder.")] = "blip",
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Tag every usable photo with the alien words (zero-shot); resumes where a killed run stopped."""
    from alienstay.runtime.models import ModelUnavailable
    from alienstay.stages import caption as caption_stage
    from alienstay.stages import tag as stage
    from alienstay.tagging.ray_engine import RayUnavailable
    from alienstay.vocabulary.words import VocabularyError

    device = announce(device, dtype)  # a device this machine lacks is named first
    ws = open_workspace(workspace)
    if caption:  # the captioner's weights are checked before tagging, not after an hour of it
        from alienstay.captioning.captioners import entry_for
        from alienstay.runtime.models import resolve

        try:
            resolve(entry_for(caption_model)[1])  # a captioner's name means its default weights
        except ModelUnavailable as error:
            fail(str(error))
    settings = stage.TagSettings(
        model=model, vocabulary=vocabulary, batch_size=batch_size, workers=workers, device=device, dtype=dtype,
        rows_per_shard=rows_per_shard, engine=engine, ray_address=ray_address, ray_actors=ray_actors, preset=preset,
        calibration=calibration,
    )  # fmt: skip
    try:
        summary = stage.run(ws, settings)
    except (VocabularyError, ModelUnavailable, RayUnavailable, ValueError) as error:
        fail(str(error))
    identity = summary.identity
    console.print(
        f"tagged {summary.tagged_now} photos now ({summary.already_done} already done, "
        f"{summary.failed_now} could not be decoded), {summary.consolidated} in {ws.tags_path} "
        f"with {identity.model_id} @ {identity.model_revision}, vocabulary {identity.vocab_hash} "
        f"({summary.images_per_second:.1f} photos/s)"
    )
    if caption:
        captions = caption_stage.CaptionSettings(model=caption_model, device=device, dtype="auto" if dtype == "int8" else dtype,
                                                 batch_size=batch_size or 16, workers=workers)  # fmt: skip
        try:
            written = caption_stage.run(ws, captions)
        except ModelUnavailable as error:
            fail(str(error))
        console.print(f"captioned {written.written} photos -> {written.path}")


@app.command()
def analyse(
    examples: Annotated[int, typer.Option("--examples", min=1, help="Example photos a frequent tag.")] = 6,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Tag frequencies, co-occurrence, informativeness: report/tags.md and its figures."""
    from alienstay.stages import analyse as stage

    summary = stage.run(open_workspace(workspace), stage.AnalyseSettings(examples=examples))
    console.print(f"tag analysis -> {summary.path}")


# ---- cluster ---------------------------------------------------------------------------
@app.command()
def cluster(
    features: Annotated[
        str, typer.Option("--features", help="What to cluster: `tags` (the alien's words) or `embeddings`.")
    ] = "tags",
    k_min: Annotated[int, typer.Option("--k-min", help="Smallest k the silhouette tries.")] = 2,
    k_max: Annotated[int, typer.Option("--k-max", help="Largest k the silhouette tries.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed for k-means and the 2-D map.")] = 0,
    place_facet: Annotated[
        str, typer.Option("--place-facet", help="The facet whose top tag is the photo's place pseudo-class.")
    ] = "place",
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Cluster the photos by tags (or embeddings) and compare clusters with hotels, chains and places."""
    from alienstay.clustering import ClusteringError
    from alienstay.stages import cluster as stage

    settings = stage.ClusterSettings(features=features, k_min=k_min, k_max=k_max, seed=seed, place_facet=place_facet)
    try:
        summary = stage.run(open_workspace(workspace), settings)
    except (ClusteringError, WorkspaceError) as error:
        fail(str(error))
    console.print(f"clusters -> {summary.clusters_path}\nnote -> {summary.note_path}")


# ---- edit / persona --------------------------------------------------------------------
@app.command()
def edit(
    recipe: Annotated[str, typer.Option("--recipe", help="Recipe name, or one of its values (`night` -> time_of_day).")] = "time_of_day",
    images: Annotated[int, typer.Option("--images", help="How many varied photos (5-10 is a readable grid).")] = 8,
    method: Annotated[Optional[str], typer.Option("--method", help=choices.method_help())] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Denoising steps (default: the recipe's).")] = None,
    size: Annotated[int, typer.Option("--size", help="Longer side of the edited image, px.")] = 512,
    seed: Annotated[int, typer.Option("--seed", help="One fixed seed for the whole series.")] = 0,
    list_only: Annotated[bool, typer.Option("--list", help="Only print which photos would be edited and why.")] = False,
    recipes: Annotated[Optional[Path], typer.Option("--recipes", help="Your own recipe YAML (same schema as the packaged one).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Diffusion pipeline: hub id or local folder.")] = None,
    controlnet: Annotated[Optional[str], typer.Option("--controlnet", help="ControlNet: hub id or folder (default by --control).")] = None,
    control: Annotated[Optional[str], typer.Option("--control", help=choices.control_help())] = None,
    guidance: Annotated[Optional[float], typer.Option("--guidance", help="Text guidance scale.")] = None,
    image_guidance: Annotated[Optional[float], typer.Option("--image-guidance", help="InstructPix2Pix image guidance: higher = more faithful.")] = None,
    strength: Annotated[Optional[float], typer.Option("--strength", help="img2img / inpaint strength (0-1).")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", help="Mask file, or folder of <image stem>.png masks (white = edit).")] = None,
    masker: Annotated[Optional[str], typer.Option("--masker", help=choices.masker_help())] = None,
    mask_model: Annotated[Optional[str], typer.Option("--mask-model", help=choices.mask_model_help())] = None,
    mask_segmenter: Annotated[Optional[str], typer.Option("--mask-segmenter", help=choices.mask_segmenter_help())] = None,
    lcm_lora: Annotated[Optional[str], typer.Option("--lcm-lora", help="Few-step LoRA: an LCM-LoRA id or folder (SD 1.5 editors, LCMScheduler), or for qwen-image-edit a Lightning LoRA .safetensors file or folder (then default 4 steps, guidance 1).")] = None,
    attention_slicing: Annotated[bool, typer.Option("--attention-slicing", help="Lower peak memory.")] = False,
    cpu_offload: Annotated[bool, typer.Option("--cpu-offload", help="Offload sub-models (needs an accelerator).")] = False,
    clip: Annotated[str, typer.Option("--clip", help="Image-text encoder for the CLIP direction: none | auto | offline | id/folder.")] = "none",
    dino: Annotated[Optional[str], typer.Option("--dino", help=choices.dino_help())] = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    preset: StagePresetOption = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Restyle a few varied photos, one parameter at a time, and check each edit is still the same room."""
    from rich.progress import Progress
    from rich.table import Table

    from alienstay.editing.recipes import RecipeError
    from alienstay.runtime.models import ModelUnavailable, WeightsUnavailable
    from alienstay.stages import edit as stage

    settings = stage.EditSettings(
        recipe=recipe, images=images, method=method, steps=steps, size=size, seed=seed, recipes_path=recipes,
        model=model, controlnet=controlnet, control=control, guidance=guidance, image_guidance=image_guidance,
        strength=strength, mask=mask, mask_model=mask_model, masker=masker, mask_segmenter=mask_segmenter, lcm_lora=lcm_lora,
        attention_slicing=attention_slicing, cpu_offload=cpu_offload, clip=clip, dino=dino,
        device=device if list_only else announce(device, dtype), dtype=dtype, preset=preset,
    )  # fmt: skip
    ws = open_workspace(workspace)  # after the device: a device this machine lacks is named first
    try:
        if list_only:
            photos = stage.plan(ws, images)
            table = Table(title=f"photos the series would edit ({len(photos)})")
            table.add_column("image_id")
            table.add_column("why")
            for row in photos.itertuples():
                table.add_row(row.image_id, row.why)
            Console().print(table)
            return
        with Progress(console=console) as progress:
            task = progress.add_task(f"edit {recipe}", total=None)
            summary = stage.run(ws, settings, on_start=lambda total: progress.update(task, total=total),
                                on_edit=lambda: progress.advance(task))  # fmt: skip
    except WeightsUnavailable as error:
        fail(str(error) + classical_hint(recipe, recipes, workspace))
    except (ModelUnavailable, RecipeError, WorkspaceError, ValueError) as error:
        fail(str(error))
    first = summary.rows.iloc[0]
    label = "" if bool(first["is_diffusion"]) else "  [classical grade: NOT diffusion]"
    console.print(
        f"{summary.recipe.name}: {len(summary.rows)} edits with {first['method']} ({first['model_id']}){label}\n"
        f"verdicts {summary.verdicts}\ngrid -> {summary.grid_path}\ntable -> {ws.edits_path}"
    )


@app.command()
def persona(
    model: Annotated[str, typer.Option("--model", help=choices.persona_model_help())] = "sd15",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    steps: Annotated[int, typer.Option("--steps")] = 25,
    size: Annotated[int, typer.Option("--size", help="Square side, px.")] = 512,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    preset: StagePresetOption = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """A portrait of a typical alien guest from docs/aliens.md's `## Portrait prompt` (prompt + seed saved beside it)."""
    from alienstay.runtime.models import ModelUnavailable
    from alienstay.stages import persona as stage

    try:
        settings = stage.PersonaSettings(model=model, seed=seed, steps=steps, size=size, device=announce(device, dtype),
                                         dtype=dtype, preset=preset)  # fmt: skip
        summary = stage.run(open_workspace(workspace, create=True), settings)
    except (ModelUnavailable, ValueError) as error:
        fail(str(error))
    console.print(f"alien portrait -> {summary.path} (prompt and seed in {summary.path.with_suffix('.json').name})")


# ---- report / serve / demo -------------------------------------------------------------
@app.command()
def report(workspace: WorkspaceOption = DEFAULT_WORKSPACE) -> None:
    """Stitch every stage's note into report/REPORT.md, from the workspace alone."""
    from alienstay.stages import report as stage

    console.print(f"report -> {stage.run(open_workspace(workspace)).path}")


@app.command("index")
def index_(
    backend: Annotated[str, typer.Option("--backend", help="auto (exact below --threshold photos) | exact | faiss-ivf-sq8.")] = "auto",
    threshold: Annotated[int, typer.Option("--threshold", min=1, help="Photos from which auto builds the approximate index.")] = 50_000,
    nprobe: Annotated[int, typer.Option("--nprobe", min=0, help="IVF cells a query visits (0: max(32, cells / 16); more: slower, closer to exact).")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the index matches the embeddings.")] = False,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Index the image embeddings for search by meaning and "more like this" (rebuilt when they change)."""
    from alienstay.similarity.index import IndexParams
    from alienstay.stages.index import IndexSettings, run

    try:
        summary = run(open_workspace(workspace), IndexSettings(backend, IndexParams(threshold=threshold, nprobe=nprobe), force))
    except (ValueError, ImportError) as error:
        fail(str(error))
    done = "built" if summary.built else "already matches the embeddings"
    console.print(f"{summary.backend} index of {summary.photos} photos x {summary.dim} {done} ({summary.seconds:.1f} s) in {summary.path}")


app.command()(retrieval)
app.command()(serve)


@app.command()
def demo(
    input: Annotated[
        Optional[Path], typer.Option("--input", help="A photo folder; without it, a Hotels-50K sample (needs internet).")
    ] = None,
    metadata: Annotated[str, typer.Option("--metadata", help="Hotels-50K metadata archive, folder or URL.")] = "",
    hotels: Annotated[int, typer.Option("--hotels", help="Hotels in the Hotels-50K sample.")] = 20,
    per_hotel: Annotated[int, typer.Option("--per-hotel", help="Photos a sampled hotel.")] = 5,
    model: Annotated[str, typer.Option("--model", help="Tagger: auto | offline | hub id | folder.")] = "auto",
    images: Annotated[int, typer.Option("--images", help="Photos in each restyle series (5-10).")] = 8,
    preset: StagePresetOption = None,
    device: DeviceOption = "auto",
    workspace: WorkspaceOption = Path("runs/demo"),
) -> None:
    """Every stage end to end: ingest, preprocess, stats, tag, analyse, cluster, edit, persona, report."""
    from alienstay.runtime.models import ModelUnavailable
    from alienstay.sources.hotels50k import MetadataError
    from alienstay.stages import demo as stage

    settings = stage.DemoSettings(input=input, metadata=metadata, hotels=hotels, per_hotel=per_hotel, model=model,
                                  images=images, preset=preset, device=announce(device, "auto"))  # fmt: skip
    ws = open_workspace(workspace, create=True)
    try:
        log = stage.run(ws, settings, console=console)
    except (MetadataError, FileNotFoundError, ModelUnavailable) as error:  # e.g. --preset cpu without CLIP's weights
        fail(str(error))
    for line in log.fallbacks + log.skipped:
        console.print(f"[yellow]note:[/] {line}")
    console.print(f"[bold green]done.[/] Read {ws.report_dir / 'REPORT.md'}; browse with `alienstay serve --workspace {workspace}`.")


def main() -> None:
    """The console script: a stage's missing input is a message, never a traceback."""
    try:
        app()
    except WorkspaceError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
