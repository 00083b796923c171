"""Scoring: word embeddings of the vocabulary, cosine scores, per-facet probabilities, selection.

The mapper (:class:`TagMapper`) turns a batch of pixels into a :class:`TaggedBatch`; the
functions below it are pure, on arrays, so both engines and the tests share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from alienstay.encoders import ImageTextEncoder
from alienstay.runtime.registry import Registry
from alienstay.vocabulary.evidence import SEES_EVERYTHING, Evidence, evidence_of
from alienstay.vocabulary.evidence import select_tags as evidence_select
from alienstay.tagging.settings import TagIdentity
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace.layout import Workspace, atomic_path

TAG_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("facet", pa.string()),
        ("tag", pa.string()),
        ("score", pa.float32()),
        ("prob", pa.float32()),
        ("selected", pa.bool_()),
        ("model_id", pa.string()),
        ("model_revision", pa.string()),
        ("vocab_hash", pa.string()),
        ("judged", pa.bool_()),  # False: the encoder has no evidence for this word (see evidence.py)
        ("device", pa.string()),  # where the image side ran (cpu, cuda:0...)
        ("dtype", pa.string()),  # the precision it ran in
    ]
)


# ---- vocabulary text embeddings -----------------------------------------------------------
def word_embeddings(encoder: ImageTextEncoder, vocab: Vocabulary) -> np.ndarray:
    """(W, D) prompt-ensemble embeddings: each word's normalised prompt embeddings averaged, re-normalised."""
    prompts = [p for w in vocab.words for p in w.prompts]
    encoded = encoder.encode_texts(prompts).float()
    rows, start = [], 0
    for word in vocab.words:
        mean = encoded[start : start + len(word.prompts)].mean(dim=0)
        rows.append(torch.nn.functional.normalize(mean, dim=0))
        start += len(word.prompts)
    return torch.stack(rows).numpy().astype(np.float32)


def cached_word_embeddings(ws: Workspace, encoder: ImageTextEncoder, vocab: Vocabulary) -> np.ndarray:
    """Text embeddings are computed once per (model, revision, dtype, vocabulary) and kept in the cache."""
    path = ws.text_embeddings_cache_path(TagIdentity.of(encoder, vocab).key)
    if path.exists():
        return np.load(path)
    embeddings = word_embeddings(encoder, vocab)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, embeddings)
    return embeddings


# ---- scores -> probabilities -> selection (pure, on arrays) ------------------------------
def facet_probabilities(scores: np.ndarray, vocab: Vocabulary, logit_scale: float) -> np.ndarray:
    """Softmax of logit_scale * cosine within each facet: (B, W) scores -> (B, W) probabilities."""
    logits = torch.from_numpy(np.asarray(scores, dtype=np.float32)) * float(logit_scale)
    probs = torch.empty_like(logits)
    for part in vocab.facet_slices().values():
        probs[:, part] = torch.softmax(logits[:, part], dim=1)
    return probs.numpy()


def sigmoid_probabilities(scores: np.ndarray, logit_scale: float, logit_bias: float) -> np.ndarray:
    """Per word, sigmoid(logit_scale * cosine + logit_bias): each word's own yes/no, facets ignored."""
    logits = torch.from_numpy(np.asarray(scores, dtype=np.float32)) * float(logit_scale) + float(logit_bias)
    return torch.sigmoid(logits).numpy()


@dataclass(frozen=True)
class ProbabilityRule:
    """How an encoder family's cosine scores become the `prob` that selection compares to a facet's floor."""

    name: str
    apply: Callable[[np.ndarray, Vocabulary, ImageTextEncoder], np.ndarray]
    description: str


PROBABILITY_RULES: Registry[ProbabilityRule] = Registry("probability rule", group="alienstay.probability_rules")
PROBABILITY_RULES.register(ProbabilityRule(
    "softmax", lambda scores, vocab, encoder: facet_probabilities(scores, vocab, encoder.logit_scale),
    "softmax within each facet (CLIP, ConSE: trained against the other captions of a batch)",
))
PROBABILITY_RULES.register(ProbabilityRule(
    "sigmoid",
    lambda scores, vocab, encoder: sigmoid_probabilities(scores, encoder.logit_scale, getattr(encoder, "logit_bias", 0.0)),
    "per-word sigmoid with the learned bias (SigLIP, SigLIP 2: trained on independent image-text pairs)",
))


