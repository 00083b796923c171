"""What every `alienstay` command shares: the console, the workspace option, failing with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alienstay.workspace import Workspace

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
