"""Stage `tag`: tag every usable photo with the alien words (zero-shot); resumes a killed run.

It checks there are usable photos before any model loads, loads the vocabulary and the
encoder (through the encoder registry), hands them to an engine (``tagging.engines.ENGINES``)
under the workspace lock, and builds the gallery's word index from the tags.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from alienstay.encoders import AUTO, ImageTextEncoder, load_encoder
from alienstay.runtime.devices import batch_size_for, probe
from alienstay.runtime.presets import model_for
from alienstay.tagging.engines import ENGINES
from alienstay.tagging.settings import TagSettings, TagSummary
from alienstay.vocabulary.words import Vocabulary, load_vocabulary
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace, WorkspaceError

__all__ = ["TagSettings", "TagSummary", "require_usable_photos", "run", "tagger_model"]


def run(ws: Workspace, settings: TagSettings = TagSettings(), *, encoder: ImageTextEncoder | None = None) -> TagSummary:
    """Tag every usable photo not yet tagged under these settings; resumes where a killed run stopped.

    Raises ValueError (bad engine/dtype), VocabularyError, ModelUnavailable before any photo is
    read, and RayUnavailable for the ray engine without Ray. `encoder`: one already loaded (tests,
    the notebook) instead of `settings.model`.
    """
    ENGINES.get(settings.engine)  # a wrong --engine is refused before anything else
    with ws.ensure().lock("tag"):  # a damaged tagged/current.json names the newest whole generation again
        repaired = ws.repair_tag_manifest()
    if repaired is not None:
        print(f"repaired {ws.tag_manifest_path}: it names generation {repaired} again", file=sys.stderr)
    ws.check_tables("catalog", "tags")  # a damaged input is named before any model loads
    require_usable_photos(ws)
    vocab = load_vocabulary(settings.vocabulary)
    if encoder is None:
        encoder = load_encoder(tagger_model(settings), device=settings.device, dtype=settings.dtype)
    if settings.calibration is not None:
        use_calibration(encoder, vocab, settings)
    if not settings.batch_size:
        settings = replace(settings, batch_size=batch_size_for(str(getattr(encoder, "device", "cpu")), probe()))
    from alienstay.wordindex.build import build_word_index

    with ws.lock("tag"):
        summary = ENGINES.get(settings.engine).run(ws, encoder, vocab, settings)
        build_word_index(ws)  # the gallery's word search (the gallery also rebuilds it if tags.parquet changes)
        return summary


def require_usable_photos(ws: Workspace) -> None:
    """Stop before loading any model when no photo is usable, saying which step to look at."""
    catalog = ws.read_catalog(columns=["status"])  # one column: cheap on a large catalog
    if not cat.usable(catalog).empty:
        return
    statuses = catalog["status"].value_counts().to_dict()
    if statuses.get(cat.NEW):
        raise WorkspaceError(f"no usable photos yet ({statuses}): run `alienstay preprocess --workspace {ws.root}` first.")
    raise WorkspaceError(
        f"preprocess kept no photo ({statuses}): the reasons are in the `reason` column of "
        f"{ws.catalog_path}; add readable photos and run `alienstay ingest` and `preprocess` again."
    )


def use_calibration(encoder: ImageTextEncoder, vocab: Vocabulary, settings: TagSettings) -> None:
    """Apply `--calibration FILE`; the Ray engine reloads encoders on its workers, so it cannot carry one."""
    from alienstay.vocabulary.profile import apply_profile, load_profile

    if settings.engine != "local":
        raise ValueError("--calibration works with the local engine: drop --engine ray, or tag without a profile.")
    apply_profile(encoder, load_profile(settings.calibration), vocab, str(settings.calibration))


def tagger_model(settings: TagSettings) -> str:
    """`--model auto` with a preset: the preset's tagger; anything else as given."""
    if settings.preset is None or settings.model != AUTO:
        return settings.model
    member = model_for(settings.preset, "tagger")
    return member.model if member is not None else settings.model
