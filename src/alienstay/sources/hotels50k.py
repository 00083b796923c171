"""Hotels-50K: read the metadata CSVs, draw a stratified sample, download its images.

Three separate steps, each usable on its own:

1. **Metadata** (`locate_metadata`, `read_metadata`, `join_metadata`): the four CSVs of the
   dataset's ``input/dataset.tar.gz`` (an archive, its unpacked folder, or a URL to the
   archive). Header rows are detected, never assumed, and old source names (``expedia``,
   ``tcam``) are mapped to the current ones.
2. **Sampling** (`sample_images`): N hotels spread over the chains (the "no chain" chain -1
   included), M images each, reproducible from a seed; or the whole split.
3. **Downloading** (`download`): a thread pool over one shared ``httpx.Client``, per-request
   timeouts, bounded retries with exponential backoff, TLS verification on unless asked off,
   the longer side resized to 640 px as the official script does, the official layout
   ``images/<split>/<chain>/<hotel>/<source>/<image_id>.jpg``. Every URL ends as a file on
   disk (status ``new``, for preprocess to check) or a ``failed`` row with its reason.

`run` ties them to a workspace: the full joined metadata goes to ``ws.metadata_path`` (the
dataset note describes the whole dataset even when only a sample is downloaded) and the
catalog is saved atomically every few downloads, so killing the process loses nothing: a
file written before the kill is found on disk by the rerun and catalogued without
refetching, and rows are keyed by image id so a rerun never duplicates one.
"""

from __future__ import annotations

import csv
import io
import random
import re
import shutil
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from alienstay import catalog as cat
from alienstay.preprocess import fit_within, to_rgb
from alienstay.workspace import Workspace, atomic_path, write_parquet

COLUMNS: dict[str, list[str]] = {
    "chain_info.csv": ["chain_id", "chain_name"],
    "hotel_info.csv": ["hotel_id", "hotel_name", "chain_id", "latitude", "longitude"],
    "train_set.csv": ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"],
    "test_set.csv": ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"],
}
SOURCE_NAMES = {"expedia": "travel_website", "tcam": "traffickcam"}
NO_CHAIN = "-1"
OFFICIAL_MAX_SIDE = 640
JPEG_QUALITY = 92
FALLBACK = "Without internet, use `alienstay ingest folder DIR` instead."


class MetadataError(RuntimeError):
    """The metadata cannot be found or read; the message says what to pass instead."""


# ---- 1. metadata -----------------------------------------------------------------------
def is_url(source: str) -> bool:
    return re.match(r"^https?://", str(source)) is not None


def fetch_metadata_archive(url: str, target: Path, timeout: float = 30.0, verify: bool = True) -> Path:
    """Download the metadata archive; any network failure is one clear error at once."""
    try:
        with atomic_path(target) as tmp, httpx.stream(
            "GET", url, timeout=httpx.Timeout(timeout, connect=5.0), verify=verify, follow_redirects=True
        ) as response:
            response.raise_for_status()
            with open(tmp, "wb") as handle:
                for block in response.iter_bytes():
                    handle.write(block)
    except httpx.HTTPError as error:
        raise MetadataError(f"could not reach {url} ({type(error).__name__}: {error}). {FALLBACK}") from error
    if target.read_bytes()[:64].startswith(b"version https://git-lfs"):
        raise MetadataError(
            f"{url} returned a Git LFS pointer, not the archive: use the repository's "
            "media (LFS) URL, or download input/dataset.tar.gz by hand and pass its path."
        )
    return target


def unpack_archive(archive: Path, destination: Path) -> Path:
    """Unpack into a fresh folder (``filter="data"`` refuses paths that leave it)."""
    tmp = Path(tempfile.mkdtemp(prefix=".unpack.", dir=destination.parent))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(destination, ignore_errors=True)
        tmp.rename(destination)
    except (tarfile.TarError, OSError) as error:
        raise MetadataError(f"{archive} is not a readable .tar.gz archive ({error}).") from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination


def find_csv_folder(root: Path) -> Path:
    """The folder holding the four CSVs: ``root`` itself or any folder below it."""
    candidates = [root] if (root / "chain_info.csv").exists() else sorted(p.parent for p in root.rglob("chain_info.csv"))
    if not candidates:
        raise MetadataError(
            f"no chain_info.csv under {root}: pass the dataset's input/dataset folder or dataset.tar.gz."
        )
    folder = candidates[0]
    missing = [name for name in COLUMNS if not (folder / name).exists()]
    if missing:
        raise MetadataError(f"{folder} lacks {', '.join(missing)}: the metadata needs all four CSVs.")
    return folder


