"""Calibration: per-word floors fitted by k-fold cross-validation at a target precision.

A profile says, for one encoder (model id, revision) and one vocabulary (its hash), which words
may be selected and from which probability on, and how they did out of sample:
- floors are chosen on the training folds only: the lowest probability at which the word's
  selections reach the target precision plus MARGIN at that floor and at every higher one (at least
  MIN_SELECTED of them: a floor resting on one lucky photo is no floor);
- the held-out fold is then tagged with those floors; over the k folds every photo is tagged
  once by floors that never saw it, and those selections give the cross-validated precision and
  coverage the profile (and docs/tagging.md) report;
- a word that no floor brings to the target on the training photos, a word with too few
  labelled photos, and a word whose cross-validated precision stays below the target are
  silenced, each with its reason; so is every word of a facet the labels do not judge.
With an evidence source that learns (the class head, vocabulary/word_head.py) the head is refitted
inside every training fold and its floors are chosen on inner out-of-fold predictions (nested).
The final profile refits floors (and head) on every photo; its figures stay the nested ones.

How floors are chosen is a SELECTIONS entry (a Registry: outside packages add rules through the
entry-point group `alienstay.selection_rules`); each chooses its floors from the training photos'
(inner out-of-fold) probabilities:
- per-word: each word its own floor, as above; a photo may keep one word a facet;
- surest (the offline tagger's default): a photo keeps at most ONE tag, its most probable
  candidate word, and only when that probability clears one floor shared by every word, chosen
  on the training photos' out-of-fold probabilities as the lowest at which those top words are
  right at the target. Coverage asks for one trusted tag a photo and precision counts every tag,
  so fewer, surer tags help both. Its floor is chosen on INNER_REPEATS inner splits pooled (each
  training photo counted once a split): one split's floor moves with which photos share a fold.
  No word is silenced after the outer folds are scored (that would choose on the photos
  scored): the cross-validated figures are the procedure's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from alienstay.labelled.evaluation import facet_table, word_table
from alienstay.labelled.table import OK, RIGHT, UNJUDGED, WRONG, LabelTable
from alienstay.runtime.registry import Registry
from alienstay.vocabulary.evidence import Evidence, select_tags
from alienstay.vocabulary.profile import CalibrationProfile
from alienstay.vocabulary.word_head import WordHead, fit_head
from alienstay.vocabulary.words import Vocabulary

TARGET = 0.9
FOLDS = 5
MIN_SELECTED = 5  # selections a floor must rest on, on the training photos
MIN_LABELLED = 3  # right and wrong photos a word needs before a floor is fitted
# Floors are chosen at target + MARGIN on the training photos: the photos a profile meets next are
# other hotels, so it errs to higher floors (silence) rather than to a guess.
MARGIN = 0.0  # 0.05 was tried: same cross-validated precision (0.87), coverage 0.74 -> 0.52
# Inner splits pooled to choose surest's floor on: over twenty fold seeds 5 gives the same coverage
# as 1 with precision 0.897 -> 0.901 (docs/tagging.md; python -m benchmarks.bench_calibration).
INNER_REPEATS = 5


def choose_floor(probs: np.ndarray, verdicts: np.ndarray, target: float = TARGET,
                 min_selected: int = MIN_SELECTED) -> float | None:
    """The lowest floor whose selections, and those of every higher floor with >= min_selected, reach target."""
    return _lowest_floor(probs, verdicts, target, min_selected, stop_at_first_miss=True)


def choose_pooled_floor(probs: np.ndarray, verdicts: np.ndarray, target: float = TARGET,
                        min_selected: int = MIN_SELECTED) -> float | None:
    """The lowest floor at which all selections at or above it (>= min_selected) reach target.

    Unlike choose_floor, a dip among the few surest photos does not stop the search: pooled over
    every word there are a hundred selections, and one early miss among five is noise, not a trend.
    """
    return _lowest_floor(probs, verdicts, target, min_selected, stop_at_first_miss=False)


def _lowest_floor(probs: np.ndarray, verdicts: np.ndarray, target: float, min_selected: int,
                  stop_at_first_miss: bool) -> float | None:
    judged = verdicts != UNJUDGED
    p, good = np.asarray(probs)[judged], np.asarray(verdicts)[judged] >= OK
    order = np.argsort(-p, kind="stable")
    precision = np.cumsum(good[order]) / np.arange(1, len(order) + 1)
    best = None
    for k in range(min_selected - 1, len(order)):
        if precision[k] < target:
            if stop_at_first_miss:
                break
            continue
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
    # The SELECTIONS entry `calibrate --selection auto` takes: one floor shared by every word needs
    # probabilities comparable across words, which a head's (the chance the word is right) are and
    # an encoder's per-facet softmax is not.
    selection: str = "per-word"


EVIDENCE_SOURCES: dict[str, EvidenceSource] = {
    source.name: source
    for source in (
        EvidenceSource("probabilities", False, "the encoder's own per-facet probabilities (any encoder)"),
        EvidenceSource("class-head", True, "a logistic regression per word over the classifier's class scores "
                                            "and pixel statistics (vocabulary/word_head.py), refitted in every fold",
                       selection="surest"),
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


@dataclass(frozen=True)
class FloorSample:
    """What a selection rule chooses floors on: the training photos' probabilities and labels."""

    probs: np.ndarray  # (photos x inner splits, words): out-of-fold for a head (nested), the encoder's own otherwise
    verdicts: np.ndarray  # (photos x inner splits, words)
    words: list[int]  # candidate words (candidate_words)
    names: list[str]  # "facet:tag" of every vocabulary word


