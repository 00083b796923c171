"""Hotels-50K: read the metadata CSVs, draw a stratified sample, download its images.

Three steps, each usable on its own, one module each:

1. ``metadata`` (`locate_metadata`, `read_metadata`, `join_metadata`): the four CSVs of
   the dataset's ``input/dataset.tar.gz`` (an archive, its unpacked folder, or a URL).
2. ``sampling`` (`sample_images`): N hotels spread over the chains (the "no chain" chain -1
   included), M images each, reproducible from a seed; or the whole split.
3. ``ingest`` (`run`): the full joined metadata to ``ws.metadata_path`` (the dataset note
   describes the whole dataset even when only a sample is downloaded), the sample's images
   through the generic resumable downloader (``alienstay.sources.downloader``: threads,
   timeouts, bounded retries with backoff, a reason for every failure), resized to 640 px
   in the official layout, and the catalog saved as it goes.
"""

from alienstay.sources.downloader import Failure, Fetched
from alienstay.sources.hotels50k.ingest import (
    JPEG_QUALITY,
    OFFICIAL_MAX_SIDE,
    PERMANENT_REASONS,
    Checkpointer,
    DownloadReport,
    DownloadSettings,
    catalog_rows,
    official_path,
    run,
    safe_part,
    still_to_fetch,
    to_official_jpeg,
    upsert,
)
from alienstay.sources.hotels50k.metadata import (
    COLUMNS,
    FALLBACK,
    SOURCE_NAMES,
    Metadata,
    MetadataError,
    find_csv_folder,
    join_metadata,
    locate_metadata,
    read_metadata,
)
from alienstay.sources.hotels50k.sampling import NO_CHAIN, sample_images

__all__ = [name for name in dir() if not name.startswith("_")]
