"""Stage `preprocess`: decode-check, orient, convert to RGB, size-check and dedupe new catalog rows.

Resumable: rows already decided are skipped and the catalog is saved after every chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from alienstay.preprocess.deciding import preprocess_catalog, summarise
from alienstay.preprocess.decoding import PreprocessSettings
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace

__all__ = ["PreprocessSettings", "PreprocessSummary", "run"]


@dataclass(frozen=True)
class PreprocessSummary:
    table: pd.DataFrame  # kept and dropped, and why: one row a (status, reason)


def run(ws: Workspace, settings: PreprocessSettings = PreprocessSettings(), *, show_progress: bool = True) -> PreprocessSummary:
    """Read the catalog, decide its new rows, save as it goes; the summary of kept and dropped."""
    from rich.progress import Progress

    ws.check_tables("catalog")  # a damaged input is named, with how to restore it
    with ws.ensure().lock("preprocess"):
        catalog = ws.read_catalog()
        new_ids = catalog.loc[catalog["status"] == cat.NEW, "image_id"].tolist()
        ws.prepared_dir.mkdir(parents=True, exist_ok=True)
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task("preprocess", total=len(new_ids))
            catalog = preprocess_catalog(catalog, ws.prepared_dir, settings,
                                         on_chunk=ws.write_catalog, on_progress=lambda n: progress.advance(task, n))
        ws.write_catalog(catalog)
        ws.log_run("preprocess", **settings.__dict__, decided=len(new_ids))
    return PreprocessSummary(summarise(catalog, new_ids))
