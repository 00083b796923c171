"""The tag stage on Ray Data: the same outputs as the local engine, spread over a cluster.

Split like clip-retrieval's inference, with the pieces of :mod:`alienstay.tagging` reused as
they are, so both engines write byte-compatible shards and the same ``tags.parquet`` and
``embeddings/``:

- **reader**: the pending catalog rows (usable, not yet tagged under these settings) become
  a Ray dataset; CPU tasks decode the prepared JPEGs into pixel tensors (:func:`decode_batch`,
  the local reader's :class:`~alienstay.tagging.PreparedImages`);
- **mapper** (:class:`EncoderActor`): a pool of actors, each loading the encoder ONCE from its
  spec (hub id, local folder or ``offline``, never a pickled model) and running
  :class:`~alienstay.tagging.TagMapper`;
- **writer** (:func:`write_shard_batch`): each output batch becomes one tag shard and one
  embeddings shard in the local writer's layout (atomic, named by catalog positions), so a
  rerun of either engine skips what is done;
- **distributor** (:func:`run_tagging_on_ray`): joins or starts Ray, runs the pipeline,
  then consolidates on the driver with :func:`~alienstay.tagging.consolidate`.

Workers write shards straight into the workspace, so on a cluster the workspace (and a
``--model`` folder) must sit on storage every node can reach.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from alienstay.encoders import ImageTextEncoder, load_encoder, reload_argument
from alienstay.tagging.consolidation import consolidate
from alienstay.tagging.reader import DecodeFailure, PreparedImages, pending_images
from alienstay.tagging.scoring import TaggedBatch, TagMapper, cached_word_embeddings
from alienstay.tagging.settings import TagIdentity, TagSummary
from alienstay.tagging.shards import (
    shard_dirs,
    tagged_ids,
    write_failure_shard,
    write_shard,
)
from alienstay.vocabulary.words import Vocabulary
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace

LOCAL = "local"  # --ray-address: start Ray on this machine
CPUS_PER_ACTOR = 1
# Memory reserved for a decode task: its worker process (torch and the image processor loaded,
# ~600 MiB measured by Ray) and a batch of pixels. Remote args that differ from the actors' also
# keep Ray from fusing decoding into the encoder actors: decoding then runs on other cores while
# the actors encode, as the local engine's DataLoader workers do.
DECODE_TASK_MEMORY = 1024 * 2**20


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached; the message says what to do."""


class EncoderMismatch(RuntimeError):
    """A worker loaded a different model (revision, dtype) than the driver: its tags would not compare."""


# ---- the encoder, by spec --------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSpec:
    """What a worker needs to load the driver's encoder itself: `load_encoder`'s arguments."""

    model: str  # what load_encoder takes: a hub id, an absolute folder, an encoder's name
    device: str = "cpu"
    dtype: str = "float32"

    @classmethod
    def of(cls, encoder: ImageTextEncoder) -> "EncoderSpec":
        # `auto` has already been decided on the driver: workers load what it picked, found
        # through the encoder registry (an absolute path for a folder, a name for packaged weights).
        return cls(reload_argument(encoder), getattr(encoder, "device", "cpu"), getattr(encoder, "dtype", "float32"))

    def load(self) -> ImageTextEncoder:
        return load_encoder(self.model, device=self.device, dtype=self.dtype)


def check_same_model(encoder: ImageTextEncoder, expected: TagIdentity) -> None:
    """Every node must hold the same weights: a hub cache at another commit would mix two models."""
    found = (encoder.revision, getattr(encoder, "dtype", "float32"))
    wanted = (expected.model_revision, expected.dtype)
    if found != wanted:
        raise EncoderMismatch(
            f"a worker loaded {encoder.model_id} at revision/dtype {found}, the driver {wanted}. "
            "Give every node the same snapshot (same HF_HUB_CACHE content, or a --model folder on "
            "shared storage) and rerun: finished shards are kept."
        )


# ---- reader -----------------------------------------------------------------------------------
def pixel_layout(transform) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one transformed photo, so rows that fail to decode can keep the column's shape."""
    probe = transform(Image.new("RGB", (64, 64)))
    return tuple(probe.shape), probe.numpy().dtype


def decode_batch(rows: pd.DataFrame, transform, pixel_shape: tuple[int, ...], pixel_dtype) -> dict[str, np.ndarray]:
    """Catalog rows -> pixels (zeros where decoding failed) and the failure reason ('' when it worked)."""
    torch.set_num_threads(1)  # a decode task owns one core; the encoder actors own the rest
    images = PreparedImages(rows, transform)
    pixels = np.zeros((len(images), *pixel_shape), dtype=pixel_dtype)
    errors = np.full(len(images), "", dtype=object)
    for index in range(len(images)):
        _, _, tensor, failure = images[index]
        if failure is not None:
            errors[index] = failure.reason
        else:
            pixels[index] = tensor.numpy()
    return {
        "position": rows["position"].to_numpy(dtype=np.int64),
        "image_id": rows["image_id"].astype(str).to_numpy(dtype=object),
        "pixels_path": rows["pixels_path"].astype(str).to_numpy(dtype=object),
        "error": errors,
        "pixels": pixels,
    }


