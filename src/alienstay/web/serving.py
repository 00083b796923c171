"""`alienstay serve`: the gallery in one or several uvicorn worker processes.

Several workers (`--workers N`, one per core for a large workspace) each run `create_app` over
the same workspace and map the same index files, so the page cache holds one copy. The word
index is brought up to date once, here, before any worker starts.

Every connection gets TCP_NODELAY. uvicorn's multi-worker path binds its listening socket
with protocol number 0, and asyncio only switches Nagle's algorithm off for sockets whose
protocol reads IPPROTO_TCP; so with `--workers 2` a response whose body went out in a second
write smaller than a segment (a photo's 8 KB JSON) waited for the client's delayed ACK: 40 ms
on every photo page (`python -m benchmarks gallery` found it).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from alienstay.workspace import Workspace

WORKSPACE_ENV = "ALIENSTAY_GALLERY_WORKSPACE"  # how the workers learn which workspace to serve


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, with Nagle's algorithm off on each connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def app_from_environment() -> FastAPI:
    """The app factory each worker process calls."""
    from alienstay.web.app import create_app

    return create_app(Path(os.environ[WORKSPACE_ENV]))


def serve(ws: Workspace, host: str, port: int, workers: int = 1) -> None:
    """Bring the word index up to date, then serve until stopped."""
    import uvicorn

    from alienstay.web.gallery import current_index

    current_index(ws)  # built once here, not once a worker
    os.environ[WORKSPACE_ENV] = str(ws.root.resolve())
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers,
                http=f"{__name__}:NoDelayHTTPProtocol", log_level="warning")
