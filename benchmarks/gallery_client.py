"""The gallery benchmark's load generator for the mix: 16 clients as coroutines of one asyncio loop.

Each client opens a NEW TCP connection for every request, sends one HTTP/1.1 GET, reads the
status line, the headers and the Content-Length body, and closes, as `http.client` did in the
16 threads this replaces. The requests, their URLs and the random draws that choose them are the
same; what changed is the client's own CPU: 16 Python threads each building a connection
object and parsing headers with the email package fought the server's workers for the same two
cores and for their own GIL, and a request's latency included the wait for its client thread
to be scheduled again. One event loop doing plain socket reads costs a fraction of that.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np


class BadAnswer(OSError):
    """An answer that is not a whole HTTP/1.1 response with a Content-Length."""


async def get(port: int, target: str, timeout: float = 120.0) -> int:
    """GET target on a new connection to 127.0.0.1:port; the status, once the whole body has arrived."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept-Encoding: identity\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.strip().lower() == "content-length"),
                      None)
        if length is None:
            raise BadAnswer(f"no Content-Length in the answer to {target}")
        await asyncio.wait_for(reader.readexactly(length), timeout)
        return status
    finally:
        writer.close()


def run_mix(port: int, clients: int, requests: int, seconds: float, kinds: list[str], shares: list[float],
            url) -> tuple[dict[str, list[float]], int, float]:
    """`clients` coroutines, each drawing up to `requests` (kind, URL) with its own generator until `seconds`
    have passed: latencies per kind (seconds), errors, and the wall time."""
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors = [0]

    async def client(seed: int, deadline: float) -> None:
        rng = np.random.default_rng(1000 + seed)
        for _ in range(requests):
            if time.perf_counter() > deadline:
                break
            kind = str(rng.choice(kinds, p=shares))
            target, start = url(rng, kind), time.perf_counter()
            try:
                ok = await get(port, target) == 200
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                ok = False
            latencies[kind].append(time.perf_counter() - start)
            errors[0] += not ok

    async def everyone() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(client(seed, began + seconds) for seed in range(clients)))
        return time.perf_counter() - began

    wall = asyncio.run(everyone())
    return latencies, errors[0], wall
