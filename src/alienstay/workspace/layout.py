"""The workspace: one folder a run. The only module that knows file names.

Every stage reads its inputs from here and writes its outputs here, each write atomic
(a temporary name in the same folder, then ``os.replace``), so an interrupted stage never
leaves a half-written table behind and any stage can be inspected with pandas or DuckDB.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_WORKSPACE = Path("runs/default")
CATALOG_PATH_COLUMNS = ("path", "prepared_path")
GENERATION = re.compile(r"g\d{20}-\d+")  # a tag generation's folder name (new_tag_outputs): never a path
EDIT_PATH_COLUMNS = ("output_path", "source_path")


# The file primitives and a tag generation's file set live in storage.py; re-exported here, where every stage imports them.
from alienstay.workspace.storage import (  # noqa: E402, F401
    MADE_BY_FILE,
    TABLES,
    DamagedTable,
    TagOutputs,
    WorkspaceError,
    atomic_path,
    damage_message,
    generation_outputs,
    read_optional,
    read_parquet,
    save_figure,
    write_json,
    write_parquet,
    write_text,
)  # fmt: skip


@dataclass(frozen=True)
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        # Absolute, so the paths handed to stages work from any working directory (the
        # gallery, the notebook's kernel and Ray workers do not share the CLI's).
        object.__setattr__(self, "root", Path(self.root).resolve())

    # ---- file names: the data flow, one name a stage output -------------------------
    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.parquet"

    @property
    def images_dir(self) -> Path:
        """Downloaded originals (Hotels-50K), in the official layout."""
        return self.root / "images"

    @property
    def prepared_dir(self) -> Path:
        """Decoded, oriented, RGB, size-capped copies that every later stage reads."""
        return self.root / "prepared"

    @property
    def metadata_path(self) -> Path:
        """Full Hotels-50K metadata (all rows, not only the sampled ones), for the dataset note."""
        return self.root / "hotels50k_metadata.parquet"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def tag_shards_dir(self) -> Path:
        return self.root / "tags"

    def text_embeddings_cache_path(self, key: str) -> Path:
        """Vocabulary text embeddings, keyed by (model, revision, dtype, vocabulary hash)."""
        return self.cache_dir / f"text-embeddings-{key}.npy"

    @property
    def captions_path(self) -> Path:
        return self.root / "captions.parquet"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def clusters_path(self) -> Path:
        """One row a photo: the primary clustering (what the gallery and the edit series use)."""
        return self.root / "clusters.parquet"

    @property
    def cluster_methods_path(self) -> Path:
        """Same columns as clusters.parquet, one row a (photo, method): every method compared."""
        return self.root / "clusters_all_methods.parquet"

    @property
    def edits_dir(self) -> Path:
        return self.root / "edits"

    @property
    def edits_path(self) -> Path:
        return self.root / "edits.parquet"

    @property
    def persona_dir(self) -> Path:
        return self.root / "persona"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def runs_log_path(self) -> Path:
        return self.root / "runs.jsonl"

    # ---- tables ---------------------------------------------------------------------
    def ensure(self) -> "Workspace":
        self.root.mkdir(parents=True, exist_ok=True)
        return self

    def read_table(self, path: Path, made_by: str, columns: list[str] | None = None, filters: list | None = None) -> pd.DataFrame:
        if not path.exists():
            raise WorkspaceError(
                f"{path} does not exist yet: run `alienstay {made_by} --workspace {self.root}` first."
            )
        return read_parquet(path, columns=columns, made_by=made_by, filters=filters, root=self.root)

    # ---- tables by name: one `require`, one damage check ------------------------------
    def table_path(self, table: str) -> Path:
        return getattr(self, TABLES[table][0])

    def require(self, table: str) -> Path:
        """The table's path; WorkspaceError naming the stage to run when it is not there yet."""
        path = self.table_path(table)
        if not path.exists():
            raise WorkspaceError(
                f"{path} does not exist yet: run `alienstay {TABLES[table][1]} --workspace {self.root}` first."
            )
        return path

    def read(self, table: str, columns: list[str] | None = None, optional: bool = False) -> pd.DataFrame | None:
        """A table by name: None for a missing optional one, WorkspaceError/DamagedTable otherwise."""
        path = self.table_path(table)
        if optional and not path.exists():
            return None
        return read_parquet(self.require(table), columns=columns, made_by=TABLES[table][1], root=self.root)

    def damaged(self, *tables: str) -> dict[str, str]:
        """Each table (default: all) that exists but cannot be read: name -> what is wrong, how to restore it."""
        import pyarrow.parquet as pq

        found = {}
        for name in tables or TABLES:
            try:
                path = self.table_path(name)  # the tag tables' path reads the manifest, which may be damaged
            except DamagedTable as error:
                found[name] = str(error)
                continue
            try:
                if path.exists():
                    pq.read_metadata(path)  # the footer: a cut or overwritten file fails here
            except Exception as error:  # noqa: BLE001 - any failure to read is damage to report
                found[name] = damage_message(path, error, TABLES[name][1], self.root)
        if "embedding_ids" in (tables or TABLES) and "embedding_ids" not in found:
            from alienstay.workspace.embeddings import Vectors

            try:  # the ids with their matrix and meta.json: one set, checked together
                Vectors.open(self)
            except DamagedTable as error:
                found["embedding_ids"] = str(error)
        return found

    def check_tables(self, *tables: str) -> None:
        """Raise DamagedTable for the first damaged one of ``tables`` (default: all): a stage's inputs."""
        for message in self.damaged(*tables).values():
            raise DamagedTable(message)

    def read_clusters(self, optional: bool = False) -> pd.DataFrame | None:
        return self.read("clusters", optional=optional)

    def write_clusters(self, primary: pd.DataFrame, every_method: pd.DataFrame | None = None) -> Path:
        if every_method is not None:
            write_parquet(every_method, self.ensure().cluster_methods_path)
        return write_parquet(primary, self.ensure().clusters_path)

    def read_captions(self, optional: bool = True) -> pd.DataFrame | None:
        return self.read("captions", optional=optional)

    def write_captions(self, captions: pd.DataFrame) -> Path:
        return write_parquet(captions, self.ensure().captions_path)

    def read_catalog(self, columns: list[str] | None = None, status: str | None = None) -> pd.DataFrame:
        """The catalog; ``columns`` and ``status`` read only what a stage needs, so its memory
        stays small on a large catalog (the filter runs in Arrow, before any pandas row exists)."""
        filters = [("status", "==", status)] if status is not None else None
        catalog = self.read_table(self.catalog_path, "ingest folder DIR", columns=columns, filters=filters)
        return self.located(catalog, CATALOG_PATH_COLUMNS)

    def write_catalog(self, catalog: pd.DataFrame) -> Path:
        return write_parquet(self.stored(catalog, CATALOG_PATH_COLUMNS), self.ensure().catalog_path)

    def read_edits(self) -> pd.DataFrame | None:
        edits = self.read("edits", optional=True)
        return None if edits is None else self.located(edits, EDIT_PATH_COLUMNS)

    def write_edits(self, edits: pd.DataFrame) -> Path:
        return write_parquet(self.stored(edits, EDIT_PATH_COLUMNS), self.ensure().edits_path)

    # ---- paths in tables: relative inside the workspace, so the folder can be moved ----
    def stored(self, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        """Paths under the workspace written relative to it; others (a photo folder) stay absolute."""
        prefix = f"{self.root}{os.sep}"
        changed = {}
        for column in (c for c in columns if c in frame.columns):
            values = frame[column].astype("string")
            inside = values.str.startswith(prefix).fillna(False).to_numpy(dtype=bool)
            changed[column] = values.where(~inside, values.str.slice(len(prefix)))
        # assign: a new frame sharing the untouched columns (copy-on-write), not a deep copy of
        # every column on each catalog write (memory flat in catalog size, issue 16.10).
        return frame.assign(**changed)

    def located(self, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        """The inverse of ``stored``: every path absolute again, under wherever the workspace is now."""
        prefix = f"{self.root}{os.sep}"
        for column in (c for c in columns if c in frame.columns):
            values = frame[column].astype("string")
            absolute = values.str.startswith(os.sep).fillna(True).to_numpy(dtype=bool)
            empty = (values == "").fillna(True).to_numpy(dtype=bool)
            frame[column] = values.where(absolute | empty, prefix + values)
        return frame

    # ---- the tag stage's outputs: one generation at a time ---------------------------
    # tags.parquet, the embeddings (matrix, ids, meta) and tag_failures.parquet are one set:
    # consolidation writes a new set into a fresh folder tagged/<generation>/ and then, last,
    # the small manifest tagged/current.json naming it (one atomic rename). A reader reads
    # the manifest once and every file from that folder, so it sees the old set or the new
    # one, never a mix, whichever write a kill interrupts.
    @property
    def tagged_dir(self) -> Path:
        return self.root / "tagged"

    @property
    def tag_manifest_path(self) -> Path:
        return self.tagged_dir / "current.json"

    def tag_outputs(self) -> "TagOutputs":
        """The current set's paths, from one read of the manifest (files at their pre-generation
        places in a workspace written before generations, or one with no tag run yet).

        A manifest that cannot be read, names no generation or a folder that is not there raises
        DamagedTable naming it and the repair (`alienstay tag` rebuilds it from the generations on disk)."""
        try:
            text = self.tag_manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return TagOutputs(self.root / "tags.parquet", self.embeddings_dir / "embeddings.npy",
                              self.embeddings_dir / "ids.parquet", self.embeddings_dir / "meta.json",
                              self.root / "tag_failures.parquet", None)
        except OSError as error:
            raise self._damaged_manifest(f"{type(error).__name__}: {error.strerror or error}") from None
        try:
            record = json.loads(text)
        except ValueError:
            raise self._damaged_manifest("not JSON: cut short or overwritten") from None
        generation = record.get("generation") if isinstance(record, dict) else None
        if not isinstance(generation, str) or not GENERATION.fullmatch(generation):
            raise self._damaged_manifest("it names no tag generation")
        outputs = generation_outputs(self.tagged_dir, generation)
        if not os.path.isdir(outputs.tags.parent):
            raise self._damaged_manifest(f"its generation {generation} is not in tagged/")
        return outputs

    def _damaged_manifest(self, reason: str) -> DamagedTable:
        fix = (f"run `alienstay tag --workspace {self.root}`, which rebuilds it from the generations on disk "
               "(and tags nothing it has already tagged)")
        return DamagedTable.of(self.tag_manifest_path, reason, "tag", self.root, fix)

    def complete_generations(self) -> list[str]:
        """Generation folders holding every file of a tag set, newest first (what a manifest may name)."""
        names = sorted((p.name for p in self.tagged_dir.glob("g*") if GENERATION.fullmatch(p.name)), reverse=True)
        return [n for n in names if all(f.is_file() for f in TagOutputs.inside(self.tagged_dir / n, n).files())]

    def repair_tag_manifest(self) -> str | None:
        """A damaged tagged/current.json rewritten to name the newest complete generation on disk;
        the generation it now names (None: nothing to repair, or no complete generation to name)."""
        try:
            self.tag_outputs()
            return None
        except DamagedTable:
            pass
        for generation in self.complete_generations():
            write_json({"generation": generation, "repaired": True}, self.tag_manifest_path)
            return generation
        self.tag_manifest_path.unlink(missing_ok=True)  # nothing to name: the next consolidation writes it
        return None

    def new_tag_outputs(self) -> "TagOutputs":
        """A fresh, empty generation folder: invisible to readers until publish_tag_outputs."""
        generation = f"g{time.time_ns():020d}-{os.getpid()}"
        (self.tagged_dir / generation).mkdir(parents=True)
        return TagOutputs.inside(self.tagged_dir / generation, generation)

    def publish_tag_outputs(self, outputs: "TagOutputs", **summary: Any) -> None:
        """Make `outputs` the current set in one step; the previous set is kept (a reader may be
        in it), older ones and the pre-generation files are removed."""
        self.repair_tag_manifest()  # a damaged manifest is replaced, not a reason to fail a finished run
        previous = self.tag_outputs()
        write_json({"generation": outputs.generation, **summary}, self.tag_manifest_path)
        for folder in self.tagged_dir.glob("g*"):
            # Newer unpublished folders may belong to a run still writing: left alone.
            if folder.name not in (outputs.generation, previous.generation) and folder.name < str(outputs.generation):
                shutil.rmtree(folder, ignore_errors=True)
        if previous.generation is None:
            for legacy in previous.files():
                legacy.unlink(missing_ok=True)

    @property
    def tags_path(self) -> Path:
        return self.tag_outputs().tags

    @property
    def embeddings_matrix_path(self) -> Path:
        """(N, D) float16 image embeddings, row i for the i-th id of embeddings_ids_path."""
        return self.tag_outputs().embeddings_matrix

    @property
    def embeddings_ids_path(self) -> Path:
        return self.tag_outputs().embeddings_ids

    @property
    def embeddings_meta_path(self) -> Path:
        return self.tag_outputs().embeddings_meta

    @property
    def tag_failures_path(self) -> Path:
        """Images the tag stage could not decode, with the reason."""
        return self.tag_outputs().failures

    def read_tags(self) -> pd.DataFrame:
        return self.read_table(self.tag_outputs().tags, "tag")

    def read_tag_failures(self) -> pd.DataFrame:
        return self.read_table(self.tag_outputs().failures, "tag")

    def read_embeddings(self) -> tuple[list[str], "np.ndarray", dict]:
        """(ids, (N, D) float32 L2-normalised embeddings, meta: model id, revision, vocab hash...), one set,
        checked as the gallery checks it (DamagedTable names a damaged file and the command that rewrites it)."""
        import numpy as np

        from alienstay.workspace.embeddings import Vectors

        outputs = self.tag_outputs()
        if not outputs.embeddings_matrix.exists():
            self.read_table(outputs.embeddings_ids, "tag")  # raises the error that says which command makes it
        vectors = Vectors.open(self, outputs)
        if vectors is None:  # the matrix is there, the ids or meta are not
            self.read_table(outputs.embeddings_ids, "tag")
            raise DamagedTable.of(outputs.embeddings_meta, "missing", "tag", self.root)
        matrix = np.asarray(vectors.matrix, dtype=np.float32)
        # fp16 storage loses a little norm; re-normalise so cosine stays a dot product.
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms > 0, norms, 1.0)
        return vectors.ids.to_pylist(), matrix, vectors.meta

    # ---- one writer at a time ----------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def lock(self, stage: str, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the workspace lock for a stage's writes (see locking.py); waits while another run holds it."""
        from alienstay.workspace.locking import hold

        return hold(self.ensure().lock_path, stage, timeout=timeout)

    def log_run(self, stage: str, **settings: Any) -> None:
        """Append what a stage ran with, so every output can be traced to its settings."""
        self.ensure()
        line = json.dumps({"stage": stage, **settings}, default=str, sort_keys=True)
        with open(self.runs_log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
