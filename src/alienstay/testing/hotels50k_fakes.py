"""A synthetic Hotels-50K metadata folder and a loopback HTTP server that misbehaves on purpose.

Used by tests/test_hotels50k.py and benchmarks/bench_downloader.py. No network: the server
listens on 127.0.0.1 on a free port, in a thread of the test process.

Routes (``<name>`` is any file name; every hit is counted by path):
  /ok/<name>             200 with an image (``?delay=S`` waits S seconds first)
  /big/<name>            200 with a 1000x800 image (the downloader must resize it to 640)
  /missing/<name>        404
  /flaky/<k>/<name>      500 for the first k hits of that path, then 200
  /down/<name>           500 always
  /slow/<name>           waits ``slow_seconds`` before answering (longer than the client timeout)
  /truncated/<name>      announces the full length, sends half, closes
  /text/<name>           200 with an HTML page instead of an image
"""

from __future__ import annotations

import csv
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from alienstay.testing.imagefactory import jpeg_bytes, photo_like


class FaultServer:
    def __init__(self, slow_seconds: float = 1.5) -> None:
        self.slow_seconds = slow_seconds
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.image = jpeg_bytes(photo_like(11))
        self.big_image = jpeg_bytes(photo_like(12, (1000, 800)))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def hits_under(self, prefix: str) -> int:
        return sum(n for path, n in self.hits.items() if path.startswith(prefix))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fault = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected here

            def send_body(self, body: bytes, status: int = 200, ctype: str = "image/jpeg") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with fault.lock:
                    fault.hits[parts.path] += 1
                    count = fault.hits[parts.path]
                kind = parts.path.split("/")[1]
                if kind == "ok":
                    time.sleep(float(parse_qs(parts.query).get("delay", ["0"])[0]))
                    self.send_body(fault.image)
                elif kind == "big":
                    self.send_body(fault.big_image)
                elif kind == "missing":
                    self.send_body(b"not found", 404, "text/plain")
                elif kind == "flaky":
                    failures = int(parts.path.split("/")[2])
                    if count <= failures:
                        self.send_body(b"oops", 500, "text/plain")
                    else:
                        self.send_body(fault.image)
                elif kind == "down":
                    self.send_body(b"oops", 500, "text/plain")
                elif kind == "slow":
                    time.sleep(fault.slow_seconds)
                    self.send_body(fault.image)
                elif kind == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(fault.image)))
                    self.end_headers()
                    self.wfile.write(fault.image[: len(fault.image) // 2])
                    self.close_connection = True
                elif kind == "text":
                    self.send_body(b"<html><body>moved</body></html>", 200, "text/html")
                else:
                    self.send_body(b"no such route", 404, "text/plain")

        return Handler


# ---- metadata ------------------------------------------------------------------------------
CHAINS = [("-1", "no chain"), ("3", "Hilton"), ("7", "Marriott"), ("9", "Ibis")]
# hotel id -> chain id; chain 9 has one hotel, chain -1 the most, as in the real data
HOTELS = {"100": "-1", "101": "-1", "102": "-1", "103": "-1", "200": "3", "201": "3", "300": "7",
          "301": "7", "400": "9"}  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[str]], with_header: bool) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if with_header:
            writer.writerow(header)
        writer.writerows(rows)


def write_metadata(
    folder: Path,
    train_urls: dict[str, str] | None = None,
    with_header: bool = True,
    images_per_hotel: int = 4,
    test_urls: dict[str, str] | None = None,
) -> dict[str, int]:
    """The four CSVs. ``train_urls`` / ``test_urls`` (image id -> url) override the generated rows.

    Generated rows: ``images_per_hotel`` train images a hotel (ids 1..), old and new source
    names mixed, one test image a hotel. Returns the row count of each file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    hotel_ids = list(HOTELS)
    if train_urls is None:
        images = [
            (str(1 + h * images_per_hotel + k), hotel_id, f"http://example.invalid/{hotel_id}/{k}.jpg")
            for h, hotel_id in enumerate(hotel_ids)
            for k in range(images_per_hotel)
        ]
    else:  # given urls are dealt to the hotels in turn
        images = [(image_id, hotel_ids[i % len(hotel_ids)], url) for i, (image_id, url) in enumerate(train_urls.items())]
    old_and_new = ["expedia", "travel_website", "tcam", "traffickcam"]
    train = [[image_id, hotel_id, url, old_and_new[i % 4], "2016-05-01 10:00:00"]
             for i, (image_id, hotel_id, url) in enumerate(images)]  # fmt: skip
    if test_urls is None:
        test_urls = {str(90000 + i): f"http://example.invalid/t/{i}.jpg" for i in range(len(hotel_ids))}
    test = [[image_id, hotel_ids[i % len(hotel_ids)], url, "tcam", "2017-01-01 00:00:00"]
            for i, (image_id, url) in enumerate(test_urls.items())]  # fmt: skip
    hotels = [[hotel_id, f"Hotel {hotel_id}, {chain}", chain, "48.85", "2.35"] for hotel_id, chain in HOTELS.items()]
    write_csv(folder / "chain_info.csv", ["chain_id", "chain_name"], [list(c) for c in CHAINS], with_header)
    write_csv(folder / "hotel_info.csv", ["hotel_id", "hotel_name", "chain_id", "latitude", "longitude"],
              hotels, with_header)  # fmt: skip
    columns = ["image_id", "hotel_id", "image_url", "image_source", "upload_timestamp"]
    write_csv(folder / "train_set.csv", columns, train, with_header)
    write_csv(folder / "test_set.csv", columns, test, with_header)
    return {"chain_info.csv": len(CHAINS), "hotel_info.csv": len(hotels), "train_set.csv": len(train),
            "test_set.csv": len(test)}  # fmt: skip
