"""The tag stage's entry point: ``run(ws, TagSettings) -> TagSummary``.

It loads the vocabulary and the encoder (through the encoder registry) and hands them to
an engine: each engine is one entry of :data:`ENGINES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from alienstay.runtime.devices import batch_size_for, probe
from alienstay.runtime.presets import model_for

from alienstay.encoders import AUTO, ImageTextEncoder, load_encoder
from alienstay.tagging.settings import TagSettings, TagSummary
from alienstay.tagging.vocabulary import Vocabulary, load_vocabulary
from alienstay.workspace.layout import Workspace

Engine = Callable[[Workspace, ImageTextEncoder, Vocabulary, TagSettings], TagSummary]


def _local(ws: Workspace, encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> TagSummary:
    from alienstay.tagging.local import run_tagging

    return run_tagging(ws, encoder, vocab, batch_size=settings.batch_size, workers=settings.workers,
                       rows_per_shard=settings.rows_per_shard, show_progress=settings.show_progress)


def _ray(ws: Workspace, encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> TagSummary:
    from alienstay.tagging.ray_engine import run_tagging_on_ray

    return run_tagging_on_ray(ws, encoder, vocab, batch_size=settings.batch_size, rows_per_shard=settings.rows_per_shard,
                              actors=settings.ray_actors or None, ray_address=settings.ray_address,
                              show_progress=settings.show_progress)


ENGINES: dict[str, Engine] = {"local": _local, "ray": _ray}


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r}: use {' or '.join(ENGINES)}.")


def run(ws: Workspace, settings: TagSettings, encoder: ImageTextEncoder | None = None) -> TagSummary:
    """Tag every usable photo not yet tagged under these settings; resumes where a killed run stopped.

    Raises VocabularyError, ModelUnavailable or ValueError (bad settings) before any photo is
    read, and RayUnavailable for the ray engine without Ray. `encoder`: one already loaded
    (tests, the notebook) instead of `settings.model`.
    """
    check_engine(settings.engine)
    vocab = load_vocabulary(settings.vocabulary)
    if encoder is None:
        encoder = load_encoder(tagger_model(settings), device=settings.device, dtype=settings.dtype)
    if settings.calibration is not None:
        use_calibration(encoder, vocab, settings)
    if not settings.batch_size:
        device = str(getattr(encoder, "device", "cpu"))
        settings = replace(settings, batch_size=batch_size_for(device, probe()))
    return ENGINES[settings.engine](ws, encoder, vocab, settings)


def use_calibration(encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> None:
    """Apply `--calibration FILE`; the Ray engine reloads encoders on its workers, so it cannot carry one."""
    from alienstay.labelled.calibration import apply_profile, load_profile

    if settings.engine != "local":
        raise ValueError("--calibration works with the local engine: drop --engine ray, or tag without a profile.")
    apply_profile(encoder, load_profile(settings.calibration), vocab, str(settings.calibration))


def tagger_model(settings: TagSettings) -> str:
    """`--model auto` with a preset: the preset's tagger; anything else as given."""
    if settings.preset is None or settings.model != AUTO:
        return settings.model
    member = model_for(settings.preset, "tagger")
    return member.model if member is not None else settings.model