def _saved(floor: float) -> float:
    return math.floor(float(floor) * 1e6) / 1e6  # as saved (6 digits), never above the photo it rests on


def per_word_floors(sample: FloorSample, target: float) -> dict[str, float]:
    """Each candidate word its own floor (choose_floor); a word none brings to the target gets none."""
    found = {}
    for i in sample.words:
        floor = choose_floor(sample.probs[:, i], sample.verdicts[:, i], min(1.0, target + MARGIN))
        if floor is not None:
            found[sample.names[i]] = _saved(floor)
    return found


def pooled_floors(sample: FloorSample, target: float) -> dict[str, float]:
    """One floor for every candidate word, chosen on each photo's most probable candidate."""
    if not sample.words:
        return {}
    top = np.asarray(sample.words)[np.argmax(sample.probs[:, sample.words], axis=1)]
    rows = np.arange(len(top))
    floor = choose_pooled_floor(sample.probs[rows, top], sample.verdicts[rows, top], min(1.0, target + MARGIN))
    return {} if floor is None else {sample.names[i]: _saved(floor) for i in sample.words}


@dataclass(frozen=True)
class Selection:
    """How floors are chosen on training photos, and how many tags a photo may keep (None: one a facet)."""

    name: str
    max_tags: int | None
    description: str
    choose: Callable[[FloorSample, float], dict[str, float]]  # (sample, target) -> floors by "facet:tag"
    inner_repeats: int = 1  # inner splits whose out-of-fold probabilities are pooled for a head


SELECTIONS: Registry[Selection] = Registry("selection rule", group="alienstay.selection_rules")
SELECTIONS.register(Selection("per-word", None, "each word its own floor at the target; words below it silenced",
                              per_word_floors))
SELECTIONS.register(Selection("surest", 1, "one tag a photo at most, its most probable word, above one shared floor",
                              pooled_floors, inner_repeats=INNER_REPEATS))
DEFAULT_SELECTION = "per-word"  # any encoder; a source names its own (EvidenceSource.selection)


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

    def floor_sample(self, train: np.ndarray, repeats: int = 1) -> FloorSample:
        """Probabilities on the training rows that floors may be chosen on: for a head, out-of-fold
        over `repeats` inner splits (inner seeds seed+1, seed+2...), stacked."""
        verdicts = self.labels.verdicts[train]
        if not EVIDENCE_SOURCES[self.source].needs_features:  # nothing was fitted on them: out of sample already
            return FloorSample(self.probs[train], verdicts, self.words, self.names)
        position = {row: i for i, row in enumerate(train.tolist())}
        stacked = []
        for repeat in range(repeats):
            out = np.array(self.probs[train], dtype=np.float32, copy=True)
            for inner_train, inner_test in _folds(self.labels, train, self.folds, self.seed + 1 + repeat):
                out[[position[r] for r in inner_test.tolist()]] = self.predict(self.fit(inner_train), inner_test)
            stacked.append(out)
        return FloorSample(np.vstack(stacked), np.tile(verdicts, (repeats, 1)), self.words, self.names)

    def floors(self, train: np.ndarray, target: float, selection: Selection) -> dict[str, float]:
        return selection.choose(self.floor_sample(train, selection.inner_repeats), target)


