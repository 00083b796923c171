"""What a tagger has evidence for, and how sure a word must be before it is shown.

Every image-text encoder may carry an ``evidence`` attribute (an :class:`Evidence`): the facets
it judges, whether it can see an absence ("no water", "no view"), and per-facet selection rules
measured on labelled photos that replace the vocabulary's defaults for that encoder. A facet the
encoder does not judge stays silent on every photo and the analysis reports it as "not judged
by this tagger" rather than as uninformative. An encoder without the attribute (CLIP, SigLIP)
judges every facet with the vocabulary's own rules.

Selection keeps the probabilities as they are (the softmax still runs over every word of a
facet, absences included) and only restricts which words may be *selected*: a photo on which
"no water" wins for an object classifier gets no water tag at all rather than the runner-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from alienstay.vocabulary.words import Facet, Vocabulary


@dataclass(frozen=True)
class FacetRule:
    """Selection within one facet for one encoder: at most top_k words, each reaching min_prob."""

    top_k: int
    min_prob: float


@dataclass(frozen=True)
class Evidence:
    """The facets an encoder judges, whether it sees absences, and its measured selection rules."""

    facets: frozenset[str] | None = None  # None: every facet of the vocabulary
    sees_absences: bool = True
    rules: Mapping[str, FacetRule] = field(default_factory=dict)
    source: str = "the vocabulary's own floors"  # where the rules come from, for notes and the docs
    # Per-word floors from a calibration profile ("facet:tag" -> floor). When given, ONLY these
    # words may be selected: a word the profile silenced or never saw stays silent (calibration.py).
    word_floors: Mapping[str, float] | None = None
    # At most this many tags a photo, the most probable of those selected (None: no limit). A profile
    # fitted for "surest" selection (calibration.py) says 1: fewer, surer tags keep precision up.
    max_tags: int | None = None

    def judges(self, facet: str) -> bool:
        return self.facets is None or facet in self.facets

    def may_select(self, vocab: Vocabulary) -> np.ndarray:
        """(W,) bool: the word's facet is judged and the word is no absence this encoder cannot see."""
        return np.array(
            [self.judges(w.facet) and (self.sees_absences or not w.absence)
             and (self.word_floors is None or f"{w.facet}:{w.tag}" in self.word_floors) for w in vocab.words],
            dtype=bool,
        )

    def floors(self, vocab: Vocabulary) -> np.ndarray:
        """(W,) the floor each word's probability must reach: its calibrated floor, else its facet's."""
        own = self.word_floors or {}
        return np.array([own.get(f"{w.facet}:{w.tag}", self.rule(vocab.facets[w.facet]).min_prob) for w in vocab.words])

    def rule(self, facet: Facet) -> FacetRule:
        return self.rules.get(facet.name, FacetRule(facet.top_k, facet.min_prob))

    @property
    def key(self) -> str:
        """A short hash of everything that changes which tags are selected (part of the encoder revision)."""
        text = json.dumps(
            {
                "facets": sorted(self.facets) if self.facets is not None else None,
                "sees_absences": self.sees_absences,
                "rules": {name: [r.top_k, r.min_prob] for name, r in sorted(self.rules.items())},
                **({"floors": dict(sorted(self.word_floors.items()))} if self.word_floors is not None else {}),
                **({"max_tags": self.max_tags} if self.max_tags is not None else {}),
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:8]


SEES_EVERYTHING = Evidence()


def evidence_of(encoder: object) -> Evidence:
    """The encoder's declared evidence; an encoder that declares none judges everything (CLIP)."""
    evidence = getattr(encoder, "evidence", None)
    return evidence if isinstance(evidence, Evidence) else SEES_EVERYTHING


def select_tags(probs: np.ndarray, vocab: Vocabulary, evidence: Evidence = SEES_EVERYTHING) -> np.ndarray:
    """Per facet: the top_k selectable words by probability, each only if it reaches its floor.

    Ties go to vocabulary order. Words the evidence may not select are never chosen and do not
    take a top_k place; a facet the encoder does not judge selects nothing. With `max_tags`, a
    photo then keeps only its `max_tags` most probable selected words.
    """
    probs = np.asarray(probs)
    selected = np.zeros(probs.shape, dtype=bool)
    allowed = evidence.may_select(vocab)
    floors = evidence.floors(vocab)
    rows = np.arange(probs.shape[0])[:, None]
    for name, part in vocab.facet_slices().items():
        rule = evidence.rule(vocab.facets[name])
        block = np.where(allowed[part], probs[:, part], -np.inf)
        ranked = np.argsort(-block, axis=1, kind="stable")[:, : rule.top_k]
        chosen = np.zeros(block.shape, dtype=bool)
        chosen[rows, ranked] = True
        selected[:, part] = chosen & (block >= floors[part])
    if evidence.max_tags is not None:
        ranked = np.argsort(-np.where(selected, probs, -np.inf), axis=1, kind="stable")[:, : evidence.max_tags]
        keep = np.zeros(selected.shape, dtype=bool)
        keep[rows, ranked] = True
        selected &= keep
    return selected