def locate_metadata(source: str | Path, cache_dir: Path, timeout: float = 30.0, verify: bool = True) -> Path:
    """A folder of the four CSVs, from a folder, a .tar.gz, or a URL to the .tar.gz."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if is_url(str(source)):
        source = fetch_metadata_archive(str(source), cache_dir / "dataset.tar.gz", timeout, verify)
    path = Path(source)
    if path.is_dir():
        return find_csv_folder(path)
    if path.is_file():
        return find_csv_folder(unpack_archive(path, cache_dir / "dataset"))
    raise MetadataError(f"{path} does not exist: pass the metadata folder, dataset.tar.gz, or its URL.")


def has_header(path: Path) -> bool:
    """Every id column holds integers, so a first cell that is not one is a header."""
    with open(path, newline="", encoding="utf-8") as handle:
        first = next(csv.reader(handle), [])
    return bool(first) and re.fullmatch(r"\s*-?\d+\s*", first[0]) is None


def read_csv_file(path: Path, columns: list[str]) -> pd.DataFrame:
    """One CSV as strings, with or without a header row; no row dropped or invented."""
    header = has_header(path)
    try:
        frame = pd.read_csv(
            path, header=0 if header else None, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype="string") for name in columns})
    if header:
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MetadataError(f"{path}: header lacks {missing}; expected columns {columns}.")
        frame = frame[columns]
    elif frame.shape[1] != len(columns):
        raise MetadataError(f"{path}: {frame.shape[1]} columns, expected {len(columns)}: {columns}.")
    else:
        frame.columns = columns
    return frame.apply(lambda column: column.str.strip()).astype("string")


@dataclass(frozen=True)
class Metadata:
    chains: pd.DataFrame
    hotels: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame


def read_metadata(folder: Path) -> Metadata:
    tables = {name: read_csv_file(folder / name, columns) for name, columns in COLUMNS.items()}
    return Metadata(
        chains=tables["chain_info.csv"],
        hotels=tables["hotel_info.csv"],
        train=tables["train_set.csv"],
        test=tables["test_set.csv"],
    )


def normalise_source(values: pd.Series) -> pd.Series:
    lowered = values.str.strip().str.lower()
    return lowered.replace(SOURCE_NAMES)


def join_metadata(metadata: Metadata) -> pd.DataFrame:
    """Every image row of both splits with its hotel and chain: the full dataset, one row an image.

    Hotel or chain ids listed twice keep their first name (an image row is never
    multiplied by a duplicated lookup row); images whose hotel is unknown keep NA names.
    """
    images = pd.concat(
        [metadata.train.assign(split="train"), metadata.test.assign(split="test")], ignore_index=True
    )
    hotels = metadata.hotels.drop_duplicates("hotel_id")
    chains = metadata.chains.drop_duplicates("chain_id")
    joined = images.merge(hotels, on="hotel_id", how="left").merge(chains, on="chain_id", how="left")
    joined["source"] = normalise_source(joined["image_source"])
    joined = joined.rename(columns={"image_url": "url"})
    order = ["image_id", "split", "hotel_id", "hotel_name", "chain_id", "chain_name", "source", "url",
             "upload_timestamp", "latitude", "longitude"]  # fmt: skip
    return joined[order].astype("string")


# ---- 2. sampling -----------------------------------------------------------------------
def sample_images(
    metadata: pd.DataFrame, split: str, hotels: int, per_hotel: int, seed: int
) -> pd.DataFrame:
    """``hotels`` hotels drawn round-robin over chains (chain -1 first), ``per_hotel`` images each.

    Round-robin spreads a small sample over as many chains as possible instead of letting
    the no-chain majority (58 % of images) fill it. Same inputs and seed, same sample.
    """
    rows = metadata[metadata["split"] == split]
    rng = random.Random(seed)
    chain_of_hotel = rows.groupby("hotel_id", sort=True)["chain_id"].first().fillna(NO_CHAIN)
    by_chain: dict[str, list[str]] = {}
    for hotel_id, chain_id in chain_of_hotel.items():
        by_chain.setdefault(chain_id, []).append(hotel_id)
    for hotel_ids in by_chain.values():
        rng.shuffle(hotel_ids)
    chains = sorted(c for c in by_chain if c != NO_CHAIN)
    rng.shuffle(chains)
    chains = ([NO_CHAIN] if NO_CHAIN in by_chain else []) + chains

    picked: list[str] = []
    while len(picked) < hotels and any(by_chain[c] for c in chains):
        for chain_id in chains:
            if by_chain[chain_id] and len(picked) < hotels:
                picked.append(by_chain[chain_id].pop())

    parts = []
    grouped = rows.groupby("hotel_id", sort=False)
    for hotel_id in picked:
        images = grouped.get_group(hotel_id).sort_values("image_id")
        keep = sorted(rng.sample(range(len(images)), min(per_hotel, len(images))))
        parts.append(images.iloc[keep])
    return pd.concat(parts, ignore_index=True) if parts else rows.iloc[0:0]


# ---- 3. downloading --------------------------------------------------------------------
@dataclass(frozen=True)
class DownloadSettings:
    workers: int = 8
    timeout: float = 20.0  # seconds, for each connect / read / write of each request
    retries: int = 3  # extra attempts after the first, for transient failures only
    backoff: float = 0.5  # seconds before the first retry; doubled each retry
    max_backoff: float = 8.0
    verify: bool = True
    max_side: int = OFFICIAL_MAX_SIDE
    checkpoint_every: int = 50  # completed downloads between catalog saves


class Failure(Exception):
    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class Fetched:
    image_id: str
    status: str  # catalog NEW (on disk) or FAILED
    reason: str = ""
    attempts: int = 0  # requests made (0: the file was already on disk)
    bytes: int | None = None
    sha256: str | None = None


def safe_part(value: object) -> str:
    text = "unknown" if pd.isna(value) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip(".") or "unknown"


def official_path(images_dir: Path, row: dict) -> Path:
    """``images/<split>/<chain>/<hotel>/<source>/<image_id>.jpg``, as the official script writes."""
    parts = [row["split"], row["chain_id"], row["hotel_id"], row["source"]]
    return images_dir.joinpath(*map(safe_part, parts), f"{safe_part(row['image_id'])}.jpg")


def http_failure(status_code: int) -> Failure:
    retryable = status_code in {408, 425, 429} or status_code >= 500
    return Failure(f"http_{status_code}", retryable)


def fetch_body(client: httpx.Client, url: str) -> bytes:
    """One GET; every way it can go wrong becomes a Failure with a reason."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise http_failure(response.status_code)
            try:
                body = response.read()
            except httpx.TimeoutException as error:
                raise Failure("timeout", True) from error
            except httpx.TransportError as error:  # the peer closed before the body's end
                raise Failure("truncated_body", True) from error
            expected = response.headers.get("content-length")
            if expected is not None and expected.isdigit() and len(body) < int(expected):
                raise Failure("truncated_body", True)
            return body
    except httpx.TimeoutException as error:
        raise Failure("timeout", True) from error
    except httpx.TooManyRedirects as error:
        raise Failure("too_many_redirects", False) from error
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        raise Failure("bad_url", False) from error
    except httpx.ConnectError as error:
        if "ssl" in str(error).lower() or "certificate" in str(error).lower():
            raise Failure("tls_error", False) from error  # --insecure would fetch it
        raise Failure("connection_error", True) from error
    except httpx.TransportError as error:
        raise Failure("connection_error", True) from error


