"""Calibration: per-word floors fitted by k-fold cross-validation at a target precision.

A profile says, for one encoder (model id, revision) and one vocabulary (its hash), which words
may be selected and from which probability on, and how they did out of sample:
- floors are chosen on the training folds only: the lowest probability at which the word's
  selections reach the target precision plus MARGIN at that floor and at every higher one (at least
  MIN_SELECTED of them: a floor resting on one lucky photo is no floor);
- the held-out fold is then tagged with those floors; over the k folds every photo is tagged
  once by floors that never saw it, and those selections give the cross-validated precision and
  coverage the profile (and the README) report;
- a word that no floor brings to the target on the training photos, a word with too few
  labelled photos, and a word whose cross-validated precision stays below the target are
  silenced, each with its reason; so is every word of a facet the labels do not judge.
With an evidence source that learns (the class head, evidence_head.py) the head is refitted
inside every training fold and its floors are chosen on inner out-of-fold predictions (nested).
The final profile refits floors (and head) on every photo; its figures stay the nested ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import StratifiedKFold

from alienstay.labelled.evaluation import facet_table, word_table
from alienstay.labelled.evidence_head import WordHead, fit_head
from alienstay.labelled.table import OK, RIGHT, UNJUDGED, WRONG, LabelTable
from alienstay.vocabulary.evidence import Evidence, select_tags
from alienstay.vocabulary.words import Vocabulary

TARGET = 0.9
FOLDS = 5
MIN_SELECTED = 5  # selections a floor must rest on, on the training photos
MIN_LABELLED = 3  # right and wrong photos a word needs before a floor is fitted
# Floors are chosen at target + MARGIN on the training photos: the photos a profile meets next are
# other hotels, so it errs to higher floors (silence) rather than to a guess.
MARGIN = 0.0  # 0.05 was tried: same cross-validated precision (0.87), coverage 0.74 -> 0.52
PROFILE_VERSION = 1


class CalibrationError(ValueError):
    """A profile cannot be used with this encoder or vocabulary; the message says what to do."""


@dataclass
class CalibrationProfile:
    model_id: str
    revision: str  # the encoder's revision before calibration
    vocab_hash: str
    evidence_source: str  # an EVIDENCE_SOURCES name
    target: float
    folds: int
    photos: int
    labels: str  # the labels file's name (not its path: profiles travel)
    floors: dict[str, float]  # "facet:tag" -> floor: the only words that may be selected
    silenced: dict[str, str]  # "facet:tag" -> why it stays silent
    cv_facets: list[dict] = field(default_factory=list)
    cv_words: list[dict] = field(default_factory=list)
    head: WordHead | None = None
    # The same cross-validated selections restricted to the words kept: chosen after seeing them, so optimistic.
    cv_kept: list[dict] = field(default_factory=list)

    @property
    def key(self) -> str:
        text = json.dumps({"floors": self.floors, "head": self.head.to_dict() if self.head else None}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def evidence(self, base: Evidence) -> Evidence:
        """The base evidence with only the calibrated words selectable, each from its own floor."""
        facets = frozenset(word.split(":", 1)[0] for word in self.floors)
        return replace(base, facets=facets, word_floors=dict(self.floors),
                       source=f"calibration profile {self.key}: floors at cross-validated precision >= {self.target:g} "
                              f"on {self.photos} labelled photos ({self.labels})")

    def to_dict(self) -> dict:
        return {"version": PROFILE_VERSION, "model_id": self.model_id, "revision": self.revision,
                "vocab_hash": self.vocab_hash, "evidence_source": self.evidence_source, "target": self.target,
                "folds": self.folds, "photos": self.photos, "labels": self.labels,
                "floors": {w: round(float(f), 6) for w, f in self.floors.items()}, "silenced": self.silenced,
                "cross_validated": {"facets": self.cv_facets, "words": self.cv_words,
                                    "kept_words_only": self.cv_kept},
                "head": self.head.to_dict() if self.head else None}

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # flow style for lists of numbers: a head is one line a word, not a thousand
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=200, default_flow_style=None), encoding="utf-8")
        return path


def load_profile(path: Path | str) -> CalibrationProfile:
    """A profile written by `alienstay calibrate`; a clear error naming the file otherwise."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        cv = document.get("cross_validated") or {}
        return CalibrationProfile(
            model_id=document["model_id"], revision=document["revision"], vocab_hash=document["vocab_hash"],
            evidence_source=document["evidence_source"], target=float(document["target"]), folds=int(document["folds"]),
            photos=int(document["photos"]), labels=str(document["labels"]),
            floors={str(k): float(v) for k, v in (document["floors"] or {}).items()},
            silenced=dict(document.get("silenced") or {}), cv_facets=list(cv.get("facets") or []),
            cv_words=list(cv.get("words") or []), cv_kept=list(cv.get("kept_words_only") or []),
            head=WordHead.from_dict(document["head"]) if document.get("head") else None,
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise CalibrationError(f"{path}: not a calibration profile ({type(error).__name__}: {error}); "
                               "write one with `alienstay calibrate --labels FILE --output PROFILE`.") from None


def check_profile(profile: CalibrationProfile, model_id: str, vocab: Vocabulary, where: str) -> None:
    """Refuse a profile fitted for another model or vocabulary: its floors mean nothing here."""
    if profile.model_id != model_id:
        raise CalibrationError(f"{where} was fitted for {profile.model_id}, not {model_id}: "
                               f"run `alienstay calibrate --model ... --labels FILE` for this model.")
    if profile.vocab_hash != vocab.hash:
        raise CalibrationError(f"{where} was fitted for vocabulary {profile.vocab_hash}, not {vocab.hash} "
                               f"({vocab.source}): re-run `alienstay calibrate` with this vocabulary.")


# ---- choosing floors ------------------------------------------------------------------------
def choose_floor(probs: np.ndarray, verdicts: np.ndarray, target: float = TARGET,
                 min_selected: int = MIN_SELECTED) -> float | None:
    """The lowest floor whose selections, and those of every higher floor with >= min_selected, reach target."""
    judged = verdicts != UNJUDGED
    p, good = np.asarray(probs)[judged], np.asarray(verdicts)[judged] >= OK
    order = np.argsort(-p, kind="stable")
    precision = np.cumsum(good[order]) / np.arange(1, len(order) + 1)
    best = None
    for k in range(min_selected - 1, len(order)):
        if precision[k] < target:
            break
        if k + 1 == len(order) or p[order[k + 1]] < p[order[k]]:  # a floor cannot split tied probabilities
            best = float(p[order[k]])
    return best


def candidate_words(labels: LabelTable, vocab: Vocabulary, base: Evidence) -> tuple[list[int], dict[str, str]]:
    """Words with enough right and wrong labelled photos; the others, silenced with the reason."""
    allowed = base.may_select(vocab) if base.word_floors is None else np.ones(len(vocab.words), bool)
    keep, silenced = [], {}
    for i, word in enumerate(vocab.words):
        name = f"{word.facet}:{word.tag}"
        right, wrong = int((labels.verdicts[:, i] == RIGHT).sum()), int((labels.verdicts[:, i] == WRONG).sum())
        if not allowed[i]:
            silenced[name] = "this tagger has no evidence for it (evidence.py)"
        elif right < MIN_LABELLED or wrong < MIN_LABELLED:
            silenced[name] = f"too few labelled photos ({right} right, {wrong} wrong; {MIN_LABELLED} of each needed)"
        else:
            keep.append(i)
    return keep, silenced


# ---- evidence sources: where the probabilities a floor is compared to come from -------------
@dataclass(frozen=True)
class EvidenceSource:
    """fit(train rows, test rows, words) -> (train-row probabilities to choose floors on, test-row probabilities, head)."""

    name: str
    needs_features: bool
    description: str


EVIDENCE_SOURCES: dict[str, EvidenceSource] = {
    source.name: source
    for source in (
        EvidenceSource("probabilities", False, "the encoder's own per-facet probabilities (any encoder)"),
        EvidenceSource("class-head", True, "a logistic regression per word over the classifier's class scores "
                                            "and pixel statistics (evidence_head.py), refitted in every fold"),
    )
}


def _targets(labels: LabelTable, rows: np.ndarray, words: list[int], vocab: Vocabulary) -> dict[str, np.ndarray]:
    block = labels.verdicts[rows]
    return {f"{vocab.words[i].facet}:{vocab.words[i].tag}": np.where(block[:, i] == UNJUDGED, -1, (block[:, i] >= OK).astype(int))
            for i in words}


def _folds(labels: LabelTable, rows: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified by scene where each scene has k photos (rarer scenes pooled), so every fold sees every room."""
    scene = labels.scene.iloc[rows].fillna("?").astype(str)
    counts = scene.map(scene.value_counts())
    strata = np.where(counts >= k, scene.to_numpy(), "rare")
    if pd.Series(strata).value_counts().min() < k:
        strata = np.zeros(len(rows), dtype=int)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(rows[a], rows[b]) for a, b in splitter.split(rows, strata)]


class _Fitter:
    """Probabilities of each source for given training rows (the head refitted on them)."""

    def __init__(self, source: str, probs: np.ndarray, features: np.ndarray | None, labels: LabelTable,
                 vocab: Vocabulary, words: list[int], folds: int, seed: int):
        self.source, self.probs, self.features = source, probs, features
        self.labels, self.vocab, self.words, self.folds, self.seed = labels, vocab, words, folds, seed
        self.names = [f"{w.facet}:{w.tag}" for w in vocab.words]

    def fit(self, train: np.ndarray) -> WordHead | None:
        if not EVIDENCE_SOURCES[self.source].needs_features:
            return None  # the encoder's own probabilities: nothing to fit
        return fit_head(self.features[train], _targets(self.labels, train, self.words, self.vocab))

    def predict(self, head: WordHead | None, rows: np.ndarray) -> np.ndarray:
        probs = self.probs[rows]
        return probs if head is None else head.apply(probs, self.features[rows], self.names)

    def floor_probs(self, train: np.ndarray) -> np.ndarray:
        """Probabilities on the training rows that floors may be chosen on: out-of-fold for a head."""
        if not EVIDENCE_SOURCES[self.source].needs_features:
            return self.probs[train]  # nothing was fitted on them: they are out of sample already
        out = np.array(self.probs[train], dtype=np.float32, copy=True)
        position = {row: i for i, row in enumerate(train.tolist())}
        for inner_train, inner_test in _folds(self.labels, train, self.folds, self.seed + 1):
            predicted = self.predict(self.fit(inner_train), inner_test)
            out[[position[r] for r in inner_test.tolist()]] = predicted
        return out

    def floors(self, train: np.ndarray, target: float) -> dict[str, float]:
        probs = self.floor_probs(train)
        found = {}
        for i in self.words:
            floor = choose_floor(probs[:, i], self.labels.verdicts[train, i], min(1.0, target + MARGIN))
            if floor is not None:
                found[self.names[i]] = math.floor(float(floor) * 1e6) / 1e6  # as saved (6 digits), never above the photo it rests on
        return found


def calibrate(
    probs: np.ndarray, labels: LabelTable, vocab: Vocabulary, base: Evidence, *, model_id: str, revision: str,
    source: str = "probabilities", features: np.ndarray | None = None, target: float = TARGET,
    folds: int = FOLDS, seed: int = 0, progress: Callable[[str], None] = lambda _: None,
) -> CalibrationProfile:
    """Cross-validated floors (and head) for one encoder on labelled photos; see the module docstring."""
    if source not in EVIDENCE_SOURCES:
        raise ValueError(f"unknown evidence source {source!r}: use one of {', '.join(EVIDENCE_SOURCES)}.")
    if EVIDENCE_SOURCES[source].needs_features and features is None:
        raise ValueError(f"evidence source {source!r} needs the classifier's class scores: use --model offline.")
    rows = np.arange(len(labels.files))
    words, silenced = candidate_words(labels, vocab, base)
    fitter = _Fitter(source, probs, features, labels, vocab, words, folds, seed)
    selected = np.zeros(labels.verdicts.shape, dtype=bool)
    for number, (train, test) in enumerate(_folds(labels, rows, folds, seed), start=1):
        progress(f"fold {number}/{folds}")
        floors = fitter.floors(train, target)
        evidence = replace(base, facets=None, sees_absences=True, word_floors=floors)
        selected[test] = select_tags(fitter.predict(fitter.fit(train), test), vocab, evidence)
    words_cv, facets_cv = word_table(selected, labels, vocab), facet_table(selected, labels, vocab)
    progress("final fit on every photo")
    final = fitter.floors(rows, target)
    for name in fitter.names:
        if name in silenced or name in final:
            continue
        silenced[name] = f"no floor reaches precision {target:g} on the training photos"
    for row in words_cv.itertuples():
        name = f"{row.facet}:{row.tag}"
        if name in final and row.selected and row.precision < target:
            del final[name]
            silenced[name] = f"cross-validated precision {row.precision:.2f} < {target:g} ({row.correct}/{row.selected})"
    kept = np.array([name in final for name in fitter.names])
    return CalibrationProfile(
        model_id=model_id, revision=revision, vocab_hash=vocab.hash, evidence_source=source, target=target,
        folds=folds, photos=len(rows), labels=Path(labels.source).name, floors=final, silenced=silenced,
        cv_facets=_records(facets_cv), cv_words=_records(words_cv[words_cv["judged_photos"] > 0]),
        head=_kept_head(fitter.fit(rows), final), cv_kept=_records(facet_table(selected & kept, labels, vocab)),
    )


def _kept_head(head: WordHead | None, floors: dict[str, float]) -> WordHead | None:
    """Only the kept words' regressions: a silenced word's would never be read."""
    return None if head is None else head.only(set(floors))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else round(v, 4) if isinstance(v, float) else v)
             for k, v in row.items()} for row in frame.to_dict("records")]


# ---- using a profile ----------------------------------------------------------------------------
def apply_profile(encoder: object, profile: CalibrationProfile, vocab: Vocabulary | None, where: str) -> None:
    """Make `encoder` select by the profile: only its words, from their floors (and its head).

    `vocab` None skips the vocabulary check (the packaged default profile: a word of another
    vocabulary it never saw simply stays silent).
    """
    from alienstay.vocabulary.evidence import evidence_of

    model_id = str(getattr(encoder, "model_id", ""))
    if vocab is not None:
        check_profile(profile, model_id, vocab, where)
    elif profile.model_id != model_id:
        raise CalibrationError(f"{where} was fitted for {profile.model_id}, not {model_id}.")
    if profile.head is not None and not hasattr(encoder, "encode_with_features"):
        raise CalibrationError(f"{where} holds a class head, which only the offline tagger can feed.")
    evidence = profile.evidence(evidence_of(encoder))
    if hasattr(encoder, "use_calibration"):
        encoder.use_calibration(evidence, profile.head, profile.key)
        return
    encoder.evidence = evidence
    encoder.word_head = profile.head
    encoder.revision = f"{encoder.revision};calibration-{profile.key}"
