"""The Hotels-50K downloader against the loopback fault server: rows, retries, failures by reason.

A mix of URLs like the real dataset's (mostly fine, some dead, some flaky, slow, truncated,
or not images) goes through `alienstay.sources.hotels50k.run`; the figures say whether every
row ended downloaded or failed-with-reason, how many requests and retries that took, and
the throughput of 8 workers over 1 worker on the same healthy URLs (a ratio, since the
absolute rate depends on the machine). No network: the server listens on 127.0.0.1.

    python -m benchmarks.bench_downloader
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alienstay.sources import hotels50k as h50k
from alienstay.testing.hotels50k_fakes import (  # the fault server is a test fake
    FaultServer,
    write_metadata,
)
from alienstay.workspace.layout import Workspace
from benchmarks.common import save

# route -> how many URLs of that kind, out of 200
MIX = {"ok": 120, "big": 10, "missing": 20, "flaky/1": 10, "flaky/9": 8, "down": 8, "slow": 6,
       "truncated": 10, "text": 8}  # fmt: skip
SETTINGS = h50k.DownloadSettings(workers=8, timeout=0.5, retries=2, backoff=0.05, checkpoint_every=25)
OK_DELAY = 0.05  # seconds a healthy response takes: stands in for network latency


def urls_for(server: FaultServer, mix: dict[str, int], tag: str) -> dict[str, str]:
    urls = {}
    for kind, count in mix.items():
        for i in range(count):
            query = f"?delay={OK_DELAY}" if kind == "ok" else ""
            urls[f"{len(urls) + 1}"] = server.url(f"/{kind}/{tag}{i}.jpg{query}")
    return urls


def run_once(server: FaultServer, mix: dict[str, int], tag: str, settings: h50k.DownloadSettings):
    with tempfile.TemporaryDirectory() as tmp:
        write_metadata(Path(tmp) / "meta", train_urls=urls_for(server, mix, tag))
        ws = Workspace(Path(tmp) / "ws").ensure()
        report = h50k.run(ws, Path(tmp) / "meta", take_all=True, settings=settings)
        catalog = ws.read_catalog()
        accounted = int(catalog["status"].isin(["new", "failed"]).sum())
        unexplained = int(((catalog["status"] == "failed") & (catalog["reason"].fillna("") == "")).sum())
    return report, len(catalog), accounted, unexplained


def main() -> None:
    with FaultServer(slow_seconds=1.5) as server:
        report, rows, accounted, unexplained = run_once(server, MIX, "mix", SETTINGS)
        figures = {
            "rows": rows,
            "rows_downloaded_or_failed_with_reason": accounted - unexplained,
            "downloaded": report.fetched,
            "failed": report.failed,
            "requests": report.requests,
            "retries": report.retries,
            "server_hits": sum(server.hits.values()),
            "max_attempts_a_url": SETTINGS.retries + 1,
            "max_hits_on_one_url": max(server.hits.values()),
            "seconds": report.seconds,
            "images_per_second_mix": report.fetched / report.seconds,
        }
        figures.update({k: v for k, v in report.as_dict().items() if k.startswith("failed_")})

        healthy = {"ok": 80}
        serial, *_ = run_once(server, healthy, "serial", h50k.DownloadSettings(workers=1, timeout=5))
        parallel, *_ = run_once(server, healthy, "parallel", h50k.DownloadSettings(workers=8, timeout=5))
        figures["images_per_second_1_worker"] = serial.fetched / serial.seconds
        figures["images_per_second_8_workers"] = parallel.fetched / parallel.seconds
        figures["speedup_8_workers_over_1"] = serial.seconds / parallel.seconds
    save("downloader", figures)


if __name__ == "__main__":
    main()
