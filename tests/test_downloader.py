"""The generic downloader on its own: files or reasons, bounded retries, resume, a source's transform."""

from __future__ import annotations

from pathlib import Path

import pytest

from alienstay.sources import downloader
from alienstay.sources.downloader import DownloadSettings, Failure, Fetched
from alienstay.testing.hotels50k_fakes import FaultServer

FAST = DownloadSettings(workers=3, timeout=1.0, retries=2, backoff=0.01)


@pytest.fixture
def server():
    with FaultServer(slow_seconds=2.5) as fault:
        yield fault


def run_jobs(server: FaultServer, folder: Path, paths: list[str], **kwargs) -> dict[str, Fetched]:
    jobs = [(path, server.url(path), folder / f"{i}.bin") for i, path in enumerate(paths)]
    results: dict[str, Fetched] = {}
    downloader.download(jobs, FAST, lambda r: results.setdefault(r.key, r), **kwargs)
    return results


def test_every_url_ends_as_a_file_or_a_reason(tmp_path: Path, server: FaultServer) -> None:
    paths = ["/ok/a.jpg", "/missing/b.jpg", "/flaky/1/c.jpg", "/down/d.jpg", "/slow/e.jpg", "/truncated/f.jpg"]
    results = run_jobs(server, tmp_path, paths)
    assert set(results) == set(paths)
    assert results["/ok/a.jpg"].ok and (tmp_path / "0.bin").read_bytes() == server.image
    assert results["/flaky/1/c.jpg"].ok and results["/flaky/1/c.jpg"].attempts == 2  # retried once
    reasons = {path: r.reason for path, r in results.items() if not r.ok}
    assert reasons == {"/missing/b.jpg": "http_404", "/down/d.jpg": "http_500",
                       "/slow/e.jpg": "timeout", "/truncated/f.jpg": "truncated_body"}  # fmt: skip
    assert results["/missing/b.jpg"].attempts == 1  # a 404 is permanent: no retry
    assert results["/down/d.jpg"].attempts == FAST.retries + 1  # bounded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.bin", "2.bin"]  # no partial file left


def test_a_file_on_disk_is_not_fetched_again(tmp_path: Path, server: FaultServer) -> None:
    (tmp_path / "0.bin").write_bytes(b"kept from an earlier run")
    results = run_jobs(server, tmp_path, ["/ok/resumed.jpg"])
    assert results["/ok/resumed.jpg"].ok and results["/ok/resumed.jpg"].attempts == 0
    assert server.hits_under("/ok/resumed") == 0
    assert (tmp_path / "0.bin").read_bytes() == b"kept from an earlier run"


def test_the_transform_checks_and_rewrites_what_is_saved(tmp_path: Path, server: FaultServer) -> None:
    def only_jpeg(body: bytes) -> bytes:
        if not body.startswith(b"\xff\xd8"):
            raise Failure("not_a_jpeg", retryable=False)
        return b"checked:" + body[:4]

    results = run_jobs(server, tmp_path, ["/ok/g.jpg", "/text/h.jpg"], transform=only_jpeg)
    assert (tmp_path / "0.bin").read_bytes() == b"checked:" + server.image[:4]
    assert results["/text/h.jpg"].reason == "not_a_jpeg" and results["/text/h.jpg"].attempts == 1
