"""How right the offline tagger's selected tags are on labelled real photos, and what it costs.

For each packaged ImageNet model (EfficientNet-Lite0/1/2) the labelled photos of
src/alienstay/data/sample_labels.yaml are classified once; then for each ConSE top-T and logit
scale, every facet gets the lowest floor at which the selected tags reach the target precision
(at that floor and every higher one, with at least MIN_SUPPORT labelled selections). Absence
words are never selected (ConSE sees objects, not what is missing). Printed: the best settings
per model, its per-facet floors, precision and coverage, the classifier's speed, and the table
of the shipped evidence (src/alienstay/encoders/offline_evidence.py) that docs/tagging.md shows.

    .venv/bin/python -m benchmarks offline_quality
"""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np
import torch

from alienstay.encoders.offline_evidence import UNSEEN_FACETS
from alienstay.vocabulary.evidence import SEES_EVERYTHING
from benchmarks.common import save

TARGET = 0.95  # share of selected tags (on labelled facets) not labelled wrong
MIN_SUPPORT = 3  # fewer labelled selections than this prove nothing: the facet stays silent
TOP_TS = (1, 3, 5, 10, 20)
SCALES = (15.0, 30.0, 50.0)
FLOORS = tuple(round(f, 2) for f in np.arange(0.2, 0.96, 0.05))
SPEED_BATCH = 16
ROUNDS = 5


def conse_probabilities(class_probs, class_embeddings, word_embeddings, top_t, scale, vocab) -> np.ndarray:
    """The tag stage's per-facet probabilities from cached class probabilities (no classifier rerun)."""
    from alienstay.encoders.offline import conse_embeddings
    from alienstay.tagging import facet_probabilities

    images = conse_embeddings(torch.from_numpy(class_probs), class_embeddings, top_t).numpy()
    return facet_probabilities(images @ word_embeddings.T, vocab, scale)


def choose_floor(probs, photos, vocab, facet: str) -> tuple[float, object] | None:
    """The lowest floor whose selections, and those of every higher floor, reach TARGET precision."""
    from alienstay.labelled.samples import score_selection
    from alienstay.vocabulary.evidence import Evidence, FacetRule, select_tags

    top_k = vocab.facets[facet].top_k
    found = None
    for floor in reversed(FLOORS):
        evidence = Evidence(frozenset({facet}), sees_absences=False, rules={facet: FacetRule(top_k, floor)})
        row = score_selection(photos, select_tags(probs, vocab, evidence), vocab).set_index("facet").loc[facet]
        if row["selected"] and row["precision"] < TARGET:
            break
        if row["selected"] >= MIN_SUPPORT:
            found = (floor, row)
    return found


def top_word_share(probs, vocab) -> dict[str, float]:
    """Per facet: share of photos whose most probable word is the facet's most common top word."""
    shares = {}
    for facet, part in vocab.facet_slices().items():
        top = probs[:, part].argmax(axis=1)
        shares[facet] = float(np.bincount(top).max() / len(top))
    return shares


def best_settings(class_probs, class_embeddings, word_embeddings, photos, vocab) -> dict:
    """Over top-T and scale: the setting whose floors give the most correct selections at TARGET."""
    best = None
    for top_t, scale in itertools.product(TOP_TS, SCALES):
        probs = conse_probabilities(class_probs, class_embeddings, word_embeddings, top_t, scale, vocab)
        floors = {f: choose_floor(probs, photos, vocab, f) for f in vocab.facets if f not in UNSEEN_FACETS}
        floors = {f: found for f, found in floors.items() if found}
        correct = sum(row["selected"] - row["wrong"] for _, row in floors.values())
        if best is None or correct > best["correct"]:
            best = {"top_t": top_t, "scale": scale, "correct": correct, "floors": floors}
    return best


def classifier_speeds(encoders: dict) -> dict[str, float]:
    """Images/s of each encoder's classifier runtime at its own resolution, timed in interleaved
    rounds (median of ROUNDS), so a busy neighbour on a shared machine slows every model alike."""
    batches = {}
    for name, encoder in encoders.items():
        size = encoder.image_model.image_size
        batches[name] = torch.rand(SPEED_BATCH, 3, size, size) * 2 - 1
        encoder.class_probabilities(batches[name])  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(ROUNDS):
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.class_probabilities(batches[name])
            seconds[name].append(time.perf_counter() - start)
    return {name: SPEED_BATCH / statistics.median(times) for name, times in seconds.items()}