def encoder_probabilities(scores: np.ndarray, vocab: Vocabulary, encoder: ImageTextEncoder) -> np.ndarray:
    """(B, W) cosine scores -> probabilities by the encoder's rule (`probability`, softmax when it names none)."""
    return PROBABILITY_RULES.get(getattr(encoder, "probability", "softmax")).apply(scores, vocab, encoder)


def select_tags(probs: np.ndarray, vocab: Vocabulary, evidence: Evidence = SEES_EVERYTHING) -> np.ndarray:
    """Per facet: the top_k words the encoder may select, each only if it reaches its floor (see evidence.py)."""
    return evidence_select(probs, vocab, evidence)


# ---- mapper -----------------------------------------------------------------------------------
@dataclass
class TaggedBatch:
    positions: list[int]
    ids: list[str]
    embeddings: np.ndarray  # (B, D) float32, L2-normalised
    scores: np.ndarray  # (B, W) cosine
    probs: np.ndarray  # (B, W) by the encoder's PROBABILITY_RULES entry
    selected: np.ndarray  # (B, W) bool
    judged: np.ndarray | None = None  # (W,) bool: words the encoder may select; None: all
    device: str = ""  # where the encoder ran
    features: np.ndarray | None = None  # (B, F) the class head's features, where the encoder gives them


class TagMapper:
    """(ids, pixel batch) -> TaggedBatch. Holds the encoder and the cached word embeddings."""

    def __init__(self, encoder: ImageTextEncoder, vocab: Vocabulary, word_embeddings: np.ndarray) -> None:
        self.encoder = encoder
        self.vocab = vocab
        self.word_embeddings = torch.from_numpy(np.ascontiguousarray(word_embeddings, dtype=np.float32))
        self.evidence = evidence_of(encoder)

    def __call__(self, ids: list[str], pixels: torch.Tensor, positions: list[int] | None = None) -> TaggedBatch:
        # A calibration profile's class head (vocabulary/word_head.py) reads the classifier's class scores:
        # the encoder gives them with the embeddings, from the same pass.
        # Calibration reads them too (stages/labelled.py), head or not: kept on the batch.
        head = getattr(self.encoder, "word_head", None)
        features = None
        if hasattr(self.encoder, "encode_with_features"):
            embeddings, features = self.encoder.encode_with_features(pixels)
            embeddings = embeddings.float()
        else:
            embeddings = self.encoder.encode_images(pixels).float()
        scores = (embeddings @ self.word_embeddings.T).numpy()
        probs = encoder_probabilities(scores, self.vocab, self.encoder)
        if head is not None:
            probs = head.apply(probs, features, [f"{w.facet}:{w.tag}" for w in self.vocab.words])
        return TaggedBatch(
            positions=list(positions) if positions is not None else list(range(len(ids))),
            ids=list(ids),
            embeddings=embeddings.numpy(),
            scores=scores,
            probs=probs,
            selected=select_tags(probs, self.vocab, self.evidence),
            judged=self.evidence.may_select(self.vocab),
            device=str(getattr(self.encoder, "device", "cpu")),
            features=features,
        )


def tag_rows(batch: TaggedBatch, vocab: Vocabulary, identity: TagIdentity) -> pa.Table:
    """One row per (image, word) in the agreed tags.parquet format."""
    n_images, n_words = len(batch.ids), len(vocab.words)
    judged = np.ones(n_words, dtype=bool) if batch.judged is None else batch.judged
    repeat = lambda value: pa.array([value] * (n_images * n_words), pa.string())  # noqa: E731
    return pa.table(
        {
            "image_id": pa.array(np.repeat(np.asarray(batch.ids, dtype=object), n_words), pa.string()),
            "facet": pa.array([w.facet for w in vocab.words] * n_images, pa.string()),
            "tag": pa.array([w.tag for w in vocab.words] * n_images, pa.string()),
            "score": pa.array(batch.scores.astype(np.float32).ravel(), pa.float32()),
            "prob": pa.array(batch.probs.astype(np.float32).ravel(), pa.float32()),
            "selected": pa.array(batch.selected.ravel(), pa.bool_()),
            "model_id": repeat(identity.model_id),
            "model_revision": repeat(identity.model_revision),
            "vocab_hash": repeat(identity.vocab_hash),
            "judged": pa.array(np.tile(judged, n_images), pa.bool_()),
            "device": repeat(batch.device),
            "dtype": repeat(identity.dtype),
        },
        schema=TAG_SCHEMA,
    )
