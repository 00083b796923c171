"""Synthetic gallery workspaces at the dataset's scale: the real vocabulary, realistic probabilities.

Every photo gets a CLIP-like cosine score per word (a word's own popularity plus the photo's
noise, about 0.20 +- 0.03 as CLIP ViT-B/32 gives on hotel photos), turned into probabilities
by the tag stage's own softmax per facet (logit scale 100) and selected by the tag stage's own
rule (`select_tags`, the vocabulary's top_k and min_prob). Rows are written photo by photo in
vocabulary order, as the tag stage consolidates them, with dictionary-encoded strings.

    python -m benchmarks.gallery_data 100000 runs/bench/gallery/ws-100000   # the tables
    python -m benchmarks.gallery_data index runs/bench/gallery/ws-100000    # the word index
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from alienstay.tagging import select_tags
from alienstay.vocabulary.words import load_vocabulary
from alienstay.wordindex.build import (
    build as build_word_index,  # a build every time, as after a new tag run
)
from alienstay.wordindex.lookup import WordIndex
from alienstay.workspace.layout import Workspace

VERSION = 1
CHUNK = 50_000
PHOTOS_PER_HOTEL = 20  # Hotels-50K: about 20 photos a hotel
CLUSTERS = 12
LOGIT_SCALE = 100.0


def softmax_per_facet(scores: np.ndarray, slices: list[slice]) -> np.ndarray:
    probs = np.empty_like(scores)
    for part in slices:
        logits = scores[:, part] * LOGIT_SCALE
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        probs[:, part] = e / e.sum(axis=1, keepdims=True)
    return probs


def image_ids(start: int, stop: int) -> list[str]:
    return [f"hotel{i // PHOTOS_PER_HOTEL:06d}/photo{i:07d}.jpg" for i in range(start, stop)]


def dictionary_column(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), pa.array(values, pa.string()))


def write_tags(ws: Workspace, photos: int, rng: np.random.Generator) -> None:
    vocab = load_vocabulary()
    words = [(w.facet, w.tag) for w in vocab.words]
    facets = list(vocab.facets)
    facet_code = np.array([facets.index(f) for f, _ in words], np.int32)
    slices = list(vocab.facet_slices().values())
    popularity = rng.normal(0.0, 0.015, len(words)).astype(np.float32)  # some words are common, some rare
    schema = pa.schema([("image_id", pa.dictionary(pa.int32(), pa.string())), ("facet", pa.dictionary(pa.int32(), pa.string())),
                        ("tag", pa.dictionary(pa.int32(), pa.string())), ("score", pa.float32()), ("prob", pa.float32()),
                        ("selected", pa.bool_()), ("model_id", pa.dictionary(pa.int32(), pa.string())),
                        ("vocab_hash", pa.dictionary(pa.int32(), pa.string()))])
    with pq.ParquetWriter(ws.tags_path, schema) as writer:
        for start in range(0, photos, CHUNK):
            n = min(CHUNK, photos - start)
            scores = (0.20 + popularity + rng.normal(0.0, 0.03, (n, len(words)))).astype(np.float32)
            probs = softmax_per_facet(scores, slices)
            selected = select_tags(probs, vocab)
            rows = n * len(words)
            constant = np.zeros(rows, np.int32)
            writer.write_table(pa.table({
                "image_id": dictionary_column(np.repeat(np.arange(n, dtype=np.int32), len(words)), image_ids(start, start + n)),
                "facet": dictionary_column(np.tile(facet_code, n), facets),
                "tag": dictionary_column(np.tile(np.arange(len(words), dtype=np.int32), n), [t for _, t in words]),
                "score": scores.ravel(), "prob": probs.ravel(), "selected": selected.ravel(),
                "model_id": dictionary_column(constant, ["synthetic"]), "vocab_hash": dictionary_column(constant, [vocab.hash]),
            }, schema=schema), row_group_size=1 << 20)


def write_catalog(ws: Workspace, photos: int, rng: np.random.Generator) -> None:
    files = []
    for i in range(8):  # a few small JPEGs every photo row points at: the pages need a file, not its pixels
        path = ws.root / "prepared" / f"p{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), tuple(int(c) for c in rng.integers(0, 255, 3))).save(path, format="JPEG")
        files.append(f"prepared/p{i}.jpg")
    ids = image_ids(0, photos)
    hotels = [i.split("/")[0] for i in ids]
    table = pa.table({
        "image_id": ids, "source": dictionary_column(np.zeros(photos, np.int32), ["hotels50k"]),
        "path": [f"images/{i}" for i in ids], "prepared_path": dictionary_column(np.arange(photos, dtype=np.int32) % 8, files),
        "status": dictionary_column(np.zeros(photos, np.int32), ["ok"]), "hotel_id": hotels,
        "chain_id": [str(int(h[5:]) % 93 - 1) for h in hotels[:: PHOTOS_PER_HOTEL] for _ in range(PHOTOS_PER_HOTEL)][:photos],
        "width": np.full(photos, 640, np.int32), "height": np.full(photos, 480, np.int32),
    })
    pq.write_table(table, ws.catalog_path)
    cluster = rng.integers(0, CLUSTERS, photos)
    centres = rng.normal(0, 5, (CLUSTERS, 2))
    xy = centres[cluster] + rng.normal(0, 1, (photos, 2))
    pq.write_table(pa.table({
        "image_id": ids, "cluster": cluster, "method": dictionary_column(np.zeros(photos, np.int32), ["kmeans"]),
        "k": np.full(photos, CLUSTERS), "features": dictionary_column(np.zeros(photos, np.int32), ["tags"]),
        "name": dictionary_column(cluster.astype(np.int32), [f"cluster {c}" for c in range(CLUSTERS)]),
        "x": xy[:, 0], "y": xy[:, 1],
    }), ws.clusters_path)
    edits = []
    for n, image_id in enumerate(ids[:200]):
        verdict = ["faithful", "too_strong", "not_applied", "faithful"][n % 4]
        edits.append({"edit_id": f"e{n}", "image_id": image_id, "recipe": "time_of_day", "parameter": "time",
                      "value": ["dusk", "night"][n % 2], "method": "classical", "output_path": files[n % 8],
                      "structure_ssim": 0.8, "verdict": verdict, "verdict_reason": "" if verdict == "faithful" else "synthetic"})
    pq.write_table(pa.Table.from_pylist(edits), ws.edits_path)


def generate(photos: int, root: Path, seed: int = 0) -> dict:
    """The workspace at `root`, kept when already generated at this size and version."""
    marker = root / "generated.json"
    key = [VERSION, photos, seed]
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return json.loads(marker.read_text())
    ws = Workspace(root).ensure()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    write_tags(ws, photos, rng)
    write_catalog(ws, photos, rng)
    figures = {"key": key, "generate_s": time.perf_counter() - start, "tag_rows": photos * len(load_vocabulary().words),
               "tags_parquet_mb": ws.tags_path.stat().st_size / 2**20}
    marker.write_text(json.dumps(figures))
    return figures


def build_index(root: Path) -> dict:
    """What the tag stage does after consolidating, timed; run in a process of its own for its peak memory."""
    import resource

    ws, record = Workspace(root), root / "index-build.json"
    if record.exists() and WordIndex.open(ws) is not None:  # built by this code from these tags already
        return json.loads(record.read_text())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    build_word_index(ws)
    figures = {"index_build_s": time.perf_counter() - start,
               "index_build_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_before_build_mb": before}
    record.write_text(json.dumps(figures))
    return figures


if __name__ == "__main__":
    if sys.argv[1] == "index":
        print(json.dumps(build_index(Path(sys.argv[2]))))
    else:
        print(json.dumps(generate(int(sys.argv[1]), Path(sys.argv[2]))))
