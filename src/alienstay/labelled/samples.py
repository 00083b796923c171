"""Labelled real photos: what each shows, and how often a tagger's selected words are right.

The packaged ``data/sample_labels.yaml`` labels the eight sample photos and five real photos that
ship inside installed packages (scikit-image, matplotlib). Per photo and facet it lists the
`right` words and the defensible `ok` words; every other word of a labelled facet is wrong there.
:func:`score_selection` turns a selection (the tag stage's ``selected`` matrix) into precision and
coverage per facet, the figures the offline tagger's floors are chosen by and tested against.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from alienstay.vocabulary.words import Vocabulary

PACKAGED_LABELS = "sample_labels.yaml"
DEFAULT_SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "samples" / "unsplash"  # the checkout's ../shared


class LabelError(ValueError):
    """The labels file is malformed or names a word the vocabulary lacks."""


@dataclass(frozen=True)
class FacetLabel:
    right: frozenset[str]
    ok: frozenset[str]
    why: str

    def verdict(self, tag: str) -> str:
        """right | ok | wrong for a word of this facet on this photo."""
        return "right" if tag in self.right else "ok" if tag in self.ok else "wrong"


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    source: str
    shows: str
    labels: dict[str, FacetLabel]


def samples_dir() -> Path:
    return Path(os.environ.get("ALIENSTAY_SAMPLES", DEFAULT_SAMPLES))


def load_labels(vocab: Vocabulary, path: Path | None = None) -> list[LabelledPhoto]:
    """The labelled photos, every word checked against the vocabulary."""
    text = path.read_text(encoding="utf-8") if path else (
        resources.files("alienstay").joinpath("data", PACKAGED_LABELS).read_text(encoding="utf-8")
    )
    document = yaml.safe_load(text)
    facet_words = {name: set(facet.tags) for name, facet in vocab.facets.items()}
    photos = []
    for name, entry in document["photos"].items():
        labels = {}
        for facet, label in entry["labels"].items():
            if facet not in facet_words:
                raise LabelError(f"{name}: facet {facet!r} is not in the vocabulary {vocab.source}")
            right, ok = frozenset(label.get("right", [])), frozenset(label.get("ok", []))
            unknown = (right | ok) - facet_words[facet]
            if unknown:
                raise LabelError(f"{name}.{facet}: {sorted(unknown)} are not words of facet {facet!r}")
            if not str(label.get("why", "")).strip():
                raise LabelError(f"{name}.{facet}: give the reason (`why`) for the label")
            labels[facet] = FacetLabel(right, ok, str(label["why"]))
        photos.append(LabelledPhoto(name, entry["source"], entry.get("shows", ""), labels))
    return photos


def _from_samples(name: str) -> Image.Image:
    return Image.open(samples_dir() / name)


def _from_skimage(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)())


def _from_matplotlib(name: str) -> Image.Image:
    from matplotlib import cbook

    return Image.open(cbook.get_sample_data(name, asfileobj=False))


# Where a label's photo comes from: one entry a kind of source.
PHOTO_SOURCES: dict[str, Callable[[str], Image.Image]] = {
    "samples": _from_samples,
    "skimage": _from_skimage,
    "matplotlib": _from_matplotlib,
}


def open_photo(photo: LabelledPhoto) -> Image.Image:
    kind, _, name = photo.source.partition(":")
    return PHOTO_SOURCES[kind](name).convert("RGB")


def available(photos: list[LabelledPhoto]) -> list[LabelledPhoto]:
    """The photos whose source is present (the samples folder may be missing on a fresh clone)."""
    found = []
    for photo in photos:
        try:
            open_photo(photo).close()
        except (OSError, ImportError, AttributeError):
            continue
        found.append(photo)
    return found


def verdicts(photos: list[LabelledPhoto], selected: np.ndarray, vocab: Vocabulary) -> pd.DataFrame:
    """One row per selected word on a labelled facet: photo, facet, tag, verdict (right/ok/wrong)."""
    rows = []
    for photo, chosen in zip(photos, np.asarray(selected, dtype=bool), strict=True):
        for word, is_selected in zip(vocab.words, chosen, strict=True):
            if is_selected and word.facet in photo.labels:
                verdict = photo.labels[word.facet].verdict(word.tag)
                rows.append({"photo": photo.name, "facet": word.facet, "tag": word.tag, "verdict": verdict})
    return pd.DataFrame(rows, columns=["photo", "facet", "tag", "verdict"])


def score_selection(photos: list[LabelledPhoto], selected: np.ndarray, vocab: Vocabulary) -> pd.DataFrame:
    """Per facet: labelled photos, photos with a selected word (coverage), tags selected, precision.

    precision = selected words not labelled wrong / selected words (NaN when nothing was selected);
    strict precision counts only `right` words. The last row, `all`, pools every facet.
    """
    found = verdicts(photos, selected, vocab)
    rows = []
    for facet in [*vocab.facets, "all"]:
        part = found if facet == "all" else found[found["facet"] == facet]
        labelled = sum(len(p.labels) if facet == "all" else facet in p.labels for p in photos)
        spoke = part.drop_duplicates(["photo", "facet"]).shape[0]
        n = len(part)
        rows.append(
            {
                "facet": facet,
                "labelled": int(labelled),
                "coverage": spoke / labelled if labelled else float("nan"),
                "selected": n,
                "wrong": int((part["verdict"] == "wrong").sum()),
                "precision": float((part["verdict"] != "wrong").mean()) if n else float("nan"),
                "strict_precision": float((part["verdict"] == "right").mean()) if n else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def tagger_probabilities(encoder, photos: list[LabelledPhoto], vocab: Vocabulary) -> np.ndarray:
    """(P, W) probabilities the tag stage would give these photos: its own mapper (softmax, class head)."""
    import torch

    from alienstay.tagging import TagMapper, word_embeddings

    transform = encoder.image_transform()
    pixels = torch.stack([transform(open_photo(photo)) for photo in photos])
    mapper = TagMapper(encoder, vocab, word_embeddings(encoder, vocab))
    return mapper([photo.name for photo in photos], pixels).probs
