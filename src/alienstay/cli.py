"""The `alienstay` command: one sub-command a stage, each a thin shell over a stage module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from alienstay.workspace import DEFAULT_WORKSPACE, Workspace, WorkspaceError

app = typer.Typer(
    help="alienstay: hotel photos an alien guest can search and trust.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ingest_app = typer.Typer(help="Bring photos into a workspace catalog.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")

console = Console(stderr=True)

WorkspaceOption = Annotated[
    Path, typer.Option("--workspace", "-w", help="The run's folder; every stage reads and writes here.")
]


def fail(message: str, code: int = 2) -> None:
    """Stop with a message that says what to do next, not a traceback."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def open_workspace(path: Path) -> Workspace:
    return Workspace(path).ensure()


# ---- ingest ----------------------------------------------------------------------------
@ingest_app.command("folder")
def ingest_folder(
    folder: Annotated[Path, typer.Argument(help="A folder of photos, searched at any depth.")],
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Catalog every photo file under FOLDER (one row a file; the source is never modified)."""
    from alienstay.sources import folder as folder_source

    ws = open_workspace(workspace)
    try:
        found = folder_source.catalog_folder(folder)
    except FileNotFoundError as error:
        fail(str(error))
    existing = ws.read_catalog() if ws.catalog_path.exists() else found.iloc[0:0]
    merged = folder_source.merge_into(existing, found)
    ws.write_catalog(merged)
    ws.log_run("ingest-folder", folder=str(folder))
    console.print(
        f"catalogued {len(found)} files from {folder} "
        f"({len(merged) - len(existing)} new) -> {ws.catalog_path}"
    )


# ---- ingest hotels50k (owned by the Hotels-50K source) --------------------------------
# ---- preprocess ------------------------------------------------------------------------
# ---- stats -----------------------------------------------------------------------------
# ---- tag / analyse ---------------------------------------------------------------------
# ---- cluster ---------------------------------------------------------------------------
# ---- edit / persona --------------------------------------------------------------------
# ---- report / serve / demo -------------------------------------------------------------


def main() -> None:
    try:
        app()
    except WorkspaceError as error:
        fail(str(error))


if __name__ == "__main__":
    main()
