"""`alienstay ingest folder|hotels50k`: bring photos into a workspace catalog (thin over stages/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alienstay.cli.common import WorkspaceOption, console, fail, open_workspace
from alienstay.workspace.layout import DEFAULT_WORKSPACE, Workspace

ingest_app = typer.Typer(help="Bring photos into a workspace catalog.", no_args_is_help=True)


# ---- ingest ----------------------------------------------------------------------------
@ingest_app.command("folder")
def ingest_folder(
    folder: Annotated[Path, typer.Argument(help="A folder of photos, searched at any depth.")],
    follow_outside_links: Annotated[
        bool, typer.Option(help="Read links to files outside FOLDER (default: recorded as rejected, not read).")
    ] = False,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Catalog every photo file under FOLDER (one row a file; the source is never modified)."""
    from alienstay.stages import ingest_folder as stage

    try:
        settings = stage.IngestFolderSettings(folder, follow_outside_links=follow_outside_links)
        summary = stage.run(Workspace(workspace), settings)  # made only once photos are found
    except FileNotFoundError as error:
        fail(str(error))
    console.print(f"catalogued {summary.found} files from {folder} ({summary.new} new) -> {summary.catalog_path}")


# ---- ingest hotels50k (owned by the Hotels-50K source) --------------------------------
@ingest_app.command("hotels50k")
def ingest_hotels50k(
    metadata: Annotated[
        str, typer.Option(help="input/dataset.tar.gz, its unpacked folder, or a URL to the archive.")
    ],
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    hotels: Annotated[int, typer.Option(help="Hotels to sample, spread over chains.")] = 20,
    per_hotel: Annotated[int, typer.Option(help="Images a sampled hotel.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    take_all: Annotated[bool, typer.Option("--all", help="Every image of the split, no sampling.")] = False,
    same_hotels: Annotated[bool, typer.Option("--same-hotels", help=(
        "Only hotels the workspace already holds (e.g. --split test after a train sample: the paper's retrieval protocol).")
    )] = False,
    workers: Annotated[int, typer.Option(help="Parallel downloads.")] = 8,
    timeout: Annotated[float, typer.Option(help="Seconds for each connect/read of a request.")] = 20.0,
    retries: Annotated[int, typer.Option(help="Extra attempts for transient failures.")] = 3,
    backoff: Annotated[float, typer.Option(help="Seconds before the first retry (doubles each time).")] = 0.5,
    checkpoint_every: Annotated[int, typer.Option(help="Downloads between catalog saves.")] = 50,
    retry_failed: Annotated[
        bool, typer.Option(help="Also retry failures that look permanent (HTTP 4xx, not an image).")
    ] = False,
    insecure: Annotated[bool, typer.Option(help="Turn TLS certificate verification OFF.")] = False,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Read the Hotels-50K metadata, sample hotels, download their images (resumable)."""
    from rich.progress import Progress

    from alienstay.sources import hotels50k
    from alienstay.stages import ingest_hotels50k as stage

    if insecure:
        console.print(
            "[bold yellow]warning:[/] --insecure: TLS certificates are NOT verified; "
            "anyone on the network path can substitute the images."
        )
    download = hotels50k.DownloadSettings(
        workers=workers, timeout=timeout, retries=retries, backoff=backoff,
        verify=not insecure, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    settings = stage.IngestHotels50kSettings(
        metadata=metadata, split=split, hotels=hotels, per_hotel=per_hotel, seed=seed,
        take_all=take_all, retry_failed=retry_failed, same_hotels=same_hotels, download=download,
    )  # fmt: skip
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("download", total=None)
        try:
            summary = stage.run(open_workspace(workspace, create=True), settings,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
        except hotels50k.MetadataError as error:
            fail(str(error))
    for key, value in summary.as_dict().items():
        console.print(f"  {key:<24} {value:.3g}" if isinstance(value, float) else f"  {key:<24} {value}")
    console.print(f"catalog -> {summary.catalog_path}; full metadata -> {summary.metadata_path}")
