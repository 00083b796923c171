"""Stage `ingest folder`: catalog every photo file under a folder (the source is never modified)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alienstay.workspace.layout import Workspace


@dataclass(frozen=True)
class IngestFolderSettings:
    folder: Path
    follow_outside_links: bool = False  # read links to files outside the folder (default: recorded, not read)


@dataclass(frozen=True)
class IngestFolderSummary:
    folder: Path
    found: int  # photo files under the folder
    new: int  # rows this run added to the catalog
    catalog_path: Path


def run(ws: Workspace, settings: IngestFolderSettings) -> IngestFolderSummary:
    """Raises FileNotFoundError (with what to pass instead) when the folder is not one."""
    from alienstay.sources import folder as folder_source

    found = folder_source.catalog_folder(settings.folder, settings.follow_outside_links)
    if found.empty:  # nothing to catalogue is a mistake to report (a wrong folder), not a success
        raise FileNotFoundError(
            f"no photo files under {settings.folder} (looked for {', '.join(sorted(folder_source.PHOTO_SUFFIXES))} "
            "at any depth): pass the folder that holds the photos."
        )
    ws.ensure()
    ws.check_tables("catalog")  # a damaged input is named, with how to restore it
    with ws.lock("ingest folder"):
        existing = ws.read_catalog() if ws.catalog_path.exists() else found.iloc[0:0]
        merged = folder_source.merge_into(existing, found)
        ws.write_catalog(merged)
    ws.log_run("ingest-folder", folder=str(settings.folder))
    return IngestFolderSummary(Path(settings.folder), len(found), len(merged) - len(existing), ws.catalog_path)
