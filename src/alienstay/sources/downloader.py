"""A generic, resumable HTTP downloader: many URLs to files, every one ending with a reason.

- a thread pool over one shared ``httpx.Client`` (keep-alive connections, one per worker);
- per-request timeouts (connect / read / write), TLS verification on unless asked off;
- bounded retries with exponential backoff and jitter, for transient failures only
  (timeouts, dropped connections, truncated bodies, HTTP 408 / 425 / 429 / 5xx);
- resumable: a target already on disk is not fetched again, and every file is written
  atomically, so a kill never leaves half a file under the final name;
- every URL ends as a file or a failure with a short reason (``http_404``, ``timeout``,
  ``truncated_body``, ``tls_error``, ...), reported to the caller as soon as it completes.

``transform`` turns a body into the bytes to write (or raises ``Failure``): a source uses it
to check and normalise what it downloads (Hotels-50K re-encodes images; see ``ingest``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import httpx

from alienstay.workspace.catalog import sha256_of
from alienstay.workspace.layout import atomic_path

Transform = Callable[[bytes], bytes]
IN_FLIGHT_PER_WORKER = 4  # jobs queued a worker: memory does not grow with the number of URLs


@dataclass(frozen=True)
class DownloadSettings:
    workers: int = 8
    timeout: float = 20.0  # seconds, for each connect / read / write of each request
    retries: int = 3  # extra attempts after the first, for transient failures only
    backoff: float = 0.5  # seconds before the first retry; doubled each retry
    max_backoff: float = 8.0
    verify: bool = True


class Failure(Exception):
    """Why one URL did not become a file; ``retryable`` says whether another try may help."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass
class Fetched:
    key: str  # the caller's id for the URL
    ok: bool  # the file is on disk
    reason: str = ""
    attempts: int = 0  # requests made (0: the file was already on disk)
    bytes: int | None = None
    sha256: str | None = None


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


def backoff_seconds(attempt: int, settings: DownloadSettings) -> float:
    """Exponential backoff with jitter, so parallel workers do not retry in lockstep."""
    base = min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1))
    return base * (0.5 + random.random() / 2)


def _unchanged(body: bytes) -> bytes:
    return body


def fetch_one(
    client: httpx.Client,
    url: str,
    key: str,
    target: Path,
    settings: DownloadSettings,
    transform: Transform = _unchanged,
    sleep: Callable[[float], None] = time.sleep,
) -> Fetched:
    """Fetch one URL into ``target`` (atomically), retrying transient failures a bounded number of times."""
    if target.is_file():  # written by an earlier run that was stopped before its caller recorded it
        return Fetched(key, True, bytes=target.stat().st_size, sha256=sha256_of(target))
    attempts, reason = 0, "unknown"
    while attempts <= settings.retries:
        attempts += 1
        try:
            data = transform(fetch_body(client, url))
        except Failure as failure:
            reason = failure.reason
            if not failure.retryable:
                break
            if attempts <= settings.retries:
                sleep(backoff_seconds(attempts, settings))
            continue
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        return Fetched(key, True, attempts=attempts, bytes=len(data), sha256=sha256_of(target))
    return Fetched(key, False, reason=reason, attempts=attempts)


def download(
    jobs: Iterable[tuple[str, str, Path]],
    settings: DownloadSettings,
    on_result: Callable[[Fetched], None],
    transform: Transform = _unchanged,
) -> None:
    """Fetch every (key, url, target) on a thread pool; report each result as it completes.

    At most a few jobs a worker are in flight, so memory does not grow with the number of
    URLs; an interrupt cancels what has not started and re-raises.
    """
    limits = httpx.Limits(max_connections=settings.workers, max_keepalive_connections=settings.workers)
    pending = iter(jobs)
    in_flight: set[Future] = set()
    with httpx.Client(
        timeout=settings.timeout, verify=settings.verify, follow_redirects=True, limits=limits
    ) as client:

        def guarded(key: str, url: str, target: Path) -> Fetched:
            try:
                return fetch_one(client, url, key, target, settings, transform)
            except Exception as error:  # noqa: BLE001 - no URL may vanish without a recorded reason
                return Fetched(key, False, reason=f"error:{type(error).__name__}", attempts=1)

        pool = ThreadPoolExecutor(max_workers=settings.workers)
        try:
            while True:
                while len(in_flight) < settings.workers * IN_FLIGHT_PER_WORKER:
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