def to_official_jpeg(body: bytes, max_side: int = OFFICIAL_MAX_SIDE) -> bytes:
    """Longer side at most ``max_side``, as a JPEG; small JPEGs are kept byte for byte.

    The EXIF block is carried over so preprocess can still turn the photo upright.
    """
    try:
        with Image.open(io.BytesIO(body)) as image:
            image.load()
            if image.format == "JPEG" and max(image.size) <= max_side:
                return body
            exif = image.info.get("exif")
            resized = fit_within(to_rgb(image), max_side)
    except UnidentifiedImageError as error:
        raise Failure("not_an_image", False) from error
    except Image.DecompressionBombError as error:
        raise Failure("decompression_bomb", False) from error
    except (OSError, SyntaxError, ValueError) as error:
        truncated = "truncated" in str(error).lower() or "premature" in str(error).lower()
        raise Failure("truncated_body" if truncated else "decode_error", truncated) from error
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=JPEG_QUALITY, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def backoff_seconds(attempt: int, settings: DownloadSettings) -> float:
    """Exponential backoff with jitter, so parallel workers do not retry in lockstep."""
    base = min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)


def fetch_one(
    client: httpx.Client,
    url: str,
    image_id: str,
    target: Path,
    settings: DownloadSettings,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Fetch one image into ``target`` (atomically), retrying transient failures a bounded number of times."""
    if target.is_file():  # written by an earlier run that was stopped before it saved the catalog
        return Fetched(image_id, cat.NEW, bytes=target.stat().st_size, sha256=cat.sha256_of(target))
    attempts, reason = 0, "unknown"
    while attempts <= settings.retries:
        attempts += 1
        try:
            data = to_official_jpeg(fetch_body(client, url), settings.max_side)
        except Failure as failure:
            reason = failure.reason
            if not failure.retryable:
                break
            if attempts <= settings.retries:
                sleep(backoff_seconds(attempts, settings))
            continue
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        return Fetched(image_id, cat.NEW, attempts=attempts, bytes=len(data), sha256=cat.sha256_of(target))
    return Fetched(image_id, cat.FAILED, reason=reason, attempts=attempts)


def download(
    jobs: list[tuple[str, str, Path]],
    settings: DownloadSettings,
    on_result: Callable[[Fetched], None],
) -> None:
    """Fetch every (image_id, url, target) on a thread pool; report each result as it completes.

    At most a few jobs a worker are in flight, so memory does not grow with the number of
    URLs; an interrupt cancels what has not started and re-raises.
    """
    limits = httpx.Limits(max_connections=settings.workers, max_keepalive_connections=settings.workers)
    pending = iter(jobs)
    in_flight: set[Future] = set()
    with httpx.Client(
        timeout=settings.timeout, verify=settings.verify, follow_redirects=True, limits=limits
    ) as client:

        def guarded(image_id: str, url: str, target: Path) -> Fetched:
            try:
                return fetch_one(client, url, image_id, target, settings)
            except Exception as error:  # noqa: BLE001 - no URL may vanish without a recorded reason
                return Fetched(image_id, cat.FAILED, reason=f"error:{type(error).__name__}", attempts=1)

        pool = ThreadPoolExecutor(max_workers=settings.workers)
        try:
            while True:
                while len(in_flight) < settings.workers * 4:
                    job = next(pending, None)
                    if job is None:
                        break
                    in_flight.add(pool.submit(guarded, *job))
                if not in_flight:
                    break
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# ---- the catalog -----------------------------------------------------------------------
def upsert(catalog: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows replace those with the same image id in place; new ids are appended. Never a duplicate."""
    position = {image_id: i for i, image_id in enumerate(catalog["image_id"])}
    combined = pd.concat([cat.conform(catalog), cat.conform(rows)], ignore_index=True)
    combined = combined.drop_duplicates("image_id", keep="last")
    rank = [position.get(image_id, len(position) + k) for k, image_id in enumerate(combined["image_id"])]
    return cat.conform(combined.iloc[np.argsort(rank, kind="stable")])


def catalog_rows(sample: pd.DataFrame, results: list[Fetched], images_dir: Path) -> pd.DataFrame:
    by_id = sample.set_index("image_id", drop=False)
    records = []
    for result in results:
        row = by_id.loc[result.image_id].to_dict()
        records.append(
            {
                **{k: row[k] for k in ("image_id", "split", "hotel_id", "hotel_name", "chain_id",
                                       "chain_name", "source", "url")},  # fmt: skip
                "path": str(official_path(images_dir, row)) if result.status == cat.NEW else pd.NA,
                "bytes": result.bytes,
                "sha256": result.sha256,
                "status": result.status,
                "reason": result.reason,
            }
        )
    return cat.conform(pd.DataFrame(records))


PERMANENT_REASONS = ("http_4", "not_an_image", "bad_url", "decompression_bomb", "decode_error")


def still_to_fetch(sample: pd.DataFrame, catalog: pd.DataFrame, retry_failed: bool) -> pd.DataFrame:
    """Sampled rows not yet decided; failed rows again if their reason may be transient."""
    decided = dict(zip(catalog["image_id"], zip(catalog["status"], catalog["reason"].fillna(""))))

    def needs_fetching(image_id: str) -> bool:
        if image_id not in decided:
            return True
        status, reason = decided[image_id]
        return status == cat.FAILED and (retry_failed or not reason.startswith(PERMANENT_REASONS))

    return sample[[needs_fetching(image_id) for image_id in sample["image_id"]]]


@dataclass
class DownloadReport:
    sampled: int = 0
    already_catalogued: int = 0
    fetched: int = 0  # files now on disk from this run (including ones found on disk)
    failed: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)

    def add(self, result: Fetched) -> None:
        self.requests += result.attempts
        self.retries += max(0, result.attempts - 1)
        if result.status == cat.NEW:
            self.fetched += 1
        else:
            self.failed += 1
            self.failures[result.reason] += 1

    def as_dict(self) -> dict:
        figures = {k: v for k, v in self.__dict__.items() if k != "failures"}
        figures["images_per_second"] = self.fetched / self.seconds if self.seconds else 0.0
        figures.update({f"failed_{reason}": n for reason, n in sorted(self.failures.items())})
        return figures


