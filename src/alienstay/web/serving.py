"""`alienstay serve`: the gallery in one or several uvicorn worker processes.

Several workers (by default one per core, fewer where memory is short: `auto_workers`) each run
`create_app` over the same workspace and map the same index files, so the page cache holds one
copy. The word index is brought up to date once, here, before any worker starts.

Each worker loads the query model and maps the embedding index in the app factory, that is
before it accepts a connection (uvicorn calls the factory first): so no search by meaning waits
seconds for a model behind a queue of other requests (issue 22: the first one took 26 s), and
each worker says on stderr how long after `serve` started it was ready. With several workers,
none answers until all are ready (`wait_for_the_others`).

Every connection gets TCP_NODELAY. uvicorn's multi-worker path binds its listening socket
with protocol number 0, and asyncio only switches Nagle's algorithm off for sockets whose
protocol reads IPPROTO_TCP; so with `--workers 2` a response whose body went out in a second
write smaller than a segment (a photo's 8 KB JSON) waited for the client's delayed ACK: 40 ms
on every photo page (`python -m benchmarks gallery` found it).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from alienstay.workspace.layout import Workspace

WORKSPACE_ENV = "ALIENSTAY_GALLERY_WORKSPACE"  # how the workers learn which workspace to serve
STARTED_ENV = "ALIENSTAY_GALLERY_STARTED"  # when `serve` started (time.time()), for the ready line
# What one worker holds of its own, beyond the index pages the workers share: the Python heap,
# torch, the query model (the offline tagger's MiniLM text side; a CLIP is loaded whole) and the word tables.
WORKER_MEMORY_BYTES = 640 * 2**20  # measured: 645 MB resident, 525 MB PSS (offline text side, 3,000 photos)
THREADS_ENV = "ALIENSTAY_GALLERY_THREADS"  # torch threads a worker: its share of the cores
READY_ENV = "ALIENSTAY_GALLERY_READY"  # "folder:workers": where each worker says it is ready, and how many will
READY_WAIT_S = 300.0  # a worker waits at most this for the others, then answers anyway
WARM_UP = ("a hotel room", "a pool at night with lamps", "a bright breakfast room by the sea with plants")


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, with Nagle's algorithm off on each connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def available_memory() -> int:
    """Bytes of memory available now (psutil where installed, else the kernel's page counts)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_workers(cores: int | None = None, memory: int | None = None) -> int:
    """One worker a core (a worker answers on one core), no more than the available memory holds."""
    cores = usable_cores() if cores is None else cores
    memory = available_memory() if memory is None else memory
    return max(1, min(cores, memory // WORKER_MEMORY_BYTES))


class PortUnavailable(OSError):
    """The address cannot be listened on; the message says which and what to pass instead."""


def check_port(host: str, port: int) -> None:
    """Bind once and let go, so a port in use is a message before any index is built, not uvicorn's exit."""
    try:
        with socket.create_server((host, port)):  # SO_REUSEADDR, as uvicorn binds: a closed port's TIME_WAIT is no error
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise PortUnavailable(f"cannot listen on {host}:{port} ({reason}): pass another `--port` "
                              f"(e.g. --port {port + 1 if port < 65535 else 8000}) or another `--host`.") from None


def preload(app: FastAPI) -> str:
    """Map the embedding index, load the query model and run it once: what a worker does before it accepts.

    Returns what was loaded, or why search by meaning is off (then word search still answers)."""
    from alienstay.similarity.query import QueryModelUnavailable
    from alienstay.similarity.service import NoEmbeddings

    similarity = app.state.similarity
    env = app.state.templates.env
    for name in env.list_templates():  # compiled now, not on the first page of each kind
        env.get_template(name)
    try:
        vectors = similarity.require()
        model = similarity.query_model()
        for phrase in WARM_UP:  # the first forward passes allocate buffers (300 ms, then 90): not on a user's search
            model.encode(phrase)  # uncached: the phrase cache keeps users' phrases only
        similarity.similar(vectors.ids_of(np.array([0]))[0], 1)  # builds "more like this"'s duplicate keys
        snapshot = app.state.gallery.current
        snapshot.embedding_rows, snapshot.embedding_ordinals  # noqa: B018  (a snapshot's row tables, made once)
    except NoEmbeddings:
        return "no embeddings: search by alien words only"
    except QueryModelUnavailable as error:
        return f"search by meaning off: {str(error).splitlines()[0]}"
    return f"query model {model.model_id}, {similarity.index.name} index of {len(vectors):,} photos"


def app_from_environment() -> FastAPI:
    """The app factory each worker process calls: the app, with its models loaded before any request."""
    from alienstay.web.app import create_app

    app = create_app(Path(os.environ[WORKSPACE_ENV]))
    loaded = preload(app)
    if "torch" in sys.modules:  # one worker a core: a second torch thread would only contend with the next worker
        sys.modules["torch"].set_num_threads(int(os.environ.get(THREADS_ENV, "0")) or usable_cores())
    # What the worker loaded (torch, the query model, the tables: half a million objects) will live as long
    # as it does: frozen out of the collector, so a full collection scans only what requests made since.
    # Unfrozen, each full collection held a worker for ~450 ms (every request behind it waited; issue 22).
    gc.collect()
    gc.freeze()
    started = float(os.environ.get(STARTED_ENV, time.time()))
    print(f"worker {os.getpid()} ready {time.time() - started:.1f} s after start ({loaded})", file=sys.stderr, flush=True)
    wait_for_the_others(os.environ.get(READY_ENV, ""))
    return app


def wait_for_the_others(ready: str, limit_s: float = READY_WAIT_S) -> bool:
    """Say this worker is ready, then wait until every worker is: the listening socket is shared, so the
    first worker ready would otherwise take every request while the others still load their models on
    the same cores (the mix's first searches took over a second). False when the wait ran out."""
    if not ready:
        return True
    folder, _, count = ready.rpartition(":")
    (Path(folder) / str(os.getpid())).touch()
    deadline = time.monotonic() + limit_s
    while sum(1 for _ in Path(folder).iterdir()) < int(count):  # a restarted worker finds them all there
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def serve(ws: Workspace, host: str, port: int, workers: int = 1) -> None:
    """Bring the word index up to date, then serve until stopped."""
    import uvicorn

    from alienstay.web.gallery import current_index

    os.environ.setdefault(STARTED_ENV, str(time.time()))
    current_index(ws)  # built once here, not once a worker
    os.environ[WORKSPACE_ENV] = str(ws.root.resolve())
    os.environ[THREADS_ENV] = str(max(1, usable_cores() // workers))
    os.environ.setdefault("OMP_NUM_THREADS", os.environ[THREADS_ENV])  # read by torch when a worker imports it
    with tempfile.TemporaryDirectory(prefix="alienstay-ready-") as ready:
        os.environ[READY_ENV] = f"{ready}:{workers}" if workers > 1 else ""
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    http=f"{__name__}:NoDelayHTTPProtocol", log_level="warning")