def calibrate(
    probs: np.ndarray, labels: LabelTable, vocab: Vocabulary, base: Evidence, *, model_id: str, revision: str,
    source: str = "probabilities", features: np.ndarray | None = None, target: float = TARGET,
    folds: int = FOLDS, seed: int = 0, selection: str = DEFAULT_SELECTION,
    progress: Callable[[str], None] = lambda _: None, cv_selected: np.ndarray | None = None,
    inner_repeats: int | None = None,
) -> CalibrationProfile:
    """Cross-validated floors (and head) for one encoder on labelled photos; see the module docstring.

    `cv_selected`, a (photos, words) bool array, receives the cross-validated selections, for
    figures the profile does not keep (e.g. precision on one kind of scene). `inner_repeats`
    overrides the selection rule's number of pooled inner splits (None: the rule's own).
    """
    if source not in EVIDENCE_SOURCES:
        raise ValueError(f"unknown evidence source {source!r}: use one of {', '.join(EVIDENCE_SOURCES)}.")
    rule = SELECTIONS.get(selection)  # an unknown name is refused with the names that exist
    if inner_repeats is not None:
        if inner_repeats < 1:
            raise ValueError(f"inner_repeats {inner_repeats}: pool at least one inner split (1 = no repeat).")
        rule = replace(rule, inner_repeats=inner_repeats)
    max_tags = rule.max_tags
    if EVIDENCE_SOURCES[source].needs_features and features is None:
        raise ValueError(f"evidence source {source!r} needs the classifier's class scores: use --model offline.")
    rows = np.arange(len(labels.files))
    words, silenced = candidate_words(labels, vocab, base)
    fitter = _Fitter(source, probs, features, labels, vocab, words, folds, seed)
    selected = np.zeros(labels.verdicts.shape, dtype=bool)
    for number, (train, test) in enumerate(_folds(labels, rows, folds, seed), start=1):
        progress(f"fold {number}/{folds}")
        floors = fitter.floors(train, target, rule)
        evidence = replace(base, facets=None, sees_absences=True, word_floors=floors, max_tags=max_tags)
        selected[test] = select_tags(fitter.predict(fitter.fit(train), test), vocab, evidence)
    if cv_selected is not None:
        cv_selected[...] = selected
    words_cv, facets_cv = word_table(selected, labels, vocab), facet_table(selected, labels, vocab)
    progress("final fit on every photo")
    final = fitter.floors(rows, target, rule)
    for name in fitter.names:
        if name in silenced or name in final:
            continue
        silenced[name] = f"no floor reaches precision {target:g} on the training photos"
    for row in words_cv.itertuples():
        name = f"{row.facet}:{row.tag}"
        if max_tags is None and name in final and row.selected and row.precision < target:
            del final[name]
            silenced[name] = f"cross-validated precision {row.precision:.2f} < {target:g} ({row.correct}/{row.selected})"
    kept = np.array([name in final for name in fitter.names])
    return CalibrationProfile(
        model_id=model_id, revision=revision, vocab_hash=vocab.hash, evidence_source=source, target=target,
        folds=folds, photos=len(rows), labels=Path(labels.source).name, floors=final, silenced=silenced,
        cv_facets=_records(facets_cv), cv_words=_records(words_cv[words_cv["judged_photos"] > 0]),
        head=_kept_head(fitter.fit(rows), final), cv_kept=_records(facet_table(selected & kept, labels, vocab)),
        selection=selection, max_tags=max_tags,
    )


def _kept_head(head: WordHead | None, floors: dict[str, float]) -> WordHead | None:
    """Only the kept words' regressions: a silenced word's would never be read."""
    return None if head is None else head.only(set(floors))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else round(v, 4) if isinstance(v, float) else v)
             for k, v in row.items()} for row in frame.to_dict("records")]
