"""The local engine: reader -> mapper -> writer in this process, then consolidation."""

from __future__ import annotations

import time

from alienstay.encoders import ImageTextEncoder, reload_argument
from alienstay.tagging.consolidation import consolidate
from alienstay.tagging.reader import image_batches, pending_images
from alienstay.tagging.scoring import TagMapper, cached_word_embeddings
from alienstay.tagging.settings import TagIdentity, TagSummary
from alienstay.tagging.shards import ShardWriter, tagged_ids
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace


def run_tagging(
    ws: Workspace,
    encoder: ImageTextEncoder,
    vocab: Vocabulary,
    *,
    batch_size: int = 32,
    workers: int = 1,
    rows_per_shard: int = 512,
    show_progress: bool = True,
) -> TagSummary:
    """Tag every usable photo not yet tagged under these settings, then consolidate."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    start = time.perf_counter()
    identity = TagIdentity.of(encoder, vocab)
    # Only the usable rows and the columns the reader needs: memory flat in catalog size.
    catalog = ws.read_catalog(columns=list(cat.TAG_INPUT_COLUMNS), status=cat.OK)
    done = tagged_ids(ws, identity)
    rows = pending_images(catalog, done)
    usable_ids = set(catalog["image_id"].astype(str))
    del catalog
    mapper = TagMapper(encoder, vocab, cached_word_embeddings(ws, encoder, vocab))
    writer = ShardWriter(ws, vocab, identity, rows_per_shard=rows_per_shard)
    tagged = failed = 0
    columns = (TextColumn("tag"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        task = progress.add_task("tag", total=len(rows), rate="")
        for batch in image_batches(rows, encoder.image_transform(), batch_size=batch_size, workers=workers):
            tagged_batch = mapper(batch.ids, batch.pixels, batch.positions) if batch.pixels is not None else None
            writer.add(tagged_batch, batch.failures)
            tagged += len(batch.ids)
            failed += len(batch.failures)
            rate = tagged / max(time.perf_counter() - start, 1e-9)
            progress.update(task, advance=len(batch.ids) + len(batch.failures), rate=f"{rate:.1f} img/s")
        writer.flush()
    consolidated = consolidate(ws, vocab, identity, keep_ids=usable_ids, load_as=reload_argument(encoder))
    summary = TagSummary(identity, len(usable_ids), len(done & usable_ids), tagged, failed, consolidated,
                         time.perf_counter() - start)
    ws.log_run(
        "tag", **identity.__dict__, device=str(getattr(encoder, "device", "cpu")), batch_size=batch_size, workers=workers, vocabulary=vocab.source,
        tagged_now=tagged, failed_now=failed, consolidated=consolidated,
    )
    return summary
