"""The dataset note: what the photos are, how many, how balanced, how big: report/dataset.md.

Three possible sources, and every table and figure says which one it comes from:

- **the catalog** (``catalog.parquet``): the photos actually in this workspace (a photo
  folder, or the downloaded Hotels-50K sample);
- **the metadata CSVs** (``ws.metadata_path``, written by ``ingest hotels50k``): every row
  of Hotels-50K's train and test sets, even when only a sample was downloaded;
- **the reference TSV**: the real per-chain image counts of a full train download, so the
  note always shows the real chain balance, even for a folder of eight photos.

Balance is measured three ways, as pure functions: the Gini coefficient (0 = every class
the same size, towards 1 = one class holds everything), the normalised entropy (1 =
uniform, 0 = one class), and the imbalance ratio (largest class / smallest class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alienstay.workspace import catalog as cat  # noqa: E402
from alienstay.workspace.layout import Workspace, save_figure, write_text  # noqa: E402

# The real per-chain counts of a full train download (numbers only, 93 rows), shipped as package
# data so `stats` finds them from any folder and from a wheel; `--reference PATH` replaces them.
PACKAGED_REFERENCE = Path(__file__).resolve().parents[1] / "data" / "hotels50k_train_images_per_chain.tsv"
HOTEL_BINS = [0, 1, 5, 10, 20, 50, 100, np.inf]
HOTEL_BIN_LABELS = ["1", "2-5", "6-10", "11-20", "21-50", "51-100", ">100"]
NO_CHAIN = "-1"
SOURCE_LABELS = {"travel_website": "travel website", "traffickcam": "TraffickCam", "folder": "photo folder"}


# ---- balance metrics (pure) --------------------------------------------------------------
def gini(counts) -> float:
    """Gini coefficient of class sizes: 0 when all equal, (n-1)/n when one class holds all."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    if values.size == 0 or values.sum() == 0:
        return float("nan")
    ranks = np.arange(1, values.size + 1)
    return float(2 * np.sum(ranks * values) / (values.size * values.sum()) - (values.size + 1) / values.size)


def normalised_entropy(counts, k: int | None = None) -> float:
    """Shannon entropy of the shares divided by its maximum, log(k): 0 all in one class, 1 all equal.

    ``k`` is the number of possible classes (default: the length of ``counts``); classes that
    may occur but have no count lower the figure. NaN when undefined: k < 2 or nothing counted.
    The one definition in the package (the tag analysis' `facet_spread` is built on it).
    """
    values = np.asarray(counts, dtype=np.float64)
    k = values.size if k is None else int(k)
    if k < 2 or values.sum() == 0:
        return float("nan")  # one class, or nothing counted: balance is not defined
    shares = values[values > 0] / values.sum()
    return max(0.0, float(-np.sum(shares * np.log(shares)) / np.log(k)))  # max: no "-0.00" for one class


def imbalance_ratio(counts) -> float:
    """Largest class over smallest class (infinite if a class is empty)."""
    values = np.asarray(counts, dtype=np.float64)
    if values.size == 0:
        return float("nan")
    return float("inf") if values.min() == 0 else float(values.max() / values.min())


def describe_counts(counts: pd.Series) -> dict:
    """Images per class: how many classes, the spread, and the three balance figures."""
    values = counts.to_numpy()
    if values.size == 0:
        return {"classes": 0, "images": 0}
    return {
        "classes": int(values.size),
        "images": int(values.sum()),
        "min": int(values.min()),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "max": int(values.max()),
        "gini": gini(values),
        "normalised_entropy": normalised_entropy(values),
        "imbalance_ratio": imbalance_ratio(values),
    }


# ---- inputs ------------------------------------------------------------------------------
def resolve_reference(path: Path | None) -> Path | None:
    """The reference TSV the user passed (None when it is not a file: the note says NOT FOUND), else the packaged one."""
    if path is None:
        return PACKAGED_REFERENCE if PACKAGED_REFERENCE.is_file() else None
    path = Path(path).expanduser()
    return path.resolve() if path.is_file() else None


def read_reference(path: Path) -> pd.Series:
    """Per-chain image counts (chain id -> images), from the TSV ``chain_id<TAB>images``."""
    table = pd.read_csv(path, sep="\t", dtype={"chain_id": str})
    return table.set_index("chain_id")["images"].astype(int).sort_values(ascending=False)


def catalog_label(catalog: pd.DataFrame) -> str:
    if (catalog["split"] == "folder").all():
        return "this photo folder (catalog.parquet)"
    if (catalog["split"] != "folder").all():
        return "the downloaded Hotels-50K sample (catalog.parquet)"
    return "this workspace's photos (catalog.parquet)"


