"""The gallery at the dataset's scale: 16 concurrent clients against `alienstay serve` on loopback.

For 100,000 and 1,000,000 synthetic photos (`benchmarks/gallery_data.py`: the real vocabulary,
70 tag rows a photo, probabilities from the tag stage's own softmax and selection rule), the
workspace is generated once (kept under runs/bench/gallery/), its word index built as the tag
stage builds it, then `alienstay serve --workers W` (W: one per core, as the README advises for
a large workspace) is started and measured: start until the first answer, peak memory of all its
processes (proportional set size, PSS: the index pages the workers map together count once;
the plain sum of resident sets, which counts them once a worker, beside it), and, per kind of
request, after WARMUP_S of the same requests unmeasured (steady state: the pages a kind touches
are mapped in), 16 clients on keep-alive connections, each sending at most REQUESTS requests
or until SECONDS have passed: p50 / p95 latency, requests a second, errors. The "now" column is issue 15's measurement of the
pandas gallery at 100,000 photos. Beside each latency, the server's CPU time a request (user +
system, from /proc): on a machine shared with other work the latencies grow with the load
average, the CPU time much less.

Beside the per-kind figures, **the mix with default settings** (issue 22's target): plain
`alienstay serve` (workers auto), measured from its first answer with nothing warmed up, 16
clients each opening a NEW connection for every request, drawing from a mix of word searches
(1 to 3 words), home pages and searches by meaning (a phrase, through the home page's search box
and /api/search?text=); the workspace's embeddings are grown from the sample photos' real ones
(`benchmarks/gallery_meaning.py`), so a search by meaning runs the real query model.

    python -m benchmarks gallery                          # both sizes
    ALIENSTAY_BENCH_GALLERY_SIZES=100000 python -m benchmarks gallery
    ALIENSTAY_BENCH_GALLERY_WORKERS=1 python -m benchmarks gallery   # one server process
    ALIENSTAY_BENCH_GALLERY_PARTS=mix python -m benchmarks gallery   # only the mix (or: kinds)
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psutil

from alienstay.vocabulary.words import load_vocabulary
from benchmarks.gallery_data import image_ids

ROOT = Path("runs/bench/gallery")
SIZES = [int(s) for s in os.environ.get("ALIENSTAY_BENCH_GALLERY_SIZES", "100000,1000000").split(",")]
CLIENTS = 16
REQUESTS = 100  # a client's requests per kind of request
SECONDS = 30.0  # and at most this long per kind
WARMUP_S = 2.0  # unmeasured requests of a kind before it is measured
WORKERS = int(os.environ.get("ALIENSTAY_BENCH_GALLERY_WORKERS", os.cpu_count() or 1))
PARTS = os.environ.get("ALIENSTAY_BENCH_GALLERY_PARTS", "kinds,mix").split(",")
MIX = {"word search": 0.5, "home page": 0.3, "search by meaning": 0.2}  # shares of the mix's requests
# A search by meaning's phrase: one of 12 x 16 x 8 = 1,536, drawn uniformly, so the workers' phrase
# caches (similarity/query.py) see few repeats (the run prints how many) and each phrase mostly runs the model.
LOOKS = ("a bright", "a quiet", "a dark", "a cosy", "a modern", "an old", "a small", "a large", "a sunny", "a calm",
         "a colourful", "a simple")
THINGS = ("room with a big bed", "pool at night", "terrace with plants", "sofa by the window", "bathroom with a bathtub",
          "balcony with a view of the sea", "lounge with lamps", "breakfast table", "lobby with a reception desk",
          "garden with chairs", "room with two beds", "kitchen with a stove", "restaurant with tables", "fireplace",
          "hallway with paintings", "desk by a window")
PLACES = ("", " near the beach", " in the city", " with wooden floors", " for a family", " at sunset", " in the mountains",
          " with white walls")
TARGET_MAX_S = 1.0  # no request of the mix slower than this after start
TARGET_P95_MS, TARGET_MEMORY_MB, TARGET_START_S = 100, 2048, 10
NOW = {  # issue 15, the pandas gallery at 100,000 photos
    "server memory": "5.6 GB", "start until the first answer": "16 s", "search, 1 word, one client": "400 ms",
    "search, 1 word": "p95 11.6 s", "home page, 1 word": "400 ms", "home page": "31 ms", "photo JSON": "10 ms",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def generate(photos: int) -> dict:
    """The workspace (kept between runs), then its word index built afresh, each in a child process."""
    root = ROOT / f"ws-{photos}"
    figures = {}
    for step in ([str(photos), str(root)], ["index", str(root)]):
        out = subprocess.run([sys.executable, "-m", "benchmarks.gallery_data", *step], check=True, capture_output=True, text=True)
        figures.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return figures


class Server:
    """`alienstay serve` in a child process, its resident memory sampled while it runs."""

    def __init__(self, workspace: Path, workers: int | None = WORKERS) -> None:
        self.port = free_port()
        command = ["-c", "from alienstay.cli.commands import main; main()", "serve", "--workspace", str(workspace), "--port", str(self.port),
                   *(["--workers", str(workers)] if workers else [])]  # None: the default (auto)
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.peak_mb, self.peak_rss_mb, self._stop = 0.0, 0.0, threading.Event()
        self.start_s = self._wait_first_answer()
        threading.Thread(target=self._sample, daemon=True).start()

    def _wait_first_answer(self, limit: float = 300.0) -> float:
        while time.perf_counter() - self.started < limit:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gallery exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                connection.request("GET", "/")
                if connection.getresponse().status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the gallery gave no answer within {limit:.0f} s")

    def _sample(self) -> None:
        process = psutil.Process(self.process.pid)
        while not self._stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                pss = sum(p.memory_full_info().pss for p in tree)
                rss = sum(p.memory_info().rss for p in tree)
            except psutil.Error:
                return
            self.peak_mb, self.peak_rss_mb = max(self.peak_mb, pss / 2**20), max(self.peak_rss_mb, rss / 2**20)
            time.sleep(0.25)

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (user + system): unlike latency, not inflated by a busy machine."""
        process = psutil.Process(self.process.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)])

    def close(self) -> None:
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(port: int, next_url, clients: int = CLIENTS, requests: int = REQUESTS, seconds: float = SECONDS) -> dict:
    """`clients` threads, each on its own keep-alive connection, bounded in count and in time."""
    latencies: list[float] = []
    errors = [0]
    lock, barrier = threading.Lock(), threading.Barrier(clients)
    deadline: list[float] = []

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        barrier.wait()
        mine = []
        for _ in range(requests):
            if time.perf_counter() > deadline[0]:
                break
            start = time.perf_counter()
            try:
                connection.request("GET", next_url(rng))
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            mine.append(time.perf_counter() - start)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    began = time.perf_counter()
    deadline.append(began + seconds)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "errors": errors[0], "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "per_s": len(ms) / wall}


