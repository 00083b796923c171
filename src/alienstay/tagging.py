"""The tag stage: photos -> image embeddings -> scores against the vocabulary -> tags.

Split like clip-retrieval's inference so the same parts run locally or on Ray:

- **reader**: catalog rows -> batches of pixel tensors (a torch DataLoader whose worker
  processes decode the prepared JPEGs while the model runs), skipping photos already tagged;
- **mapper** (:class:`TagMapper`): (ids, pixels) -> embeddings, cosine scores, per-facet
  probabilities and the selected tags;
- **writer** (:class:`ShardWriter`, :func:`consolidate`): each group of batches becomes one
  tag shard and one embeddings shard, written atomically; at the end the shards of the
  current settings are consolidated into ``tags.parquet`` and ``embeddings/``;
- **distributor** (:func:`run_tagging`): the local loop that runs the three.

Resume: shards live in a folder keyed by (model, revision, dtype, vocabulary hash). A rerun
after a kill reads the shards already there, tags only the missing photos and consolidates
everything: the result equals an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image

from alienstay import catalog as cat
from alienstay.encoders import ImageTextEncoder
from alienstay.vocabulary import Vocabulary
from alienstay.workspace import Workspace, atomic_path, write_json, write_parquet

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
    ]
)
FAILURE_COLUMNS = ["image_id", "path", "reason", "model_id", "vocab_hash"]


# ---- settings ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TagSettings:
    """What makes two tag runs comparable; its key names the shard folder and the text cache."""

    model_id: str
    model_revision: str
    dtype: str
    vocab_hash: str

    @classmethod
    def of(cls, encoder: ImageTextEncoder, vocab: Vocabulary) -> "TagSettings":
        return cls(encoder.model_id, encoder.revision, getattr(encoder, "dtype", "float32"), vocab.hash)

    @property
    def key(self) -> str:
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    path = ws.text_embeddings_cache_path(TagSettings.of(encoder, vocab).key)
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


def select_tags(probs: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Per facet: the top_k words by probability, each only if it reaches min_prob (ties: vocabulary order)."""
    probs = np.asarray(probs)
    selected = np.zeros(probs.shape, dtype=bool)
    rows = np.arange(probs.shape[0])[:, None]
    for name, part in vocab.facet_slices().items():
        facet = vocab.facets[name]
        block = probs[:, part]
        ranked = np.argsort(-block, axis=1, kind="stable")[:, : facet.top_k]
        chosen = np.zeros(block.shape, dtype=bool)
        chosen[rows, ranked] = True
        selected[:, part] = chosen & (block >= facet.min_prob)
    return selected


# ---- reader ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodeFailure:
    image_id: str
    path: str
    reason: str


class PreparedImages(torch.utils.data.Dataset):
    """Catalog rows -> (position, image_id, pixels or None, DecodeFailure or None); runs in worker processes."""

    def __init__(self, rows: pd.DataFrame, transform) -> None:
        self.positions = rows["position"].to_numpy()
        self.ids = rows["image_id"].astype(str).tolist()
        self.paths = rows["pixels_path"].astype(str).tolist()
        self.transform = transform
        # The JPEG decoder can scale by 1/2, 1/4, 1/8 while decoding (never below the size
        # asked for): a 640 px photo the model sees at 224 px decodes at 320 px, far cheaper.
        self.draft_side = getattr(transform, "input_size", 0) or None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_id, path = self.ids[index], self.paths[index]
        try:
            with Image.open(path) as image:
                if self.draft_side:
                    image.draft("RGB", (self.draft_side, self.draft_side))
                pixels = self.transform(image.convert("RGB"))
        except Exception as error:  # noqa: BLE001 - one bad photo must not stop the run
            return int(self.positions[index]), image_id, None, DecodeFailure(
                image_id, path, f"{type(error).__name__}: {error}"[:300]
            )
        return int(self.positions[index]), image_id, pixels, None


@dataclass
class ImageBatch:
    positions: list[int]
    ids: list[str]
    pixels: torch.Tensor | None  # (B, 3, H, W); None when every photo of the batch failed
    failures: list[DecodeFailure] = field(default_factory=list)


def collate_images(items: list) -> ImageBatch:
    ok = [item for item in items if item[2] is not None]
    failures = [item[3] for item in items if item[2] is None]
    return ImageBatch(
        positions=[item[0] for item in ok],
        ids=[item[1] for item in ok],
        pixels=torch.stack([item[2] for item in ok]) if ok else None,
        failures=failures,
    )


