"""A calibration profile: which words an encoder may select, from which floor, and how they did.

Written by `alienstay calibrate` (labelled/calibration.py fits it) and read by the encoders and
the tag stage, so it lives below both: a profile is numbers and words, no fitting here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from alienstay.vocabulary.evidence import Evidence
from alienstay.vocabulary.word_head import WordHead
from alienstay.vocabulary.words import Vocabulary

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
    selection: str = "per-word"  # a calibration.SELECTIONS name: how the floors were chosen
    max_tags: int | None = None  # at most this many tags a photo (evidence.Evidence.max_tags)

    @property
    def key(self) -> str:
        text = json.dumps({"floors": self.floors, "head": self.head.to_dict() if self.head else None,
                           **({"max_tags": self.max_tags} if self.max_tags is not None else {})}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def evidence(self, base: Evidence) -> Evidence:
        """The base evidence with only the calibrated words selectable, each from its own floor."""
        facets = frozenset(word.split(":", 1)[0] for word in self.floors)
        return replace(base, facets=facets, word_floors=dict(self.floors), max_tags=self.max_tags,
                       source=f"calibration profile {self.key}: floors at cross-validated precision >= {self.target:g} "
                              f"on {self.photos} labelled photos ({self.labels})")

    def to_dict(self) -> dict:
        return {"version": PROFILE_VERSION, "model_id": self.model_id, "revision": self.revision,
                "vocab_hash": self.vocab_hash, "evidence_source": self.evidence_source, "target": self.target,
                "folds": self.folds, "photos": self.photos, "labels": self.labels,
                "selection": self.selection, "max_tags": self.max_tags,
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
            selection=str(document.get("selection") or "per-word"),
            max_tags=int(document["max_tags"]) if document.get("max_tags") is not None else None,
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


# ---- using a profile ----------------------------------------------------------------------------
def head_fits(profile: CalibrationProfile, encoder: object) -> bool:
    """False when the profile's class head reads another number of features than the encoder gives."""
    expected = getattr(encoder, "head_feature_count", None)
    return profile.head is None or expected is None or profile.head.feature_count == expected


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
    if not head_fits(profile, encoder):
        raise CalibrationError(f"{where}'s class head reads {profile.head.feature_count} features and this tagger "
                               f"gives {encoder.head_feature_count} (a profile written by another alienstay version): "
                               "re-run `alienstay calibrate --labels FILE --output PROFILE`.")
    evidence = profile.evidence(evidence_of(encoder))
    if hasattr(encoder, "use_calibration"):
        encoder.use_calibration(evidence, profile.head, profile.key)
        return
    encoder.evidence = evidence
    encoder.word_head = profile.head
    encoder.revision = f"{encoder.revision};calibration-{profile.key}"