def gflops_per_image(encoder) -> float:
    """FLOPs of one image at the model's resolution as PyTorch's counter sees them (noise-free)."""
    from torch.utils.flop_counter import FlopCounterMode

    from alienstay.encoders.offline import load_imagenet_classifier

    model = load_imagenet_classifier(encoder.image_model.name)
    size = encoder.image_model.image_size
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def shipped_table(encoder, photos, vocab, evidence=None):
    """Per-facet precision and coverage of the encoder's selection (its own evidence unless given)."""
    from alienstay.labelled.samples import score_selection, tagger_probabilities
    from alienstay.vocabulary.evidence import select_tags

    evidence = encoder.evidence if evidence is None else evidence
    probs = tagger_probabilities(encoder, photos, vocab)
    table = score_selection(photos, select_tags(probs, vocab, evidence), vocab)
    table.insert(1, "judged", [f == "all" or evidence.judges(f) for f in table["facet"]])
    table.insert(2, "floor", [evidence.rule(vocab.facets[f]).min_prob if f in vocab.facets else np.nan
                              for f in table["facet"]])
    return table


def main() -> None:
    from alienstay.encoders.offline import (
        IMAGE_MODEL,
        IMAGE_MODELS,
        load_offline_encoder,
    )
    from alienstay.labelled.samples import available, load_labels, open_photo
    from alienstay.tagging import word_embeddings
    from alienstay.vocabulary.words import load_vocabulary

    vocab = load_vocabulary()
    photos = available(load_labels(vocab))
    figures: dict = {"photos": len(photos), "target_precision": TARGET, "min_support": MIN_SUPPORT}
    encoders: dict = {}
    print(f"{len(photos)} labelled photos; target precision {TARGET:.0%}, at least {MIN_SUPPORT} labelled selections")
    for name, spec in IMAGE_MODELS.items():
        try:
            __import__(spec.module)
        except ImportError:
            print(f"\n{name}: not installed (pip install {spec.distribution}); skipped")
            continue
        encoder = load_offline_encoder(image_model=name)
        transform = encoder.image_transform()
        pixels = torch.stack([transform(open_photo(photo)) for photo in photos])
        class_probs = encoder.class_probabilities(pixels).numpy()
        words = word_embeddings(encoder, vocab)
        best = best_settings(class_probs, encoder.class_embeddings, words, photos, vocab)
        encoders[name] = encoder
        selected = sum(int(row["selected"]) for _, row in best["floors"].values())
        print(f"\n{name} ({encoder.backend}): best top-T {best['top_t']}, scale {best['scale']:g}: "
              f"{best['correct']} of {selected} selections not wrong")
        for facet, (floor, row) in best["floors"].items():
            print(f"    {facet:<8} floor {floor:.2f}  precision {row['precision']:.2f}  coverage {row['coverage']:.2f}"
                  f"  ({int(row['selected'])} selected on {int(row['labelled'])} labelled photos)")
        figures[f"{name}_best_top_t"] = best["top_t"]
        figures[f"{name}_best_scale"] = best["scale"]
        figures[f"{name}_correct_selections"] = best["correct"]
        figures[f"{name}_selections"] = selected
        figures[f"{name}_floors"] = {f: floor for f, (floor, _) in best["floors"].items()}
        default_probs = conse_probabilities(class_probs, encoder.class_embeddings, words, encoder.top_t,
                                            encoder.logit_scale, vocab)
        shares = top_word_share(default_probs, vocab)
        print("    top-word share (one word for every photo = 1.00): "
              + ", ".join(f"{f} {shares[f]:.2f}" for f in vocab.facets))
        figures[f"{name}_top_word_share"] = shares
        if name == IMAGE_MODEL:
            table = shipped_table(encoder, photos, vocab)
            print(f"\nshipped offline tagger ({encoder.model_id}, evidence {encoder.evidence.source}):")
            print(table.to_markdown(index=False, floatfmt=".2f"))
            figures["shipped_precision"] = float(table.set_index("facet").loc["all", "precision"])
            before = shipped_table(encoder, photos, vocab, SEES_EVERYTHING).set_index("facet").loc["all"]
            print(f"the same model judging every facet at the vocabulary's floors, absences allowed (before issue 12): "
                  f"precision {before['precision']:.2f}, {int(before['wrong'])} wrong of {int(before['selected'])}")
            figures["judge_everything_precision"] = float(before["precision"])
            figures["shipped_table"] = table.to_dict(orient="records")
    speeds = classifier_speeds(encoders)
    reference = speeds.get(IMAGE_MODEL) or next(iter(speeds.values()))
    print(f"\nclassifier speed, batch {SPEED_BATCH}, median of {ROUNDS} interleaved rounds:")
    for name, rate in speeds.items():
        flops = gflops_per_image(encoders[name])
        print(f"    {name}: {rate:.1f} images/s ({rate / reference:.2f}x {IMAGE_MODEL}), {flops:.2f} GFLOP an image")
        figures[f"{name}_images_per_s"] = rate
        figures[f"{name}_speed_vs_default"] = rate / reference
        figures[f"{name}_gflops_per_image"] = flops
    save("offline_quality", figures)


if __name__ == "__main__":
    main()