def scenarios(photos: int) -> dict:
    """Kinds of request, each a function of a random generator giving the next URL."""
    vocab = load_vocabulary()
    by_facet: dict[str, list[str]] = {}
    for word in vocab.words:
        by_facet.setdefault(word.facet, []).append(word.tag)
    facets = list(by_facet)

    def words(rng, n: int) -> str:
        chosen = rng.choice(len(facets), n, replace=False)
        return ",".join(quote(str(rng.choice(by_facet[facets[f]]))) for f in chosen)

    def photo(rng) -> str:
        i = int(rng.integers(photos))
        return quote(image_ids(i, i + 1)[0])

    return {
        "search, 1 word": lambda rng: "/api/search?words=" + words(rng, 1),
        "search, 2 words": lambda rng: "/api/search?words=" + words(rng, 2),
        "search, 3 words": lambda rng: "/api/search?words=" + words(rng, 3),
        "home page": lambda rng: "/",
        "home page, 1 word": lambda rng: "/?words=" + words(rng, 1),
        "photo page": lambda rng: "/photo/" + photo(rng),
        "photo JSON": lambda rng: "/api/images/" + photo(rng),
    }


def load_mix(port: int, photos: int, clients: int = CLIENTS, requests: int = REQUESTS, seconds: float = SECONDS) -> dict:
    """`clients` threads, a new connection for every request, each request drawn from MIX; per kind and overall."""
    kinds, draw = list(MIX), scenarios(photos)
    latencies: dict[str, list[float]] = {kind: [] for kind in kinds}
    errors, lock, barrier, deadline = [0], threading.Lock(), threading.Barrier(clients), [0.0]
    seen: dict[str, int] = {}  # phrase -> times asked

    def url(rng, kind: str) -> str:
        if kind == "word search":
            n = int(rng.integers(1, 4))
            return draw[f"search, {n} word{'s' if n > 1 else ''}"](rng)
        if kind == "home page":
            return "/"
        phrase = f"{rng.choice(LOOKS)} {rng.choice(THINGS)}{rng.choice(PLACES)}"
        with lock:
            seen[phrase] = seen.get(phrase, 0) + 1
        return f"/?q={quote(phrase)}" if rng.random() < 0.5 else f"/api/search?text={quote(phrase)}"

    def client(seed: int) -> None:
        rng = np.random.default_rng(1000 + seed)
        mine = []
        barrier.wait()
        for _ in range(requests):
            if time.perf_counter() > deadline[0]:
                break
            kind = str(rng.choice(kinds, p=list(MIX.values())))
            target, start = url(rng, kind), time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)  # a new connection each time
                connection.request("GET", target)
                response = connection.getresponse()
                response.read()
                connection.close()
                ok = response.status == 200
            except OSError:
                ok = False
            mine.append((kind, time.perf_counter() - start))
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            for kind, took in mine:
                latencies[kind].append(took)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(clients)]
    began = time.perf_counter()
    deadline[0] = began + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began

    def figures(ms: np.ndarray) -> dict:
        return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
                "max_ms": float(ms.max())}

    every = np.array([t for kind in kinds for t in latencies[kind]]) * 1000
    asked = sum(seen.values())
    return {"all": {**figures(every), "per_s": len(every) / wall}, "errors": errors[0],
            "phrases": {"asked": asked, "distinct": len(seen), "repeats": (asked - len(seen)) / max(asked, 1)},
            **{kind: figures(np.array(latencies[kind]) * 1000) for kind in kinds if latencies[kind]}}


