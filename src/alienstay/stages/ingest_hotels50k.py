"""Stage `ingest hotels50k`: read the metadata, sample hotels, download their images (resumable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alienstay.workspace.layout import Workspace


def _default_download() -> Any:
    from alienstay.sources.hotels50k import DownloadSettings

    return DownloadSettings()


@dataclass(frozen=True)
class IngestHotels50kSettings:
    metadata: str  # input/dataset.tar.gz, its unpacked folder, or a URL to the archive
    split: str = "train"
    hotels: int = 20
    per_hotel: int = 5
    seed: int = 0
    take_all: bool = False
    retry_failed: bool = False
    same_hotels: bool = False  # sample only hotels already in the workspace (the other split's)
    download: Any = field(default_factory=_default_download)  # sources.hotels50k.DownloadSettings


@dataclass(frozen=True)
class IngestHotels50kSummary:
    report: Any  # sources.hotels50k.DownloadReport: counts, retries, failures by reason
    catalog_path: Path
    metadata_path: Path

    def as_dict(self) -> dict:
        return self.report.as_dict()


def run(
    ws: Workspace, settings: IngestHotels50kSettings, *, progress: Callable[[int, int], None] | None = None
) -> IngestHotels50kSummary:
    """Raises hotels50k.MetadataError (saying what to do) when the metadata cannot be had."""
    from alienstay.sources import hotels50k

    ws.ensure()
    ws.check_tables("catalog")  # a damaged input is named, with how to restore it
    with ws.lock("ingest hotels50k"):
        report = hotels50k.run(
            ws, settings.metadata, split=settings.split, hotels=settings.hotels, per_hotel=settings.per_hotel,
            seed=settings.seed, take_all=settings.take_all, retry_failed=settings.retry_failed,
            same_hotels=settings.same_hotels, settings=settings.download, progress=progress,
        )  # fmt: skip
    return IngestHotels50kSummary(report, ws.catalog_path, ws.metadata_path)