def counted_rows(catalog: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Usable rows once preprocess has run; every fetched row before that."""
    if (catalog["status"] == cat.OK).any():
        return cat.usable(catalog), "usable (status ok) rows"
    on_disk = catalog[catalog["status"] != cat.FAILED]
    return on_disk.reset_index(drop=True), "all catalogued rows (preprocess has not run)"


# ---- tables ----------------------------------------------------------------------------
def balance_table(rows: list[tuple[str, str, pd.Series]]) -> pd.DataFrame:
    """One row per (what, source) with the spread and balance of its class sizes."""
    records = [{"classes of": what, "source": source, **describe_counts(counts)} for what, source, counts in rows]
    return pd.DataFrame(records)


def hotel_histogram(per_hotel: pd.Series) -> pd.Series:
    binned = pd.cut(per_hotel, HOTEL_BINS, labels=HOTEL_BIN_LABELS)
    return binned.value_counts().reindex(HOTEL_BIN_LABELS, fill_value=0)


def source_table(catalog: pd.DataFrame, catalog_source: str, metadata: pd.DataFrame | None) -> pd.DataFrame:
    parts = [catalog["source"].fillna("unknown").value_counts().rename("images").to_frame()
             .assign(split="(catalog)", where=catalog_source)]  # fmt: skip
    if metadata is not None:
        for split, rows in metadata.groupby("split", sort=True):
            counts = rows["source"].fillna("unknown").value_counts().rename("images").to_frame()
            parts.append(counts.assign(split=split, where="the metadata CSVs"))
    table = pd.concat(parts).rename_axis("image source").reset_index()
    table["image source"] = table["image source"].map(lambda s: SOURCE_LABELS.get(s, s))
    table["share"] = table["images"] / table.groupby(["split", "where"])["images"].transform("sum")
    return table[["where", "split", "image source", "images", "share"]]


def size_table(rows: pd.DataFrame) -> pd.DataFrame:
    sized = rows.dropna(subset=["width", "height"])
    measures = {
        "width (px)": sized["width"].astype(float),
        "height (px)": sized["height"].astype(float),
        "aspect (w/h)": sized["width"].astype(float) / sized["height"].astype(float),
        "file size (KB)": rows["bytes"].dropna().astype(float) / 1024,
    }
    records = []
    for name, values in measures.items():
        if len(values):
            q = values.quantile([0, 0.5, 1]).to_numpy()
            records.append({"measure": name, "n": len(values), "min": q[0], "median": q[1],
                            "mean": values.mean(), "max": q[2]})  # fmt: skip
    return pd.DataFrame(records)


# ---- figures -----------------------------------------------------------------------------
def figure_per_hotel(panels: list[tuple[str, pd.Series]], target: Path) -> Path:
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for axis, (title, counts) in zip(axes[0], panels):
        bins = np.arange(0.5, max(int(counts.max()), 1) + 1.5) if counts.max() <= 60 else 60
        axis.hist(counts, bins=bins, color="#4c72b0")
        axis.set(title=title, xlabel="images per hotel", ylabel="hotels")
    return save_figure(figure, target)


def figure_per_chain(panels: list[tuple[str, pd.Series]], target: Path) -> Path:
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 3.4 * len(panels)), squeeze=False)
    for axis, (title, counts) in zip(axes[:, 0], panels):
        counts = counts.sort_values(ascending=False)
        colours = ["#dd8452" if chain == "-1" else "#4c72b0" for chain in counts.index]
        axis.bar(range(len(counts)), counts.to_numpy(), color=colours)
        axis.set_yscale("log")
        axis.set(title=f"{title} (Gini {gini(counts):.2f}; orange: chain -1, no chain)",
                 xlabel="chains, largest first", ylabel="images (log)")  # fmt: skip
        if len(counts) <= 30:
            axis.set_xticks(range(len(counts)), counts.index, rotation=90, fontsize=7)
    figure.tight_layout()
    return save_figure(figure, target)


def figure_sizes(rows: pd.DataFrame, source: str, target: Path) -> Path:
    sized = rows.dropna(subset=["width", "height"])
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    width, height = sized["width"].astype(float), sized["height"].astype(float)
    axes[0].scatter(width, height, s=12, alpha=0.6)
    axes[0].set(title="width x height", xlabel="width (px)", ylabel="height (px)")
    axes[1].hist(width / height, bins=30, color="#55a868")
    axes[1].set(title="aspect ratio", xlabel="width / height", ylabel="images")
    axes[2].hist(rows["bytes"].dropna().astype(float) / 1024, bins=30, color="#c44e52")
    axes[2].set(title="file size", xlabel="KB", ylabel="images")
    figure.suptitle(f"Source: {source}", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, target)


# ---- the note ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetNote:
    path: Path
    figures: list[Path]
    balance: pd.DataFrame


def readable_number(value: object) -> object:
    """Large figures with thousands separators, small ones to three significant digits."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    if not isinstance(value, float) or not np.isfinite(value):
        return "n/a" if isinstance(value, float) and np.isnan(value) else value
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def markdown(table: pd.DataFrame) -> str:
    if not len(table):
        return "_(none)_"
    shown = table.astype(object).map(readable_number)
    return shown.to_markdown(index=False, disable_numparse=True)


@dataclass(frozen=True)
class Inputs:
    """Everything the note is computed from, each labelled with where it came from."""

    catalog: pd.DataFrame
    where: str  # how the note names the catalog's photos
    rows: pd.DataFrame  # the catalog rows counted (usable ones once preprocess has run)
    which_rows: str
    metadata: pd.DataFrame | None
    metadata_name: str
    reference_path: Path | None
    reference: pd.Series | None  # chain id -> images

    @property
    def train(self) -> pd.DataFrame | None:
        return None if self.metadata is None else self.metadata[self.metadata["split"] == "train"]


@dataclass(frozen=True)
class ClassCounts:
    what: str  # "hotel" or "chain"
    source: str
    counts: pd.Series  # class id -> images


def read_inputs(ws: Workspace, reference: Path | None) -> Inputs:
    catalog = ws.read_catalog()
    rows, which_rows = counted_rows(catalog)
    reference_path = resolve_reference(reference)
    return Inputs(
        catalog=catalog,
        where=catalog_label(catalog),
        rows=rows,
        which_rows=which_rows,
        metadata=ws.read("metadata", optional=True),
        metadata_name=ws.metadata_path.name,
        reference_path=reference_path,
        reference=read_reference(reference_path) if reference_path else None,
    )


def per_chain(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby(rows["chain_id"].fillna(NO_CHAIN)).size()


def class_counts(inputs: Inputs) -> list[ClassCounts]:
    """Images per hotel and per chain, from every source that has them."""
    rows, label = inputs.rows, f"{inputs.where}, {inputs.which_rows}"
    found = [ClassCounts("hotel", label, rows.groupby(rows["hotel_id"].fillna("unknown")).size())]
    if rows["chain_id"].notna().any():
        found.append(ClassCounts("chain", label, per_chain(rows)))
    if inputs.train is not None:
        found.append(ClassCounts("hotel", "the metadata CSVs (train)", inputs.train.groupby("hotel_id").size()))
        found.append(ClassCounts("chain", "the metadata CSVs (train)", per_chain(inputs.train)))
    if inputs.reference is not None:
        found.append(ClassCounts("chain", "the reference TSV (full train download)", inputs.reference))
    return [c for c in found if len(c.counts)]


def draw_figures(inputs: Inputs, classes: list[ClassCounts], out: Path) -> list[Path]:
    figures = []
    hotel_panels = [(c.source, c.counts) for c in classes if c.what == "hotel"]
    if hotel_panels:
        figures.append(figure_per_hotel(hotel_panels, out / "dataset_images_per_hotel.png"))
    # widest view first: the real full-train balance, then the metadata, then these photos
    order = ["reference TSV", "metadata CSVs"]
    chain_panels = sorted(
        (("Source: " + c.source, c.counts) for c in classes if c.what == "chain"),
        key=lambda panel: next((k for k, name in enumerate(order) if name in panel[0]), len(order)),
    )
    if chain_panels:
        figures.append(figure_per_chain(chain_panels, out / "dataset_images_per_chain.png"))
    if inputs.rows["width"].notna().any():
        figures.append(figure_sizes(inputs.rows, inputs.where, out / "dataset_sizes.png"))
    return figures


def provenance_lines(inputs: Inputs) -> list[str]:
    folder_note = " In a photo folder a 'hotel' is a sub-folder." if (inputs.catalog["split"] == "folder").any() else ""
    if inputs.metadata is not None:
        metadata = f"every row of Hotels-50K's train and test sets ({inputs.metadata_name}, {len(inputs.metadata):,} rows)."
    else:
        metadata = "not available (run `alienstay ingest hotels50k` to add them)."
    if inputs.reference_path is not None:
        reference = f"real per-chain counts of a full train download (`{inputs.reference_path}`)."
    else:
        reference = ("NOT FOUND: pass `--reference PATH` to hotels50k_train_images_per_chain.tsv; "
                     "the real chain balance is missing from this note.")  # fmt: skip
    return [
        "Where each figure comes from:",
        f"- **{inputs.where}**: the photos in this workspace ({len(inputs.catalog)} catalogued; "
        f"counted here: {inputs.which_rows}).{folder_note}",
        f"- **the metadata CSVs**: {metadata}",
        f"- **the reference TSV**: {reference}",
    ]


def counts_table(inputs: Inputs, classes: list[ClassCounts]) -> pd.DataFrame:
    sizes = {(c.what, c.source): c.counts.size for c in classes}
    label = f"{inputs.where}, {inputs.which_rows}"
    records = [{"source": inputs.where, "images": len(inputs.rows), "hotels": sizes.get(("hotel", label), 0),
                "chains": sizes.get(("chain", label), "n/a")}]  # fmt: skip
    if inputs.metadata is not None:
        for split, part in inputs.metadata.groupby("split", sort=True):
            records.append({"source": f"the metadata CSVs ({split})", "images": len(part),
                            "hotels": part["hotel_id"].nunique(), "chains": part["chain_id"].nunique()})  # fmt: skip
    if inputs.reference is not None:
        records.append({"source": "the reference TSV (train)", "images": int(inputs.reference.sum()),
                        "hotels": "n/a", "chains": inputs.reference.size})  # fmt: skip
    return pd.DataFrame(records)


def real_chain_balance(reference: pd.Series | None) -> str:
    if reference is None:
        return "_The real chain balance could not be shown: the reference TSV was not found._"
    share = reference.get(NO_CHAIN, 0) / reference.sum()
    top = reference.drop(NO_CHAIN, errors="ignore").head(3)
    return (
        f"Real chain balance (source: the reference TSV): {reference.size} chain folders, "
        f"{reference.sum():,} images; chain -1 (no chain) holds {share:.1%}; the largest named "
        f"chains are {', '.join(f'{c} ({n:,})' for c, n in top.items())}; the smallest holds "
        f"{reference.min():,}. Gini {gini(reference):.3f}, normalised entropy "
        f"{normalised_entropy(reference):.3f}, imbalance ratio {imbalance_ratio(reference):,.0f}."
    )


def note_markdown(inputs: Inputs, classes: list[ClassCounts], balance: pd.DataFrame, figures: list[Path]) -> str:
    where, catalog = inputs.where, inputs.catalog
    status = catalog.assign(reason=cat.reason_codes(catalog["reason"]).replace("", "-"))  # codes, not details
    parts = ["# The dataset", "", *provenance_lines(inputs), "", "## Counts", "",
             markdown(counts_table(inputs, classes)), "",
             "## Status of the catalogued photos", "", f"Source: {where}, every row.", "",
             markdown(status.groupby(["status", "reason"]).size().rename("images").reset_index()), "",
             "## Balance: images per hotel and per chain", "",
             "Gini: 0 = equal classes. Normalised entropy: 1 = uniform. Imbalance ratio: largest / smallest.", "",
             markdown(balance), "", real_chain_balance(inputs.reference), ""]  # fmt: skip
    for c in classes:
        if c.what == "hotel":
            binned = hotel_histogram(c.counts).rename("hotels").rename_axis("images per hotel").reset_index()
            parts += [f"Images per hotel, binned (source: {c.source}):", "", markdown(binned), ""]
    parts += ["## Image sources: travel website vs TraffickCam", "",
              f"Catalog rows counted: {inputs.which_rows}.", "",
              markdown(source_table(inputs.rows, where, inputs.metadata)), "",
              "## Image sizes", "",
              f"Source: {where}, {inputs.which_rows} (width and height after EXIF orientation).", "",
              markdown(size_table(inputs.rows)), "", "## Figures", ""]  # fmt: skip
    for figure in figures:
        parts += [f"![{figure.stem}]({figure.name})", ""]
    return "\n".join(parts)


def build_note(ws: Workspace, reference: Path | None = None) -> DatasetNote:
    """Compute every figure from the workspace (and the reference TSV) and write report/dataset.md."""
    inputs = read_inputs(ws, reference)
    out = ws.report_dir
    out.mkdir(parents=True, exist_ok=True)
    classes = class_counts(inputs)
    balance = balance_table([(c.what, c.source, c.counts) for c in classes])
    figures = draw_figures(inputs, classes, out)
    path = write_text(note_markdown(inputs, classes, balance, figures), out / "dataset.md")
    ws.log_run("stats", reference=str(inputs.reference_path))
    return DatasetNote(path=path, figures=figures, balance=balance)