def _single_thread_worker(_: int) -> None:
    # Workers only decode and resize; the main process's threads belong to the model.
    torch.set_num_threads(1)


def pending_images(catalog: pd.DataFrame, done_ids: Iterable[str]) -> pd.DataFrame:
    """Usable catalog rows not yet tagged, with their catalog position and the file to read pixels from."""
    rows = cat.usable(catalog)
    rows = rows.assign(position=np.arange(len(rows)))
    prepared = rows["prepared_path"].astype("string")
    # prepared_path is the agreed input; the original is a fallback for catalogs made without preprocess.
    rows["pixels_path"] = prepared.where(prepared.notna() & (prepared != ""), rows["path"].astype("string"))
    done = set(done_ids)
    if done:
        rows = rows[~rows["image_id"].astype(str).isin(done)]
    return rows[["position", "image_id", "pixels_path"]].reset_index(drop=True)


def image_batches(rows: pd.DataFrame, transform, batch_size: int = 32, workers: int = 1) -> Iterator[ImageBatch]:
    """The reader: pixel batches in catalog order, decoded ahead by `workers` processes."""
    loader = torch.utils.data.DataLoader(
        PreparedImages(rows, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_images,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    yield from loader


# ---- mapper -----------------------------------------------------------------------------------
@dataclass
class TaggedBatch:
    positions: list[int]
    ids: list[str]
    embeddings: np.ndarray  # (B, D) float32, L2-normalised
    scores: np.ndarray  # (B, W) cosine
    probs: np.ndarray  # (B, W) softmax within each facet
    selected: np.ndarray  # (B, W) bool


class TagMapper:
    """(ids, pixel batch) -> TaggedBatch. Holds the encoder and the cached word embeddings."""

    def __init__(self, encoder: ImageTextEncoder, vocab: Vocabulary, word_embeddings: np.ndarray) -> None:
        self.encoder = encoder
        self.vocab = vocab
        self.word_embeddings = torch.from_numpy(np.ascontiguousarray(word_embeddings, dtype=np.float32))

    def __call__(self, ids: list[str], pixels: torch.Tensor, positions: list[int] | None = None) -> TaggedBatch:
        embeddings = self.encoder.encode_images(pixels).float()
        scores = (embeddings @ self.word_embeddings.T).numpy()
        probs = facet_probabilities(scores, self.vocab, self.encoder.logit_scale)
        return TaggedBatch(
            positions=list(positions) if positions is not None else list(range(len(ids))),
            ids=list(ids),
            embeddings=embeddings.numpy(),
            scores=scores,
            probs=probs,
            selected=select_tags(probs, self.vocab),
        )


def tag_rows(batch: TaggedBatch, vocab: Vocabulary, settings: TagSettings) -> pa.Table:
    """One row per (image, word) in the agreed tags.parquet format."""
    n_images, n_words = len(batch.ids), len(vocab.words)
    repeat = lambda value: pa.array([value] * (n_images * n_words), pa.string())  # noqa: E731
    return pa.table(
        {
            "image_id": pa.array(np.repeat(np.asarray(batch.ids, dtype=object), n_words), pa.string()),
            "facet": pa.array([w.facet for w in vocab.words] * n_images, pa.string()),
            "tag": pa.array([w.tag for w in vocab.words] * n_images, pa.string()),
            "score": pa.array(batch.scores.astype(np.float32).ravel(), pa.float32()),
            "prob": pa.array(batch.probs.astype(np.float32).ravel(), pa.float32()),
            "selected": pa.array(batch.selected.ravel(), pa.bool_()),
            "model_id": repeat(settings.model_id),
            "model_revision": repeat(settings.model_revision),
            "vocab_hash": repeat(settings.vocab_hash),
        },
        schema=TAG_SCHEMA,
    )


# ---- writer ------------------------------------------------------------------------------------
def shard_dirs(ws: Workspace, settings: TagSettings) -> tuple[Path, Path]:
    """Shards of one setting live together, so a rerun with other settings never mixes with them."""
    return ws.tag_shards_dir / settings.key, ws.embeddings_dir / "shards" / settings.key


class ShardWriter:
    """Buffers tagged batches and writes them as one shard every `rows_per_shard` images.

    A shard is a pair: ``<name>.parquet`` (tags) and ``<name>.npz`` (fp16 embeddings), named
    by the catalog positions it covers so shards sort into catalog order. The embeddings go
    first: a tag shard on disk means its photos are done.
    """

    def __init__(self, ws: Workspace, vocab: Vocabulary, settings: TagSettings, rows_per_shard: int = 512) -> None:
        self.vocab = vocab
        self.settings = settings
        self.rows_per_shard = rows_per_shard
        self.tags_dir, self.embeddings_dir = shard_dirs(ws, settings)
        self.pending: list[TaggedBatch] = []
        self.failures: list[DecodeFailure] = []
        self.shards_written = 0

    def add(self, batch: TaggedBatch | None, failures: Iterable[DecodeFailure] = ()) -> None:
        if batch is not None and batch.ids:
            self.pending.append(batch)
        self.failures.extend(failures)
        if sum(len(b.ids) for b in self.pending) >= self.rows_per_shard:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            write_shard(self.tags_dir, self.embeddings_dir, self.pending, self.vocab, self.settings)
            self.shards_written += 1
        if self.failures:
            write_failure_shard(self.tags_dir, self.failures, self.settings)
        self.pending, self.failures = [], []


def shard_name(positions: list[int]) -> str:
    return f"part-{min(positions):09d}-{max(positions):09d}"


def write_shard(
    tags_dir: Path, embeddings_dir: Path, batches: list[TaggedBatch], vocab: Vocabulary, settings: TagSettings
) -> str:
    positions = [p for b in batches for p in b.positions]
    name = shard_name(positions)
    with atomic_path(embeddings_dir / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            ids=np.asarray([i for b in batches for i in b.ids], dtype=str),
            embeddings=np.concatenate([b.embeddings for b in batches]).astype(np.float16),
        )
    table = pa.concat_tables([tag_rows(b, vocab, settings) for b in batches])
    with atomic_path(tags_dir / f"{name}.parquet") as tmp:
        pq.write_table(table, tmp)
    return name


def write_failure_shard(tags_dir: Path, failures: list[DecodeFailure], settings: TagSettings) -> None:
    frame = pd.DataFrame(
        [
            {"image_id": f.image_id, "path": f.path, "reason": f.reason, "model_id": settings.model_id,
             "vocab_hash": settings.vocab_hash}
            for f in failures
        ],
        columns=FAILURE_COLUMNS,
    )
    write_parquet(frame, tags_dir / "failures" / f"failed-{time.time_ns()}-{os.getpid()}.parquet")


def tag_shards(tags_dir: Path) -> list[Path]:
    return sorted(tags_dir.glob("part-*.parquet"))


def tagged_ids(ws: Workspace, settings: TagSettings) -> set[str]:
    """Photos already tagged under these settings (their tag shard is on disk)."""
    done: set[str] = set()
    for shard in tag_shards(shard_dirs(ws, settings)[0]):
        ids = pq.read_table(shard, columns=["image_id"]).column("image_id")
        done.update(pc.unique(ids).to_pylist())
    return done


def consolidate(ws: Workspace, vocab: Vocabulary, settings: TagSettings, keep_ids: set[str] | None = None) -> int:
    """Shards (in catalog order) -> tags.parquet + embeddings/; streaming, so memory stays flat.

    Only photos in `keep_ids` (the usable catalog) are kept, each once; returns how many.
    """
    tags_dir, embeddings_dir = shard_dirs(ws, settings)
    plan = consolidation_plan(tags_dir, embeddings_dir, keep_ids)
    kept_ids = [ids[i] for _, ids, keep in plan for i in keep]
    dim = write_embedding_matrix(ws.embeddings_matrix_path, embeddings_dir, plan)
    with atomic_path(ws.tags_path) as tmp, pq.ParquetWriter(tmp, TAG_SCHEMA) as writer:
        for shard, ids, keep in plan:
            table = pq.read_table(shard).cast(TAG_SCHEMA)
            if len(keep) < len(ids):
                wanted = pa.array([ids[i] for i in keep], pa.string())
                table = table.filter(pc.is_in(table.column("image_id"), value_set=wanted))
            writer.write_table(table)
    write_parquet(pd.DataFrame({"image_id": pd.Series(kept_ids, dtype="string")}), ws.embeddings_ids_path)
    meta = {**settings.__dict__, "dim": dim, "count": len(kept_ids), "stored_as": "float16"}
    write_json(meta, ws.embeddings_meta_path)
    _consolidate_failures(ws, tags_dir, set(kept_ids))
    return len(kept_ids)


def consolidation_plan(
    tags_dir: Path, embeddings_dir: Path, keep_ids: set[str] | None
) -> list[tuple[Path, list[str], list[int]]]:
    """For each tag shard in catalog order: its ids and the row indices to keep (first sighting, still usable)."""
    plan, seen = [], set()
    for shard in tag_shards(tags_dir):
        ids = np.load(embeddings_dir / f"{shard.stem}.npz")["ids"].tolist()
        keep = [i for i, image_id in enumerate(ids) if image_id not in seen and (keep_ids is None or image_id in keep_ids)]
        seen.update(ids[i] for i in keep)
        if keep:
            plan.append((shard, ids, keep))
    return plan


def write_embedding_matrix(target: Path, embeddings_dir: Path, plan: list) -> int:
    """The kept rows of every embeddings shard into one fp16 .npy, written in place (memory map)."""
    total = sum(len(keep) for _, _, keep in plan)
    dim = int(np.load(embeddings_dir / f"{plan[0][0].stem}.npz")["embeddings"].shape[1]) if plan else 0
    with atomic_path(target) as tmp:
        if total == 0:  # a memory map cannot be empty
            with open(tmp, "wb") as handle:
                np.save(handle, np.zeros((0, dim), dtype=np.float16))
            return dim
        matrix = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(total, dim))
        row = 0
        for shard, _, keep in plan:
            matrix[row : row + len(keep)] = np.load(embeddings_dir / f"{shard.stem}.npz")["embeddings"][keep]
            row += len(keep)
        matrix.flush()
        del matrix
    return dim


def _consolidate_failures(ws: Workspace, tags_dir: Path, tagged: set[str]) -> None:
    parts = sorted((tags_dir / "failures").glob("failed-*.parquet"))
    frames = [pd.read_parquet(p) for p in parts]
    failures = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FAILURE_COLUMNS)
    # A photo that failed once and decoded on a later run is not a failure any more.
    failures = failures[~failures["image_id"].isin(tagged)].drop_duplicates("image_id", keep="last")
    write_parquet(failures.reset_index(drop=True), ws.tag_failures_path)


