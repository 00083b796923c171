"""A labels file: one labelled photo a row, turned into a verdict on every vocabulary word.

The file is CSV or TSV (told by its extension, else sniffed) with a ``file`` column (the photo,
relative to the labels file's folder), an optional ``scene`` column, yes/no columns (1/0, yes/no,
true/false) and any free columns (``note``), which are ignored. A mapping (package data
``data/label_columns.yaml``, extendable with ``--mapping``) says which words each column's values
make right, defensible (ok) or wrong. The result is a (photos x words) verdict matrix:
RIGHT, OK, WRONG or UNJUDGED, the input of evaluation.py and calibration.py.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alienstay.vocabulary.words import Vocabulary

RIGHT, OK, WRONG, UNJUDGED = 2, 1, 0, -1
PACKAGED_MAPPING = "label_columns.yaml"
FILE_COLUMN, SCENE_COLUMN = "file", "scene"
YES = {"1", "yes", "true", "y"}
NO = {"0", "no", "false", "n"}
KINDS = {"right": RIGHT, "ok": OK, "wrong": WRONG}


class LabelsFileError(ValueError):
    """The labels file or its mapping cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class LabelTable:
    """Labelled photos and every word's verdict on each (RIGHT, OK, WRONG or UNJUDGED)."""

    source: Path
    files: list[str]  # as written in the file column
    paths: list[Path]  # resolved against the labels file's folder
    verdicts: np.ndarray  # (P, W) int8
    scene: pd.Series  # the scene column (<NA> where absent): cluster agreement is measured against it

    @property
    def judged(self) -> np.ndarray:
        return self.verdicts != UNJUDGED

    def subset(self, rows: np.ndarray) -> "LabelTable":
        rows = np.asarray(rows)
        return LabelTable(self.source, [self.files[i] for i in rows], [self.paths[i] for i in rows],
                          self.verdicts[rows], self.scene.iloc[rows].reset_index(drop=True))


def load_mapping(extra: Path | None = None) -> dict[str, dict]:
    """The packaged column mapping, with `extra`'s columns added or replacing packaged ones."""
    text = resources.files("alienstay").joinpath("data", PACKAGED_MAPPING).read_text(encoding="utf-8")
    columns = dict(yaml.safe_load(text)["columns"])
    if extra is not None:
        try:
            document = yaml.safe_load(Path(extra).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise LabelsFileError(f"{extra}: cannot read the column mapping ({error}); see {PACKAGED_MAPPING}.") from None
        if not isinstance(document, dict) or not isinstance(document.get("columns"), dict):
            raise LabelsFileError(f"{extra}: a column mapping needs a top-level `columns:` mapping, as in {PACKAGED_MAPPING}.")
        columns.update(document["columns"])
    return columns


def read_labels_frame(path: Path) -> pd.DataFrame:
    """The labels file as strings; CSV or TSV by extension, else sniffed."""
    path = Path(path)
    if not path.is_file():
        raise LabelsFileError(f"{path}: no such labels file; give --labels a CSV/TSV with a `{FILE_COLUMN}` column.")
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    delimiter = "\t" if suffix in {".tsv", ".tab"} else "," if suffix == ".csv" else None
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text.splitlines()[0] if text else "", delimiters=",\t;").delimiter
        except csv.Error:
            raise LabelsFileError(f"{path}: cannot tell the delimiter; name it .csv or .tsv.") from None
    frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [str(c).strip() for c in frame.columns]
    if FILE_COLUMN not in frame.columns:
        raise LabelsFileError(f"{path}: no `{FILE_COLUMN}` column (found {list(frame.columns)}); "
                              f"the first row must name the columns, one of them `{FILE_COLUMN}`.")
    if frame.empty:
        raise LabelsFileError(f"{path}: no labelled photo (only a header row).")
    return frame


def _normal(value: str) -> str:
    value = value.strip()
    return "1" if value.lower() in YES else "0" if value.lower() in NO else value


def _judgements(column: str, value: str, entry: object, vocab: Vocabulary, where: str) -> list[tuple[int, int]]:
    """(word index, verdict) pairs one cell gives."""
    if entry is None:
        return []
    if not isinstance(entry, dict):
        raise LabelsFileError(f"{where}: column {column!r} value {value!r} should map facets to right/ok/wrong lists.")
    index = {(w.facet, w.tag): i for i, w in enumerate(vocab.words)}
    found: list[tuple[int, int]] = []
    for facet, rule in entry.items():
        if facet not in vocab.facets:
            raise LabelsFileError(f"{where}: column {column!r} names facet {facet!r}, not in the vocabulary {vocab.source}.")
        named: set[str] = set()
        for kind, verdict in KINDS.items():
            for tag in (rule or {}).get(kind, []) or []:
                if (facet, tag) not in index:
                    raise LabelsFileError(f"{where}: column {column!r} names {tag!r}, not a word of facet {facet!r}.")
                found.append((index[facet, tag], verdict))
                named.add(tag)
        if (rule or {}).get("rest") == "wrong":
            found += [(index[facet, t], WRONG) for t in vocab.facets[facet].tags if t not in named]
    return found


def load_label_table(path: Path, vocab: Vocabulary, mapping: Path | None = None, check_photos: bool = True) -> LabelTable:
    """Read a labels file and judge every word of `vocab` on every photo through the mapping."""
    path = Path(path)
    frame = read_labels_frame(path)
    columns = load_mapping(mapping)
    where = f"{mapping or PACKAGED_MAPPING}"
    used = [c for c in frame.columns if c in columns]
    if not used:
        raise LabelsFileError(f"{path}: none of its columns {list(frame.columns)} is in the column mapping "
                              f"({sorted(columns)}); add yours with --mapping FILE (format: {PACKAGED_MAPPING}).")
    verdicts = np.full((len(frame), len(vocab.words)), UNJUDGED, dtype=np.int8)
    for row, record in enumerate(frame.itertuples(index=False)):
        cells = dict(zip(frame.columns, record, strict=True))
        for column in used:
            value = _normal(str(cells[column]))
            if value == "":
                continue
            for word, verdict in _judgements(column, value, columns[column].get(value), vocab, where):
                verdicts[row, word] = max(verdicts[row, word], verdict)  # right beats ok beats wrong
    files = frame[FILE_COLUMN].str.strip().tolist()
    paths = [(path.parent / name) for name in files]
    if check_photos:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise LabelsFileError(f"{path}: {len(missing)} photos it names are missing (first: {missing[0]}); "
                                  "the `file` column is read relative to the labels file's folder.")
        broken = [str(p) for p in paths if not _decodes(p)]
        if broken:  # before any model loads: one bad photo would otherwise stop the run half way
            raise LabelsFileError(f"{path}: {len(broken)} photos it names cannot be decoded (first: {broken[0]}); "
                                  "replace them or remove their rows.")
    scene = frame[SCENE_COLUMN].str.strip().replace("", pd.NA) if SCENE_COLUMN in frame else pd.Series(pd.NA, index=frame.index)
    return LabelTable(path, files, paths, verdicts, scene.astype("string").reset_index(drop=True))


def _decodes(photo: Path) -> bool:
    """The photo's header and data are whole (PIL's verify: no pixels kept)."""
    from PIL import Image

    try:
        with Image.open(photo) as image:
            image.verify()
        return True
    except (OSError, SyntaxError, ValueError):  # PIL raises these for truncated, garbage or unknown files
        return False
