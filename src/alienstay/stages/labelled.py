"""Stages `evaluate` and `calibrate`: a tagger on labelled photos, as `tag` would tag them.

Both read a labels file (labeltable.py), run the encoder over its photos through the tag stage's
own mapper (same scores, probabilities, head and selection), then:
- evaluate writes report/evaluation.md, evaluation_words.csv and evaluation_facets.csv;
- calibrate fits a calibration profile (calibration.py) and writes it as YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from alienstay.labelled.calibration import calibrate
from alienstay.vocabulary.profile import CalibrationProfile
from alienstay.labelled.evaluation import cluster_agreement, facet_table, word_table
from alienstay.labelled.table import LabelTable
from alienstay.vocabulary.evidence import evidence_of
from alienstay.vocabulary.words import Vocabulary

BATCH = 16


@dataclass
class LabelledOutputs:
    """What the tag stage would store for each labelled photo, plus what calibration needs."""

    base_probs: np.ndarray  # (P, W) the encoder's own probabilities (no head)
    probs: np.ndarray  # (P, W) as tagged (the head's where the encoder has one)
    selected: np.ndarray  # (P, W) bool
    features: np.ndarray | None  # (P, F) class-head features (offline tagger only)


def run_encoder(encoder, labels: LabelTable, vocab: Vocabulary, batch_size: int = BATCH) -> LabelledOutputs:
    """Tag the labelled photos in memory, batch by batch, with the tag stage's mapper."""
    from alienstay.tagging import TagMapper, encoder_probabilities, word_embeddings

    mapper = TagMapper(encoder, vocab, word_embeddings(encoder, vocab))
    transform = encoder.image_transform()
    base, probs, selected, features = [], [], [], []
    for start in range(0, len(labels.paths), batch_size):
        pixels = torch.stack([transform(Image.open(p)) for p in labels.paths[start : start + batch_size]])
        batch = mapper([str(i) for i in range(len(pixels))], pixels)
        probs.append(batch.probs)
        selected.append(batch.selected)
        base.append(encoder_probabilities(batch.scores, vocab, encoder))
        if batch.features is not None:  # from the mapper's own classifier pass
            features.append(batch.features)
    return LabelledOutputs(np.vstack(base), np.vstack(probs), np.vstack(selected),
                           np.vstack(features) if features else None)


def scene_clusters(probs: np.ndarray, judged: np.ndarray, scenes: int, seed: int = 0) -> np.ndarray:
    """k-means (k = the number of scenes) over the probabilities of the words the tagger judges."""
    from sklearn.cluster import KMeans

    columns = probs[:, judged] if judged.any() else probs
    k = max(2, min(scenes, len(probs) - 1))
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(columns)


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _interval(row, name: str) -> str:
    return f"{_fmt(getattr(row, name))} [{_fmt(getattr(row, name + '_low'))}, {_fmt(getattr(row, name + '_high'))}]"


def evaluation_note(model: str, labels: LabelTable, facets: pd.DataFrame, words: pd.DataFrame,
                    agreement: dict, calibration: str) -> str:
    """report/evaluation.md: the figures with their intervals and counts, and how to read them."""
    lines = [
        "# Evaluation on labelled photos\n",
        f"Tagger **{model}**, selection by {calibration}; {len(labels.files)} labelled photos from "
        f"`{Path(labels.source).name}` (written by `alienstay evaluate`).\n",
        "Precision: selected words the labels call right or defensible / selected words the labels judge "
        "(in brackets the 95 % Wilson interval). Recall: photos where the word is right and selected / photos "
        "where it is right. Coverage: photos with at least one selected word the labels judge. **The counts are "
        "small**: read the intervals, not the point values. A word selected on no judged photo has no precision.\n",
        "## Per facet\n",
        "| facet | photos judged | selected | correct | precision [95 %] | recall [95 %] | coverage |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for row in facets.itertuples():
        lines.append(f"| {row.facet} | {row.judged_photos} | {row.selected} | {row.correct} | {_interval(row, 'precision')} "
                     f"| {_interval(row, 'recall')} | {_fmt(row.coverage)} ({row.covered_photos}/{row.judged_photos}) |")
    lines += ["", "## Per word (words selected at least once, or right on a labelled photo)\n",
              "| word | selected | correct | precision [95 %] | right photos | recall [95 %] |",
              "| --- | ---: | ---: | --- | ---: | --- |"]
    shown = words[(words["selected"] > 0) | (words["right_photos"] > 0)]
    for row in shown.itertuples():
        lines.append(f"| {row.facet}: {row.tag} | {row.selected} | {row.correct} | {_interval(row, 'precision')} "
                     f"| {row.right_photos} | {_interval(row, 'recall')} |")
    lines += ["", "## Clusters of tags against the scene labels\n"]
    if np.isfinite(agreement.get("ari", float("nan"))):
        lines.append(
            f"k-means with k = {agreement['clusters']} (the number of scenes) on the probabilities of the words "
            f"this tagger judges, {agreement['photos']} photos with a scene: ARI {_fmt(agreement['ari'])}, "
            f"NMI {_fmt(agreement['nmi'])}; shuffled clusters of the same sizes (chance): ARI "
            f"{_fmt(agreement['shuffled_ari'])}, NMI {_fmt(agreement['shuffled_nmi'])}.")
    else:
        lines.append(f"Not measured: the labels give fewer than two scenes for {agreement['photos']} photos.")
    return "\n".join(lines) + "\n"


@dataclass
class Evaluation:
    facets: pd.DataFrame
    words: pd.DataFrame
    agreement: dict
    note: Path


def run_evaluate(encoder, labels: LabelTable, vocab: Vocabulary, report_dir: Path, calibration: str) -> Evaluation:
    """Tag the labelled photos, score them, write report/evaluation.md and the two CSV tables."""
    outputs = run_encoder(encoder, labels, vocab)
    facets = facet_table(outputs.selected, labels, vocab)
    words = word_table(outputs.selected, labels, vocab)
    judged = evidence_of(encoder).may_select(vocab)
    scenes = int(labels.scene.dropna().nunique())
    clusters = scene_clusters(outputs.probs, judged, scenes) if scenes >= 2 else np.zeros(len(labels.files), int)
    agreement = cluster_agreement(clusters, labels.scene)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    facets.assign(model_id=encoder.model_id).to_csv(report_dir / "evaluation_facets.csv", index=False)
    words.to_csv(report_dir / "evaluation_words.csv", index=False)
    note = report_dir / "evaluation.md"
    note.write_text(evaluation_note(encoder.model_id, labels, facets, words, agreement, calibration), encoding="utf-8")
    return Evaluation(facets, words, agreement, note)


def run_calibrate(encoder, labels: LabelTable, vocab: Vocabulary, *, source: str, target: float, folds: int,
                  selection: str = "per-word", seed: int = 0, progress=lambda _: None) -> CalibrationProfile:
    """Fit a calibration profile for this encoder on the labelled photos (see calibration.py)."""
    if hasattr(encoder, "base_evidence"):  # fit from what the encoder sees, not from a profile already applied
        encoder.use_calibration(encoder.base_evidence)
    outputs = run_encoder(encoder, labels, vocab)
    base = evidence_of(encoder)
    return calibrate(outputs.base_probs, labels, vocab, base, model_id=encoder.model_id, revision=encoder.revision,
                     source=source, features=outputs.features, target=target, folds=folds, selection=selection,
                     seed=seed, progress=progress)