def read_embeddings(ws: Workspace) -> tuple[list[str], np.ndarray, dict]:
    """(ids, (N, D) float32 L2-normalised embeddings, meta: model id, revision, vocab hash...)."""
    if not ws.embeddings_matrix_path.exists():
        ws.read_table(ws.embeddings_ids_path, "tag")  # raises the error that says which command makes it
    ids = pd.read_parquet(ws.embeddings_ids_path)["image_id"].astype(str).tolist()
    matrix = np.load(ws.embeddings_matrix_path).astype(np.float32)
    # fp16 storage loses a little norm; re-normalise so cosine stays a dot product.
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix /= np.where(norms > 0, norms, 1.0)
    meta = json.loads(ws.embeddings_meta_path.read_text(encoding="utf-8"))
    return ids, matrix, meta


# ---- distributor (local) -----------------------------------------------------------------------
@dataclass
class TagSummary:
    settings: TagSettings
    images: int  # usable photos in the catalog
    already_done: int
    tagged_now: int
    failed_now: int
    consolidated: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.tagged_now / self.seconds if self.seconds else 0.0


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
    """The stage: tag every usable photo not yet tagged under these settings, then consolidate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    start = time.perf_counter()
    settings = TagSettings.of(encoder, vocab)
    catalog = ws.read_catalog()
    done = tagged_ids(ws, settings)
    rows = pending_images(catalog, done)
    usable_ids = set(cat.usable(catalog)["image_id"].astype(str))
    mapper = TagMapper(encoder, vocab, cached_word_embeddings(ws, encoder, vocab))
    writer = ShardWriter(ws, vocab, settings, rows_per_shard=rows_per_shard)
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
    consolidated = consolidate(ws, vocab, settings, keep_ids=usable_ids)
    summary = TagSummary(settings, len(usable_ids), len(done & usable_ids), tagged, failed, consolidated,
                         time.perf_counter() - start)
    ws.log_run(
        "tag", **settings.__dict__, batch_size=batch_size, workers=workers, vocabulary=vocab.source,
        tagged_now=tagged, failed_now=failed, consolidated=consolidated,
    )
    return summary
