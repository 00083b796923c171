"""What killed runs leave behind (issue 23.7): a killed index build's temporary file is removed by
the next build; an orphaned decoder worker of a killed `tag` does not keep the workspace locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from generations import plant

from alienstay.similarity import index as ix
from alienstay.stages.index import IndexSettings, run
from alienstay.workspace.locking import WorkspaceBusy, hold


def test_a_killed_index_builds_temporary_file_is_removed_by_the_next_build(tmp_path: Path) -> None:
    ws, _, _ = plant(tmp_path / "ws", 40, 8)
    folder = ix.folder_of(ws)
    folder.mkdir(parents=True)
    left = [folder / ".faiss.index.k1ll3d.tmp", folder / ".meta.json.abc123.tmp"]
    for path in left:
        path.write_bytes(b"half an index")
    kept = folder / "notes.txt"  # not a temporary file: left alone
    kept.write_text("mine", encoding="utf-8")
    summary = run(ws, IndexSettings(backend="exact"))
    assert summary.built and not any(p.exists() for p in left) and kept.exists()


CHILD_HOLDS = """
import os, sys, time
from alienstay.workspace.locking import hold
with hold(__import__("pathlib").Path(sys.argv[1]), "tag"):
    child = os.fork()  # what a DataLoader decoder worker is: a forked child of the locked run
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os.kill(os.getpid(), 9)  # the run is killed; its worker is orphaned, still running
"""


def test_an_orphaned_worker_of_a_killed_run_does_not_hold_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    said_by_run = tmp_path / "out.txt"
    with open(said_by_run, "w") as out:  # a file, not a pipe: the orphan keeps its copy of stdout open
        done = subprocess.run([sys.executable, "-c", CHILD_HOLDS, str(lock)], stdout=out, stderr=out, timeout=60)
    assert done.returncode == -9, said_by_run.read_text()
    orphan = int(said_by_run.read_text().split()[0])
    try:
        assert os.kill(orphan, 0) is None  # the worker is still alive
        said: list[str] = []
        start = time.monotonic()
        try:
            with hold(lock, "next", timeout=3, say=said.append):
                waited = time.monotonic() - start
        except WorkspaceBusy as busy:
            raise AssertionError(f"the orphaned worker kept the lock: {busy}") from None
        assert waited < 1.0
        assert said and "no longer running" in said[-1] and "pid" in said[-1]  # the dead run, named as dead
    finally:
        os.kill(orphan, signal.SIGKILL)