def measure_mix(photos: int) -> dict:
    """Plain `alienstay serve` (its defaults), from its first answer, nothing warmed: the mix on new connections."""
    root = ROOT / f"ws-{photos}"
    generate(photos)
    grown = subprocess.run([sys.executable, "-m", "benchmarks.gallery_meaning", str(root)], check=True, capture_output=True, text=True)
    meaning = json.loads(grown.stdout.strip().splitlines()[-1])
    server = Server(root, workers=None)
    try:
        workers = len([p for p in psutil.Process(server.process.pid).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]) or 1
        cpu = server.cpu_s()
        mix = load_mix(server.port, photos)
        mix["server_cpu_ms"] = (server.cpu_s() - cpu) * 1000 / max(mix["all"]["requests"], 1)
        return {"photos": photos, "start_s": server.start_s, "workers": workers, "model_id": meaning["model_id"], "mix": mix,
                "server_peak_mb": server.peak_mb, "server_peak_rss_mb": server.peak_rss_mb,
                "load_average": os.getloadavg()[0]}
    finally:
        server.close()


def mix_table(results: list[dict]) -> str:
    sizes = " | ".join(f"{r['photos']:,}" for r in results)
    lines = [f"| the mix, default `serve`, {CLIENTS} clients, new connections | {sizes} | target |",
             "|---" * (2 + len(results)) + "|"]
    row = lambda name, cell, target="": lines.append(f"| {name} | {' | '.join(cell(r) for r in results)} | {target} |")  # noqa: E731
    row("workers (auto), start until the first answer", lambda r: f"{r['workers']}, {r['start_s']:.1f} s")
    row("all requests: p50 / p95 / max", lambda r: f"{r['mix']['all']['p50_ms']:.0f} / **{r['mix']['all']['p95_ms']:.0f}** / "
        f"{r['mix']['all']['max_ms']:.0f} ms, {r['mix']['all']['requests']} requests, {r['mix']['errors']} errors",
        f"p95 < {TARGET_P95_MS} ms, max < {TARGET_MAX_S * 1000:.0f} ms")
    for kind in MIX:
        row(f"{kind} ({MIX[kind]:.0%}): p50 / p95 / max", lambda r, k=kind: f"{r['mix'][k]['p50_ms']:.0f} / {r['mix'][k]['p95_ms']:.0f} / "
            f"{r['mix'][k]['max_ms']:.0f} ms" if k in r["mix"] else "-")
    row("server CPU a request", lambda r: f"{r['mix']['server_cpu_ms']:.1f} ms")
    row("phrases: asked, distinct, repeats (the phrase caches' hit rate is at most this)", lambda r: (
        f"{r['mix']['phrases']['asked']}, {r['mix']['phrases']['distinct']}, {r['mix']['phrases']['repeats']:.0%}"))
    row("memory: peak PSS, all processes (RSS sum)", lambda r: f"**{r['server_peak_mb']:.0f} MB** ({r['server_peak_rss_mb']:.0f} MB)",
        f"< {TARGET_MEMORY_MB} MB")
    row("load average while measured", lambda r: f"{r['load_average']:.1f} on {os.cpu_count()} cores")
    return "\n".join(lines)


