"""`alienstay serve --workers N`: several processes over one workspace, one index build between them."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import webworkspace
from test_web_scale import assert_same_ranking, planted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """`alienstay serve` in a child process, as a user starts it."""

    def __init__(self, root: Path, workers: int) -> None:
        self.port = free_port()
        command = [sys.executable, "-c", "from alienstay.cli.commands import main; main()", "serve", "--workspace", str(root),
                   "--port", str(self.port), "--workers", str(workers)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        deadline = time.monotonic() + 60
        while self.get("/api/tags") is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the gallery did not answer: {self.process.communicate()[0][-2000:]}")
            time.sleep(0.2)

    def get(self, path: str) -> dict | None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            connection.request("GET", path)
            response = connection.getresponse()
            return json.loads(response.read()) if response.status == 200 else None
        except OSError:
            return None

    def close(self) -> str:
        self.process.terminate()
        try:
            return self.process.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.communicate()[0]


def builds(root: Path) -> list[dict]:
    """The word index's build log, one line a build."""
    return [json.loads(line) for line in (root / "index" / "words" / "builds.jsonl").read_text().splitlines()]


def worker_pids(parent: int) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(parent).children(recursive=True) if "spawn_main" in " ".join(p.cmdline())}


def test_two_workers_answer_from_one_index_built_before_they_start(tmp_path: Path) -> None:
    root = webworkspace.build(tmp_path / "ws")
    served = Served(root, workers=2)
    try:
        workers = worker_pids(served.process.pid)
        assert len(workers) == 2
        for _ in range(20):  # whichever worker answers, the same ranking
            found = served.get("/api/search?words=pool,night")
            assert [r["image_id"] for r in found["results"]] == webworkspace.POOL_NIGHT
        assert len([p for p in (root / "index" / "words").iterdir() if p.is_dir()]) == 1
    finally:
        said = served.close()
    assert "Traceback" not in said, said
    import psutil

    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in workers if psutil.pid_exists(pid)], timeout=20)
    assert not alive  # stopping the server stops its workers


def test_new_tags_reach_every_worker_and_are_indexed_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _, usable = planted(root, seed=1)
    served = Served(root, workers=2)
    try:
        generation = json.loads((root / "index" / "words" / "current.json").read_text())["generation"]
        tags, _ = planted(root, seed=2)  # `alienstay tag` rewrote tags.parquet while the gallery runs

        for _ in range(4):  # a new connection each time: any worker may answer
            with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=60) as client:
                assert_same_ranking(client, tags, usable, ["pool", "night"], per_page=50)
        folders = [p.name for p in (root / "index" / "words").iterdir() if p.is_dir()]
        assert len(folders) == 1 and folders[0] != generation  # the new build, the old one gone
        assert [b["generation"] for b in builds(root)] == [generation, folders[0]]  # built once a tag run
    finally:
        said = served.close()
    assert "Traceback" not in said, said


RACE = """
import sys, time
from pathlib import Path
from alienstay.web.gallery import current_index
from alienstay.wordindex.build import build_word_index
from alienstay.workspace.layout import Workspace
ws = Workspace(Path(sys.argv[1]))
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every racer starts at the same moment
print(current_index(ws).folder.name if sys.argv[3] == "gallery" else build_word_index(ws).name)
"""


def test_the_tag_stage_and_two_gallery_workers_racing_on_new_tags_build_the_index_once(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    planted(root, photos=2000)
    start_at = str(time.time() + 4)
    racers = [subprocess.Popen([sys.executable, "-c", RACE, str(root), start_at, who], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
              for who in ("gallery", "gallery", "tag stage")]
    opened = [racer.communicate(timeout=120)[0].strip() for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    assert len(set(opened)) == 1  # the others waited for the first's build and opened it
    assert [p.name for p in (root / "index" / "words").iterdir() if p.is_dir()] == [opened[0]]
    assert [b["generation"] for b in builds(root)] == [opened[0]]


def test_every_connection_has_nagle_off_even_on_a_socket_bound_with_protocol_zero() -> None:
    """uvicorn's multi-worker socket is bound as socket.socket(AF_INET): protocol 0, which asyncio
    does not recognise as TCP, so without this each mid-size response waited 40 ms for an ACK."""
    import asyncio

    from alienstay.web.serving import NoDelayHTTPProtocol

    listener = socket.socket(socket.AF_INET)  # as uvicorn's Config.bind_socket makes it
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

    async def nodelay_once_connected() -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(lambda: NoDelayHTTPProtocol(_config(), _state(), {}), accepted)
        option = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        transport.close()
        return option

    assert asyncio.run(nodelay_once_connected()) == 1
    for s in (client, listener):
        s.close()


def _config():
    import uvicorn

    config = uvicorn.Config(lambda scope, receive, send: None, log_level="warning")
    config.load()
    return config


def _state():
    from uvicorn.server import ServerState

    return ServerState()
