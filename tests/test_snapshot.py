"""One snapshot a request (issue 23.1): answers never mix two tag generations.

The same tag results are republished again and again, rows in another order each time, through
the workspace's publish step, while 16 clients ask for searches by meaning, "more like this"
and word searches: every answer must equal the first answer to the same question.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from generations import plant, publish

from alienstay.similarity.query import cached_encoder
from alienstay.testing.tiny_models import build_tiny_clip
from alienstay.web.app import create_app

CLIENTS = 16
ROUNDS = 10  # questions a client asks: 160 answers in all, as in the attack


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def questions(ids: list[str]) -> list[tuple[str, dict]]:
    similar = [(f"/api/similar/{i}", {"k": 10}) for i in ids[:6]]
    texts = [("/api/search", {"text": t, "per_page": 10}) for t in ("a photo of a pool", "a room with a bed", "night")]
    return similar + texts + [("/api/search", {"words": "pool", "per_page": 20}), ("/api/search", {"words": "pool,night"})]


def answer(client: TestClient, path: str, params: dict) -> object:
    response = client.get(path, params=params)
    assert response.status_code == 200, (path, params, response.status_code, response.text[:300])
    body = response.json()
    rows = body["results"]
    return [(r["image_id"], r["score"], tuple((c["facet"], c["tag"]) for c in r["tags"])) for r in rows], body.get("total")


def test_every_answer_under_republishing_equals_the_first(tmp_path: Path, tiny_clip: Path) -> None:
    dim = int(cached_encoder(str(tiny_clip)).encode_texts(["x"]).shape[-1])
    ws, ids, (matrix, probs) = plant(tmp_path / "ws", 400, dim, model_id=str(tiny_clip))
    app = create_app(ws.root)
    asked = questions(ids)
    first = {i: answer(TestClient(app), path, params) for i, (path, params) in enumerate(asked)}
    assert all(first[i][0] for i in first)  # every question has results to compare

    stop, failures, republished = threading.Event(), [], [0]

    def republish() -> None:
        rng = np.random.default_rng(1)
        while not stop.is_set():
            publish(ws, ids, matrix, probs, rng.permutation(len(ids)), model_id=str(tiny_clip))
            republished[0] += 1
            stop.wait(0.05)  # a republish every ~0.1 s: many during the answers, CPU left to answer them

    def client(seed: int) -> None:
        local, rng = TestClient(app), np.random.default_rng(seed)
        for _ in range(ROUNDS):
            q = int(rng.integers(len(asked)))
            try:
                got = answer(local, *asked[q])
            except AssertionError as error:
                failures.append(str(error))
                continue
            if got != first[q]:
                failures.append(f"{asked[q]}: {got[0][:3]} != {first[q][0][:3]}")

    writer = threading.Thread(target=republish)
    writer.start()
    try:
        clients = [threading.Thread(target=client, args=(s,)) for s in range(CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
    finally:
        stop.set()
        writer.join()
    assert republished[0] >= 3, "the answers must have been asked while the set was republished"
    assert not failures, f"{len(failures)} of {CLIENTS * ROUNDS} answers differ from the first: {failures[:3]}"


def test_a_real_tag_run_adding_a_photo_under_a_serving_gallery_never_answers_500(
    tmp_path: Path, tiny_clip: Path, samples_dir: Path
) -> None:
    import os
    import shutil
    import subprocess
    import sys

    from alienstay.testing.tiny_models import prepared_workspace

    photos = sorted(samples_dir.glob("*.jpg"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in photos[:-1]:
        shutil.copy(photo, folder / photo.name)
    ws = prepared_workspace(tmp_path / "ws", folder)

    def tag() -> subprocess.Popen:  # the real command, in its own process, as a user runs it
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        return subprocess.Popen([sys.executable, "-m", "alienstay.cli.commands", "tag", "--model", str(tiny_clip), "--workers", "0",
                                 "--workspace", str(ws.root)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    first = tag()
    assert first.wait(timeout=300) == 0, first.stdout.read()
    app = create_app(ws.root)
    client = TestClient(app)
    known = client.app.state.gallery.current.embeddings.vectors.ids.to_pylist()
    shutil.copy(photos[-1], folder / photos[-1].name)  # one more photo, ingested and prepared
    prepared_workspace(ws.root, folder)

    statuses: list[tuple[str, int]] = []
    stop = threading.Event()

    def ask(seed: int) -> None:
        local, rng = TestClient(app), np.random.default_rng(seed)
        while not stop.is_set():
            image_id = known[int(rng.integers(len(known)))]
            for url, params in ((f"/api/similar/{image_id}", {"k": 3}), ("/api/search", {"text": "a bed", "per_page": 3}),
                                (f"/photo/{image_id}", {}), ("/", {"q": "a room with a bed"})):
                statuses.append((url, local.get(url, params=params).status_code))

    second = tag()
    clients = [threading.Thread(target=ask, args=(s,)) for s in range(4)]
    for t in clients:
        t.start()
    try:
        assert second.wait(timeout=300) == 0, second.stdout.read()
    finally:
        stop.set()
        for t in clients:
            t.join()
    assert statuses and not [s for s in statuses if s[1] >= 500], [s for s in statuses if s[1] >= 500][:5]
    added = Path(photos[-1].name)
    after = client.app.state.gallery.refresh().embeddings.vectors.ids.to_pylist()
    assert len(after) == len(known) + 1 and any(added.stem in i for i in after)
    new_id = next(i for i in after if added.stem in i)
    assert client.get(f"/api/similar/{new_id}", params={"k": 2}).status_code == 200
