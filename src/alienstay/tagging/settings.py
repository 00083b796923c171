"""What the tag stage is asked to do (TagSettings), what makes two runs comparable (TagIdentity), what it did (TagSummary)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from alienstay.encoders import AUTO, ImageTextEncoder
from alienstay.vocabulary.words import Vocabulary


@dataclass(frozen=True)
class TagSettings:
    """The stage's options, as `alienstay tag` takes them."""

    model: str = AUTO  # auto | an encoder's name (hf, offline) | NAME:MODEL | a hub id | a folder
    vocabulary: Path | None = None  # None: the packaged vocabulary
    device: str = AUTO  # auto | cpu | cuda | cuda:N | mps (alienstay.runtime.devices.select_device)
    dtype: str = AUTO  # auto | float32 | bfloat16 | int8 (alienstay.runtime.devices.select_dtype)
    batch_size: int = 0  # 0: by device (alienstay.runtime.devices.batch_size_for: 32 on the CPU, 256 on a GPU)
    workers: int = 1  # processes decoding photos ahead of the model (local engine)
    rows_per_shard: int = 512  # photos per resumable shard
    engine: str = "local"  # an entry of alienstay.tagging.engines.ENGINES
    ray_address: str = "local"  # with engine ray: local | auto | host:port
    ray_actors: int = 0  # with engine ray: encoder actors (0: half the cluster's CPUs)
    show_progress: bool = True
    preset: str | None = None  # with model auto: the preset's tagger (alienstay.runtime.presets); None: auto as it is
    calibration: Path | None = None  # a profile from `alienstay calibrate`; None: the tagger's own (calibration.py)


@dataclass(frozen=True)
class TagIdentity:
    """What makes two tag runs comparable; its key names the shard folder and the text cache."""

    model_id: str
    model_revision: str
    dtype: str
    vocab_hash: str

    @classmethod
    def of(cls, encoder: ImageTextEncoder, vocab: Vocabulary) -> "TagIdentity":
        return cls(encoder.model_id, encoder.revision, getattr(encoder, "dtype", "float32"), vocab.hash)

    @property
    def key(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TagSummary:
    identity: TagIdentity
    images: int  # usable photos in the catalog
    already_done: int
    tagged_now: int
    failed_now: int
    consolidated: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.tagged_now / self.seconds if self.seconds else 0.0
