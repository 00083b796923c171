"""`models download` checks every fetched file against the hub's listing (issue 23.5).

Through the loopback hub and the real huggingface_hub client: a hub that serves other bytes
(same length) than its listing names gets the file deleted and the model failed with the reason;
a file changed on disk after a good download is caught on the next run, deleted and fetched again.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer

from alienstay.testing.tiny_models import build_tiny_clip

MODEL = "openai/clip-vit-base-patch32"  # the cpu preset's tagger
WEIGHTS = "model.safetensors"

SCRIPT = """
import json, sys
from pathlib import Path
from alienstay.runtime import model_store
patterns = model_store.plan_download("cpu")[sys.argv[1]][1]
try:
    model_store.fetch(sys.argv[1], patterns, Path(sys.argv[2]))
    print(json.dumps({"error": ""}))
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
"""


def fetch(hub: HubServer, target: Path, home: Path) -> str:
    """model_store.fetch in a fresh process (huggingface_hub reads HF_ENDPOINT on import): its error or ''."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "ALIENSTAY_MODELS_DIR"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", SCRIPT, MODEL, str(target)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["error"]


def flip(path: Path) -> None:
    """Other bytes, same length and same mtime: what a size check alone lets through.

    The mtime is kept as bit rot keeps it: huggingface_hub re-downloads a local_dir file whose
    mtime is over a second past its download record, so a flip made later under load would be
    repaired by the download before the check could see it.
    """
    times = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("hub") / "clip")


def test_a_file_whose_sha256_differs_from_the_listing_is_deleted_and_the_model_fails(repo, tmp_path) -> None:
    target = tmp_path / "models"
    good = hashlib.sha256((repo / WEIGHTS).read_bytes()).hexdigest()
    with HubServer({MODEL: repo}) as hub:
        listing = hub.tree(MODEL)
        hub.tree = lambda name: listing  # the listing of the true file...
        served = tmp_path / "served"
        served.mkdir()
        for path in repo.iterdir():
            (served / path.name).write_bytes(path.read_bytes())
        flip(served / WEIGHTS)
        hub.repos[MODEL] = served  # ...and other bytes of the same length on the wire
        error = fetch(hub, target, tmp_path / "hf")
        assert "ChecksumMismatch" in error and WEIGHTS in error and "sha256" in error and "deleted" in error
        assert not (target / MODEL / WEIGHTS).exists()

        hub.repos[MODEL] = repo  # a correct hub: the rerun fetches it, whole
        assert fetch(hub, target, tmp_path / "hf") == ""
    assert hashlib.sha256((target / MODEL / WEIGHTS).read_bytes()).hexdigest() == good


def test_a_file_changed_after_a_good_download_is_caught_by_the_next_run(repo, tmp_path) -> None:
    target = tmp_path / "models"
    with HubServer({MODEL: repo}) as hub:
        assert fetch(hub, target, tmp_path / "hf") == ""
        fetched = dict(hub.fetched)
        flip(target / MODEL / WEIGHTS)
        error = fetch(hub, target, tmp_path / "hf")  # the download skips it (its record matches): the check does not
        assert "ChecksumMismatch" in error and WEIGHTS in error
        assert not (target / MODEL / WEIGHTS).exists()
        assert fetch(hub, target, tmp_path / "hf") == ""
        assert hub.fetched[(MODEL, WEIGHTS)] == fetched[(MODEL, WEIGHTS)] + 1
    assert (target / MODEL / WEIGHTS).read_bytes() == (repo / WEIGHTS).read_bytes()


def test_small_files_are_checked_by_their_git_blob_id(repo, tmp_path) -> None:
    from huggingface_hub.hf_api import RepoFile

    from alienstay.runtime.model_store import mismatch

    hub = HubServer({MODEL: repo})  # not started: only its listing is read
    listed = {e["path"]: RepoFile(**e) for e in hub.tree(MODEL) if e["type"] == "file"}
    copy = tmp_path / "config.json"
    copy.write_bytes((repo / "config.json").read_bytes())
    assert mismatch(copy, listed["config.json"]) is None
    flip(copy)
    assert "git blob" in mismatch(copy, listed["config.json"])
    copy.write_bytes(copy.read_bytes() + b" ")
    assert "bytes, the hub lists" in mismatch(copy, listed["config.json"])
    weights = tmp_path / WEIGHTS
    weights.write_bytes((repo / WEIGHTS).read_bytes())
    assert mismatch(weights, listed[WEIGHTS]) is None
    flip(weights)
    assert "sha256" in mismatch(weights, listed[WEIGHTS])
