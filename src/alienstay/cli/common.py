"""What every `alienstay` command shares: the console, the workspace option, failing with a message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alienstay.workspace.layout import Workspace

console = Console(stderr=True)

WorkspaceOption = Annotated[
    Path, typer.Option("--workspace", "-w", help="The run's folder; every stage reads and writes here.")
]


# Third-party chatter a user cannot act on: weight-loading bars, backend notices. Set in the
# environment before any model library is imported (commands import them lazily), so Ray and
# dataloader workers inherit it too. `alienstay --verbose ...` keeps them.
QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub's and transformers' "Loading weights" / download bars
    "TQDM_DISABLE": "1",  # any other tqdm bar (sentence-transformers, diffusers' pipeline loading)
    "TRANSFORMERS_VERBOSITY": "error",  # e.g. "CLIPImageProcessor requires torchvision ... falling back"
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    # child processes (gallery workers, multiprocessing's resource tracker at shutdown, Ray and
    # decoding workers) start with their own warning filters: this one they read
    "PYTHONWARNINGS": "ignore",
}


def quiet_third_parties() -> None:
    """Third-party progress bars, notices and Python warnings off; this project's own warnings stay."""
    import logging
    import os
    import warnings

    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"alienstay(\.|$)")  # inserted first: wins over the line above
    for name in ("transformers", "diffusers", "huggingface_hub", "sentence_transformers", "torch", "timm"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str, code: int = 2) -> None:
    """Stop with a message that says what to do next, not a traceback."""
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def other_workspaces(path: Path) -> list[Path]:
    """Workspaces beside `path` and under runs/ (folders with a catalog), the likeliest first."""
    import difflib

    found = {p.parent for root in {Path(path).parent, Path("runs")} for p in root.glob("*/catalog.parquet")}
    found.discard(Path(path))
    names = [str(p) for p in sorted(found)]
    return [Path(n) for n in dict.fromkeys(difflib.get_close_matches(str(path), names, n=3, cutoff=0) + names)]


def did_you_mean(path: Path) -> str:
    others = other_workspaces(path)
    return f" Did you mean `--workspace {others[0]}`?" if others else ""


def open_workspace(path: Path, create: bool = False) -> Workspace:
    """The workspace at `path`. Only the commands that bring photos in (`create`) make the folder:
    a read-only stage on a mistyped path stops, naming the workspaces that exist, and writes nothing."""
    ws = Workspace(path)
    if create:
        return ws.ensure()
    if not ws.root.is_dir():
        fail(f"no workspace at {path}.{did_you_mean(path)} A new one starts with "
             f"`alienstay ingest folder DIR --workspace {path}` (or `alienstay demo --input DIR --workspace {path}`).")
    if not ws.catalog_path.exists() and other_workspaces(path):
        console.print(f"[yellow]note:[/] {path} has no photos catalogued yet.{did_you_mean(path)}")
    return ws


def classical_hint(recipe: str, recipes: Path | None, workspace: Path) -> str:
    """Where the recipe has a classical grade: the command that runs it without diffusion weights (as the demo does)."""
    from alienstay.editing.recipes import CLASSICAL, RecipeError, load_recipes

    try:
        if CLASSICAL not in load_recipes(recipes).get(recipe).methods:
            return ""
    except RecipeError:
        return ""
    own = f" --recipes {recipes}" if recipes else ""
    return (f"\n  - or, without diffusion, the recipe's classical grade (NOT diffusion, what the demo falls back to): "
            f"`alienstay edit --recipe {recipe} --method classical{own} --workspace {workspace}`.")
