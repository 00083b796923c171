"""`alienstay retrieval`: which hotel is this photo from, counted as the Hotels-50K evaluator counts (thin over stages/retrieval.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alienstay.cli.common import WorkspaceOption, console, fail, open_workspace
from alienstay.workspace.layout import DEFAULT_WORKSPACE


def retrieval(
    queries: Annotated[int, typer.Option("--queries", min=1, help=(
        "Query photos of the sampled protocol (the paper's protocol asks every test photo).")
    )] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    export_knn: Annotated[Path | None, typer.Option("--export-knn", help=(
        "Write the Hotels-50K evaluator's input (evaluate/retrieval.py): a query id, then 100 gallery ids, best first.")
    )] = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE,
) -> None:
    """Can a photo's embedding (or tag vector) find its own hotel? Image-level top-K, the dataset's rule -> report/retrieval.md."""
    from alienstay.stages.retrieval import RetrievalSettings, run
    from alienstay.workspace.layout import WorkspaceError

    try:
        summary = run(open_workspace(workspace), RetrievalSettings(queries=queries, seed=seed, export_knn=export_knn))
    except WorkspaceError as error:
        fail(str(error))
    note = Path(workspace) / "report" / "retrieval.md"
    if not summary.answered:
        reason = summary.note.split("\n\n", 1)[1].split(". ")[0].replace("**", "")
        console.print(f"{reason}: see {note}")
        return
    r = summary.results

    def figures(kind: str) -> str:
        return ", ".join(f"top-{k} {v:.2f} % (chance {r['chance'][kind][k]:.2f} %)" for k, v in r[kind].items())

    console.print(f"{r['protocol']} protocol, image-level rule ({r['queries']} queries, {r['gallery']} gallery photos), "
                  f"{r['features']}: hotel {figures('hotel')}; chain {figures('chain')} -> {note}")
    if summary.knn_path:
        console.print(f"evaluator input -> {summary.knn_path}"
                      + ("" if r["protocol"] == "paper" else " (the dataset's evaluator looks queries up in test_set.csv "
                         "and results in train_set.csv, so it reads this file only under the paper's protocol)"))
