"""No HTTP answer names a path of the serving machine (issue 23.10): every route is asked in the
states that used to leak one (no embeddings: 409; a stale index; a FAISS file that cannot be read;
a damaged ids.parquet) and every answer is scanned for the workspace's folder and any /tmp path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from generations import plant

from alienstay.similarity import index as ix
from alienstay.web.app import create_app

ABSOLUTE = re.compile(r"(?<![\w.])/(?:tmp|home|root|usr|project|work|var)/")


def routes(image_id: str) -> list[str]:
    return ["/", "/?q=a+pool+at+night", f"/photo/{image_id}", f"/photo/{image_id}?view=staff", "/edits",
            "/api/tags", "/api/search?words=pool", "/api/search?text=a+pool", "/api/search?text=a+pool&words=zzzz",
            f"/api/images/{image_id}", "/api/edits", f"/api/similar/{image_id}", "/openapi.json", "/docs",
            "/api/similar/nobody", "/media/photo/nobody"]


def states(root: Path, ids: list[str], vectors_fingerprint) -> dict[str, callable]:
    folder = root / "index" / "vectors"

    def no_embeddings() -> None:
        for name in ("embeddings.npy", "ids.parquet", "meta.json"):
            next((root / "tagged").glob(f"g*/{name}")).unlink()

    def stale_index() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").write_text(json.dumps({"backend": ix.FAISS_IVF, "fingerprint": "older"}))

    def unreadable_faiss() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "faiss.index").write_bytes(b"garbage" * 20)
        (folder / "meta.json").write_text(json.dumps({"backend": ix.FAISS_IVF, "fingerprint": vectors_fingerprint()}))

    def missing_faiss() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").write_text(json.dumps({"backend": ix.FAISS_IVF, "fingerprint": vectors_fingerprint()}))

    def damaged_ids() -> None:
        next((root / "tagged").glob("g*/ids.parquet")).write_bytes(b"not parquet")

    return {"no embeddings": no_embeddings, "stale index": stale_index, "unreadable faiss": unreadable_faiss,
            "missing faiss": missing_faiss, "damaged ids": damaged_ids}


@pytest.mark.parametrize("state", ["no embeddings", "stale index", "unreadable faiss", "missing faiss", "damaged ids"])
def test_no_answer_names_a_path(tmp_path: Path, state: str) -> None:
    from alienstay.workspace.embeddings import Vectors

    ws, ids, _ = plant(tmp_path / "ws", 30, 8, model_id=str(tmp_path / "weights" / "my-model"))  # a local folder
    fingerprint = lambda: Vectors.open(ws).fingerprint  # noqa: E731
    states(ws.root, ids, fingerprint)[state]()
    client = TestClient(create_app(ws.root))
    seen = {}
    for url in routes(ids[0]):
        response = client.get(url)
        assert response.status_code < 500 or response.status_code == 503, (url, response.status_code, response.text[:300])
        seen[url] = response.status_code
        text = response.text
        assert str(ws.root) not in text and str(tmp_path) not in text, (state, url, text[:500])
        assert not ABSOLUTE.search(text), (state, url, ABSOLUTE.search(text), text[max(0, ABSOLUTE.search(text).start() - 200):][:400])
    similar = client.get(f"/api/similar/{ids[0]}")
    if state == "no embeddings":
        assert similar.status_code == 409 and "alienstay tag" in similar.json()["detail"]
    elif state == "damaged ids":
        assert similar.status_code == 503 and "ids.parquet" in similar.json()["detail"]
    else:  # exact search answers, and says why
        assert similar.status_code == 200 and "exact search" in similar.json()["note"]
        assert similar.json()["model_id"] == "my-model"