def measure(photos: int) -> dict:
    built = generate(photos)
    server = Server(ROOT / f"ws-{photos}")
    try:
        figures = {"photos": photos, "tag_rows": built["tag_rows"], "generate_s": built["generate_s"],
                   "index_build_s": built["index_build_s"], "index_build_peak_mb": built["index_build_peak_mb"],
                   "start_s": server.start_s, "workers": WORKERS}
        one = load(server.port, lambda rng: "/api/search?words=sofa", clients=1, requests=20)
        figures["search, 1 word, one client"] = one["p50_ms"]
        for name, next_url in scenarios(photos).items():
            load(server.port, next_url, requests=10**6, seconds=WARMUP_S)
            cpu = server.cpu_s()
            figures[name] = load(server.port, next_url)
            figures[name]["server_cpu_ms"] = (server.cpu_s() - cpu) * 1000 / max(figures[name]["requests"], 1)
        figures["server_peak_mb"], figures["server_peak_rss_mb"] = server.peak_mb, server.peak_rss_mb
    finally:
        server.close()
    return figures


def table(results: list[dict]) -> str:
    sizes = [f"{r['photos']:,}" for r in results]
    lines = [f"| figure | now (100,000) | {' | '.join(sizes)} | target |", "|---" * (2 + len(sizes)) + "|"]
    lines.append(f"| server memory (peak PSS, all workers; RSS sum) | {NOW['server memory']} | "
                 + " | ".join(f"{r['server_peak_mb']:.0f} MB ({r['server_peak_rss_mb']:.0f} MB)" for r in results)
                 + f" | < {TARGET_MEMORY_MB} MB |")
    lines.append(f"| start until the first answer | {NOW['start until the first answer']} | "
                 + " | ".join(f"{r['start_s']:.1f} s" for r in results) + f" | < {TARGET_START_S} s |")
    lines.append(f"| search, 1 word, one client (p50) | {NOW['search, 1 word, one client']} | "
                 + " | ".join(f"{r['search, 1 word, one client']:.1f} ms" for r in results) + " | |")
    for name in scenarios(1):
        cells = [f"p50 {r[name]['p50_ms']:.0f} / p95 {r[name]['p95_ms']:.0f} ms, {r[name]['per_s']:.0f}/s, "
                 f"{r[name]['errors']} errors, {r[name]['server_cpu_ms']:.1f} ms CPU" for r in results]
        lines.append(f"| {name}, {CLIENTS} clients | {NOW.get(name, '')} | {' | '.join(cells)} | p95 < {TARGET_P95_MS} ms |")
    lines.append("| index build (once, tag stage) | | " + " | ".join(
        f"{r['index_build_s']:.0f} s, {r['index_build_peak_mb'] or 0:.0f} MB" for r in results) + " | |")
    return "\n".join(lines)


def main() -> None:
    results = [measure(photos) for photos in SIZES] if "kinds" in PARTS else []
    if results:
        print(table(results))
        print(f"(`alienstay serve --workers {WORKERS}`; load average while measured: {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores; the clients run on the same machine; {WARMUP_S:.0f} s of each kind unmeasured first)")
        worst = max(r[name]["p95_ms"] for r in results for name in scenarios(1))
        print(f"  worst p95 {worst:.0f} ms; errors {sum(r[name]['errors'] for r in results for name in scenarios(1))}")
    mixes = [measure_mix(photos) for photos in SIZES] if "mix" in PARTS else []
    if mixes:
        print(mix_table(mixes))
        print(f"  (the clients run on the same {os.cpu_count()} cores as the server; query model {mixes[0]['model_id']})")
    ROOT.mkdir(parents=True, exist_ok=True)
    (ROOT.parent / "gallery.json").write_text(json.dumps({"kinds": results, "mix": mixes}, indent=2) + "\n")


if __name__ == "__main__":
    main()
