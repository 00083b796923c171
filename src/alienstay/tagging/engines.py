"""Where the tag stage's reader -> mapper -> writer runs: one registry entry an engine (``ENGINES``).

Both engines produce the same shards and the same consolidated outputs; they differ only in
where the batches are decoded and scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alienstay.encoders import ImageTextEncoder
from alienstay.runtime.registry import Registry
from alienstay.tagging.settings import TagSettings, TagSummary
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace.layout import Workspace

RunEngine = Callable[[Workspace, ImageTextEncoder, Vocabulary, TagSettings], TagSummary]


@dataclass(frozen=True)
class EngineSpec:
    """A tag engine: ``run(ws, encoder, vocab, settings) -> TagSummary``."""

    name: str  # what `--engine` says
    run: RunEngine
    description: str
    needs: tuple[str, ...] = ()  # the alienstay extras it needs (`pip install 'alienstay[EXTRA]'`)


def _local(ws: Workspace, encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> TagSummary:
    from alienstay.tagging.local import run_tagging

    return run_tagging(ws, encoder, vocab, batch_size=settings.batch_size, workers=settings.workers,
                       rows_per_shard=settings.rows_per_shard, show_progress=settings.show_progress)


def _ray(ws: Workspace, encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> TagSummary:
    from alienstay.tagging.ray_engine import run_tagging_on_ray

    return run_tagging_on_ray(ws, encoder, vocab, batch_size=settings.batch_size, rows_per_shard=settings.rows_per_shard,
                              actors=settings.ray_actors or None, ray_address=settings.ray_address,
                              show_progress=settings.show_progress)


ENGINES: Registry[EngineSpec] = Registry("tag engine", group="alienstay.tag_engines")
ENGINES.register(EngineSpec("local", _local, "this process: a DataLoader decodes while the model scores"))
ENGINES.register(EngineSpec("ray", _ray, "Ray Data: decoding and scoring spread over a cluster's workers", needs=("ray",)))
