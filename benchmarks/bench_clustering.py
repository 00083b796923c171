"""Clustering at 100,000 photos: time and peak memory per method, as ratios where they matter.

Synthetic per-facet tag probabilities of the packaged vocabulary's width, drawn around 20
hidden profiles (`alienstay.clustering.planted_tag_vectors`). Figures:
- k-means (what `alienstay cluster` runs) vs MiniBatchKMeans at the same k: seconds per 100k,
  the speed ratio, and the ARI of each against the planted groups;
- k-means' achieved GFLOP/s against this machine's own matmul rate;
- the silhouette scan over k (2..30: k-means on a 20,000-photo sample, each silhouette on
  5,000), against the same scan fitting every photo (measured over a few k, then scaled to
  the 29 k of the range), and what one full O(n^2) silhouette would cost, extrapolated;
- HDBSCAN and agglomerative on subsamples (their O(n^2) work is why the stage skips them above
  20,000 photos), with the fitted growth exponent and the extrapolated time at 100k.
Peak memory: the Python-heap peak of each step (tracemalloc; numpy buffers included) and the
process's peak RSS at the end.

`python -m benchmarks clustering`; `BENCH_CLUSTER_N` changes the 100,000.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import adjusted_rand_score

from alienstay import clustering
from benchmarks.common import matmul_gflops, peak_rss_mb, save

N = int(os.environ.get("BENCH_CLUSTER_N", 100_000))
GROUPS = 20
SUBSAMPLES = (1_000, 2_000, 4_000)


def vocabulary_shape() -> tuple[int, int]:
    """(facets, words a facet): the packaged vocabulary's facets, its words spread evenly (70 -> 11 x 6 = 66)."""
    from alienstay.vocabulary.words import load_vocabulary

    vocabulary = load_vocabulary()
    facets = len(vocabulary.facets)
    return facets, round(len(vocabulary.words) / facets)


def measured(step: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB allocated during the step)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def growth(sizes: tuple[int, ...], seconds: list[float]) -> float:
    """The exponent b of seconds ~ n^b, fitted on log-log."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    facets, per_facet = vocabulary_shape()
    features, truth = clustering.planted_tag_vectors(N, GROUPS, facets, per_facet, concentration=5.0, seed=0)
    per_100k = 100_000 / N
    figures: dict[str, Any] = {"photos": N, "width (words)": features.shape[1], "planted groups": GROUPS}

    labels, seconds, peak = measured(lambda: clustering.kmeans_labels(features, GROUPS, seed=0))
    figures["kmeans k=20: seconds per 100k"] = seconds * per_100k
    figures["kmeans k=20: peak MiB"] = peak
    figures["kmeans k=20: ARI vs planted"] = adjusted_rand_score(truth, labels)
    kmeans_seconds = seconds

    minibatch = MiniBatchKMeans(GROUPS, n_init=clustering.KMEANS_INITS, batch_size=4096, random_state=0)
    labels, seconds, peak = measured(lambda: minibatch.fit_predict(features))
    figures["minibatch k=20: seconds per 100k"] = seconds * per_100k
    figures["minibatch k=20: peak MiB"] = peak
    figures["minibatch k=20: ARI vs planted"] = adjusted_rand_score(truth, labels)
    figures["speed ratio kmeans / minibatch"] = kmeans_seconds / seconds

    # k-means' useful work: n * k * d multiply-adds an iteration (the distance matmul).
    from sklearn.cluster import KMeans

    single = KMeans(GROUPS, n_init=1, random_state=0)
    _, seconds, _ = measured(lambda: single.fit(features))
    flops = 2 * N * GROUPS * features.shape[1] * single.n_iter_
    figures["kmeans achieved GFLOP/s"] = flops / seconds / 1e9
    figures["machine matmul GFLOP/s"] = matmul_gflops()
    figures["kmeans share of matmul rate"] = figures["kmeans achieved GFLOP/s"] / figures["machine matmul GFLOP/s"]

    (best, scores), seconds, peak = measured(lambda: clustering.choose_k_by_silhouette(features, 2, 30, seed=0))
    figures["silhouette scan k=2..30: seconds per 100k"] = seconds * per_100k
    figures["silhouette scan: peak MiB"] = peak
    figures["silhouette scan: chosen k (planted 20)"] = best
    probe = (18, 20, 22)  # the same scan fitting every photo, on a few k only (29 would take minutes)
    _, seconds, _ = measured(lambda: clustering.choose_k_by_silhouette(features, probe[0], probe[-1], fit_sample=N))
    full_scan = seconds / len(probe) * 29 * per_100k
    figures["scan on every photo k=2..30: seconds per 100k (from 3 k)"] = full_scan
    figures["speed ratio scan every photo / sampled scan"] = full_scan / figures["silhouette scan k=2..30: seconds per 100k"]
    sample = clustering.SILHOUETTE_SAMPLE
    _, seconds, _ = measured(lambda: clustering.silhouette(features, truth, seed=0, sample_size=sample))
    figures[f"one silhouette on {sample} photos: seconds"] = seconds
    figures["one full silhouette at 100k: seconds (extrapolated n^2)"] = seconds * (100_000 / sample) ** 2

    for name, method in [
        ("hdbscan", lambda x: clustering.hdbscan_labels(x)),
        ("agglomerative", lambda x: clustering.agglomerative_labels(x, GROUPS)),
    ]:
        times = []
        for size in SUBSAMPLES:
            _, seconds, peak = measured(lambda: method(features[:size]))
            times.append(seconds)
            figures[f"{name} on {size}: seconds"] = seconds
        figures[f"{name} on {SUBSAMPLES[-1]}: peak MiB"] = peak
        exponent = growth(SUBSAMPLES, times)
        figures[f"{name}: growth exponent"] = exponent
        figures[f"{name} at 100k: seconds (extrapolated)"] = times[-1] * (100_000 / SUBSAMPLES[-1]) ** exponent
        figures[f"{name} at 100k / kmeans at 100k"] = figures[f"{name} at 100k: seconds (extrapolated)"] / (
            kmeans_seconds * per_100k
        )

    figures["process peak RSS MiB"] = peak_rss_mb()
    save("clustering", figures)


if __name__ == "__main__":
    main()
