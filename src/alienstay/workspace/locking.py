"""The workspace lock: one writer at a time, and a message naming the other one.

A stage holds the lock while it reads, changes and rewrites workspace tables, so two runs on
one workspace (two `alienstay edit`s, two `tag`s) take turns instead of one silently
overwriting the other's rows. The lock is an advisory ``flock`` on ``<workspace>/.lock``:
the kernel releases it when its process dies, however it dies, so a killed run never
leaves the workspace locked. The file also holds who took it (pid, command, since when): a
waiting run prints that, and a run that finds a previous holder's record still there knows
that holder died without releasing, and says it took the lock over.

The lock is re-entrant within a process (the demo runs stages inside stages).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

POLL_SECONDS = 0.2
TIMEOUT_ENV = "ALIENSTAY_LOCK_TIMEOUT"  # seconds to wait for a busy workspace; unset: wait until free

from alienstay.workspace.storage import WorkspaceError

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth) held by this process
_guard = threading.Lock()


class WorkspaceBusy(WorkspaceError):
    """Another process holds the workspace lock and did not let go in time."""


def _forget_in_child() -> None:
    """A forked child (a DataLoader's decoder worker) closes its copies of the held locks' fds: the
    flock belongs to the open file, so a copy left open in an orphaned worker would keep a killed
    run's workspace locked until that worker exits. Closing a copy never releases the parent's lock."""
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def holder_text(info: dict) -> str:
    if not info:
        return "another process (it has not written its name yet)"
    return f"pid {info.get('pid')} on {info.get('host', '?')} (`{info.get('command', '?')}`, stage {info.get('stage', '?')}, since {info.get('since', '?')})"


def read_holder(path: Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def pid_alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _default_timeout() -> float | None:
    value = os.environ.get(TIMEOUT_ENV, "").strip()
    return float(value) if value else None


def _record(fd: int, stage: str) -> None:
    info = {
        "pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python",
        "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"), 0)


def _acquire(path: Path, stage: str, timeout: float | None, say: Callable[[str], None]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = holder_text(read_holder(path))
            if deadline is not None and time.monotonic() >= deadline:
                os.close(fd)
                raise WorkspaceBusy(
                    f"workspace {path.parent} is busy: {holder} is writing to it. Wait for it to finish "
                    f"(or stop it), then run this again; `{TIMEOUT_ENV}` sets how long to wait."
                ) from None
            if not announced:
                say(f"workspace {path.parent} is busy: {holder}; waiting for it to finish (Ctrl+C stops).")
                announced = True
            time.sleep(POLL_SECONDS)
    previous = read_holder(path)
    if previous and previous.get("pid") != os.getpid():
        # A record left behind: its process died holding the lock (the kernel released it).
        state = "no longer running" if not pid_alive(previous.get("pid")) else "gone from this lock"
        say(f"took over the workspace lock left by {holder_text(previous)}, {state}.")
    _record(fd, stage)
    return fd


@contextlib.contextmanager
def hold(path: Path, stage: str, timeout: float | None = None, say: Callable[[str], None] = _say) -> Iterator[None]:
    """Hold the lock at ``path`` for the block; re-entrant within this process."""
    path = Path(path)
    timeout = _default_timeout() if timeout is None else timeout
    with _guard:
        held = _held.get(path)
        if held is not None:
            _held[path] = (held[0], held[1] + 1)
    if held is None:
        fd = _acquire(path, stage, timeout, say)
        with _guard:
            _held[path] = (fd, 1)
    try:
        yield
    finally:
        with _guard:
            fd, depth = _held[path]
            if depth > 1:
                _held[path] = (fd, depth - 1)
            else:
                del _held[path]
        if depth == 1:
            os.ftruncate(fd, 0)  # released cleanly: no record left to mistake for a dead holder
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
