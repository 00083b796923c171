"""`alienstay serve`: the gallery, with workers by the machine and the port checked first (thin over web/serving.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alienstay.cli.common import WorkspaceOption, console, did_you_mean, fail
from alienstay.workspace.layout import DEFAULT_WORKSPACE, Workspace


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=0, help=(
        "Server processes; 0 (auto): one per core, fewer where memory is short.")
    )] = 0,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """The web gallery: search photos by alien words, see their tags, compare restyles."""
    from alienstay.web.serving import PortUnavailable, auto_workers, check_port
    from alienstay.web.serving import serve as run_gallery

    if not Path(workspace).is_dir():
        fail(f"{workspace} is not a workspace folder:{did_you_mean(workspace)} A new one starts with "
             f"`alienstay ingest folder DIR --workspace {workspace}`.")
    ws = Workspace(workspace)
    ws.check_tables()  # a damaged table is named before the gallery starts
    try:
        check_port(host, port)
    except PortUnavailable as error:
        fail(str(error))
    count = workers or auto_workers()
    how = "" if workers else ", auto: one per core within the memory"
    console.print(f"gallery of {workspace} at http://{host}:{port}/ ({count} worker(s){how}; each loads its models "
                  "before it answers; Ctrl+C stops it)")
    run_gallery(ws, host, port, count)