# ---- mapper -----------------------------------------------------------------------------------
class EncoderActor:
    """A Ray actor: the encoder loaded once from its spec, then TagMapper on every batch."""

    def __init__(self, spec: EncoderSpec, vocab: Vocabulary, word_embeddings: np.ndarray, identity: TagIdentity):
        encoder = spec.load()
        check_same_model(encoder, identity)
        # load_encoder sizes torch's pool to the whole node; this actor owns only its CPUs.
        torch.set_num_threads(assigned_cpus())
        self.mapper = TagMapper(encoder, vocab, np.array(word_embeddings))  # a writable copy for torch
        self.n_words = len(vocab.words)
        self.dim = int(np.asarray(word_embeddings).shape[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["error"] == ""
        n = len(ok)
        embeddings = np.zeros((n, self.dim), dtype=np.float32)
        scores = np.zeros((n, self.n_words), dtype=np.float32)
        probs = np.zeros((n, self.n_words), dtype=np.float32)
        selected = np.zeros((n, self.n_words), dtype=bool)
        if ok.any():
            tagged = self.mapper(
                batch["image_id"][ok].tolist(), torch.from_numpy(batch["pixels"][ok]), batch["position"][ok].tolist()
            )
            embeddings[ok], scores[ok], probs[ok], selected[ok] = (
                tagged.embeddings, tagged.scores, tagged.probs, tagged.selected
            )
        return {
            "position": batch["position"],
            "image_id": batch["image_id"],
            "pixels_path": batch["pixels_path"],
            "error": batch["error"],
            "embedding": embeddings,
            "score": scores,
            "prob": probs,
            "selected": selected,
            "judged": np.tile(self.mapper.evidence.may_select(self.mapper.vocab), (n, 1)),
            "device": np.full(n, str(getattr(self.mapper.encoder, "device", "cpu"))),
        }


def assigned_cpus() -> int:
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    return max(1, int(cpus))


# ---- writer -----------------------------------------------------------------------------------
def write_shard_batch(
    batch: dict[str, np.ndarray], tags_dir: Path, embeddings_dir: Path, vocab: Vocabulary, identity: TagIdentity
) -> dict[str, np.ndarray]:
    """One batch -> one shard pair (and a failure shard), as the local ShardWriter writes them."""
    ok = batch["error"] == ""
    if ok.any():
        tagged = TaggedBatch(
            positions=batch["position"][ok].tolist(),
            ids=batch["image_id"][ok].tolist(),
            embeddings=batch["embedding"][ok],
            scores=batch["score"][ok],
            probs=batch["prob"][ok],
            selected=batch["selected"][ok].astype(bool),
            judged=batch["judged"][ok][0].astype(bool) if "judged" in batch else None,
            device=str(batch["device"][ok][0]) if "device" in batch else "",
        )
        write_shard(tags_dir, embeddings_dir, [tagged], vocab, identity)
    failures = [
        DecodeFailure(image_id, path, reason)
        for image_id, path, reason in zip(
            batch["image_id"][~ok], batch["pixels_path"][~ok], batch["error"][~ok], strict=True
        )
    ]
    if failures:
        write_failure_shard(tags_dir, failures, identity)
    return {"image_id": batch["image_id"], "tagged": ok}


# ---- distributor ------------------------------------------------------------------------------
@contextlib.contextmanager
def ray_session(address: str | None = LOCAL, num_cpus: int | None = None) -> Iterator[None]:
    """Join a cluster ("auto" or host:port) or start Ray here ("local"); a session already open is reused."""
    import logging

    try:
        import ray
    except ImportError as error:
        raise RayUnavailable("--engine ray needs Ray Data: pip install 'alienstay[ray]'") from error
    if ray.is_initialized():
        yield
        return
    starting_here = address in (None, LOCAL)
    try:
        ray.init(
            address=LOCAL if starting_here else address,
            num_cpus=num_cpus if starting_here else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError as error:
        raise RayUnavailable(
            f"no Ray cluster at --ray-address {address}: start one (`ray start --head` on one machine, "
            "`ray start --address HEAD:6379` on the others) or pass --ray-address local to run Ray here. "
            f"({error})"
        ) from error
    try:
        yield
    finally:
        ray.shutdown()


def default_actors() -> int:
    """Half the cluster's CPUs run encoders, the other half decode photos for them."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus // (2 * CPUS_PER_ACTOR))


def tag_dataset(
    rows: pd.DataFrame,
    encoder: ImageTextEncoder,
    vocab: Vocabulary,
    word_embeddings: np.ndarray,
    identity: TagIdentity,
    ws: Workspace,
    *,
    batch_size: int,
    rows_per_shard: int,
    actors: int,
):
    """The lazy Ray pipeline: pending rows -> decoded pixels -> tags and embeddings -> shards on disk."""
    import ray.data

    transform = encoder.image_transform()
    pixel_shape, pixel_dtype = pixel_layout(transform)
    # Workers run in other folders (or on other machines): paths relative to the driver's folder
    # (a relative --workspace) are made absolute here.
    tags_dir, embeddings_dir = (folder.absolute() for folder in shard_dirs(ws, identity))
    rows = rows.assign(pixels_path=[str(Path(path).absolute()) for path in rows["pixels_path"]])
    # One block a would-be shard, cut here (from_pandas's own splitting breaks on pandas 3 frames).
    blocks = [rows.iloc[start : start + rows_per_shard] for start in range(0, len(rows), rows_per_shard)]
    return (
        ray.data.from_pandas(blocks)
        .map_batches(
            decode_batch,
            batch_format="pandas",
            batch_size=batch_size,
            fn_kwargs={"transform": transform, "pixel_shape": pixel_shape, "pixel_dtype": pixel_dtype},
            num_cpus=1,
            memory=DECODE_TASK_MEMORY,
        )
        .map_batches(
            EncoderActor,
            batch_format="numpy",
            batch_size=batch_size,
            fn_constructor_kwargs={
                "spec": EncoderSpec.of(encoder),
                "vocab": vocab,
                "word_embeddings": word_embeddings,
                "identity": identity,
            },
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=CPUS_PER_ACTOR,
        )
        .map_batches(
            write_shard_batch,
            batch_format="numpy",
            batch_size=rows_per_shard,
            fn_kwargs={"tags_dir": tags_dir, "embeddings_dir": embeddings_dir, "vocab": vocab, "identity": identity},
            num_cpus=0.5,  # mostly waiting on the filesystem
        )
    )


@contextlib.contextmanager
def ordered_quiet_execution() -> Iterator[None]:
    """Blocks stay in catalog order (shards then sort as the local engine's); Ray's own bars make way for ours."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars, context.print_on_execution_start)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        (context.execution_options.preserve_order, context.enable_progress_bars,
         context.print_on_execution_start) = saved


def run_tagging_on_ray(
    ws: Workspace,
    encoder: ImageTextEncoder,
    vocab: Vocabulary,
    *,
    batch_size: int = 32,
    rows_per_shard: int = 512,
    actors: int | None = None,
    ray_address: str | None = LOCAL,
    num_cpus: int | None = None,
    show_progress: bool = True,
) -> TagSummary:
    """The tag stage on Ray: same shards, same tags.parquet and embeddings/ as `tagging.run_tagging`.

    `encoder` is the driver's copy: it fixes the identity, the pixel transform and the cached
    word embeddings; every actor loads its own from the same spec. `ray_address`: "local"
    starts Ray on this machine (`num_cpus` caps it), "auto" or host:port joins a cluster.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    start = time.perf_counter()
    identity = TagIdentity.of(encoder, vocab)
    catalog = ws.read_catalog(columns=list(cat.TAG_INPUT_COLUMNS), status=cat.OK)  # memory flat in catalog size
    done = tagged_ids(ws, identity)
    rows = pending_images(catalog, done)
    usable_ids = set(catalog["image_id"].astype(str))
    del catalog
    word_embeddings = cached_word_embeddings(ws, encoder, vocab)
    tagged = failed = 0
    with ray_session(ray_address, num_cpus):
        actors = actors or default_actors()
        if len(rows):
            columns = (TextColumn("tag on ray"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                       TimeRemainingColumn())
            with ordered_quiet_execution(), Progress(*columns, disable=not show_progress, transient=True) as progress:
                task = progress.add_task("tag", total=len(rows), rate="")
                dataset = tag_dataset(rows, encoder, vocab, word_embeddings, identity, ws,
                                      batch_size=batch_size, rows_per_shard=rows_per_shard, actors=actors)
                for written in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    tagged += int(written["tagged"].sum())
                    failed += int((~written["tagged"]).sum())
                    rate = tagged / max(time.perf_counter() - start, 1e-9)
                    progress.update(task, advance=len(written["tagged"]), rate=f"{rate:.1f} img/s")
    consolidated = consolidate(ws, vocab, identity, keep_ids=usable_ids, load_as=reload_argument(encoder))
    summary = TagSummary(identity, len(usable_ids), len(done & usable_ids), tagged, failed, consolidated,
                         time.perf_counter() - start)
    ws.log_run(
        "tag", **identity.__dict__, engine="ray", ray_address=ray_address, actors=actors, batch_size=batch_size,
        vocabulary=vocab.source, tagged_now=tagged, failed_now=failed, consolidated=consolidated,
    )
    return summary