class Checkpointer:
    """Collects results and saves the catalog atomically every ``every`` of them."""

    def __init__(self, ws: Workspace, catalog: pd.DataFrame, sample: pd.DataFrame, every: int) -> None:
        self.ws, self.catalog, self.sample, self.every = ws, catalog, sample, every
        self.buffer: list[Fetched] = []
        self.lock = threading.Lock()

    def add(self, result: Fetched) -> None:
        with self.lock:
            self.buffer.append(result)
            # A save rewrites the whole catalog: on a large one, save less often so the total
            # cost stays about 200 rewrites. A file written but not yet catalogued is found on
            # disk by the next run, so a kill between saves costs a hash, not a download.
            if len(self.buffer) >= max(self.every, len(self.catalog) // 200):
                self.flush()

    def flush(self) -> None:
        if self.buffer:
            rows = catalog_rows(self.sample, self.buffer, self.ws.images_dir)
            self.catalog = upsert(self.catalog, rows)
            self.ws.write_catalog(self.catalog)
            self.buffer = []


def run(
    ws: Workspace,
    metadata_source: str | Path,
    *,
    split: str = "train",
    hotels: int = 20,
    per_hotel: int = 5,
    seed: int = 0,
    take_all: bool = False,
    retry_failed: bool = False,
    settings: DownloadSettings = DownloadSettings(),
    progress: Callable[[int, int], None] | None = None,
) -> DownloadReport:
    """Metadata -> ws.metadata_path, sample -> downloads -> catalog (saved as it goes)."""
    folder = locate_metadata(metadata_source, ws.cache_dir / "hotels50k", verify=settings.verify)
    full = join_metadata(read_metadata(folder))
    write_parquet(full, ws.metadata_path)
    if split not in set(full["split"]):
        raise MetadataError(f"the metadata has no {split!r} rows; use --split train or --split test.")
    sample = full[full["split"] == split] if take_all else sample_images(full, split, hotels, per_hotel, seed)
    # The catalog is keyed by image id; an id listed twice in the CSV is fetched once
    # (the metadata file above keeps every row).
    sample = sample.drop_duplicates("image_id").reset_index(drop=True)

    catalog = ws.read_catalog() if ws.catalog_path.exists() else cat.empty_catalog()
    todo = still_to_fetch(sample, catalog, retry_failed)
    report = DownloadReport(sampled=len(sample), already_catalogued=len(sample) - len(todo))
    jobs = [
        (row["image_id"], row["url"], official_path(ws.images_dir, row))
        for row in todo.to_dict("records")
    ]
    checkpoint = Checkpointer(ws, catalog, sample, settings.checkpoint_every)

    def on_result(result: Fetched) -> None:
        report.add(result)
        checkpoint.add(result)
        if progress:
            progress(report.fetched + report.failed, len(jobs))

    start = time.perf_counter()
    try:
        download(jobs, settings, on_result)
    finally:
        checkpoint.flush()  # also on Ctrl-C: what finished is kept
        report.seconds = time.perf_counter() - start
        ws.log_run("ingest-hotels50k", metadata=str(metadata_source), split=split, hotels=hotels,
                   per_hotel=per_hotel, seed=seed, all=take_all, **settings.__dict__)  # fmt: skip
    return report

