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

from alienstay import catalog as cat  # noqa: E402
from alienstay.workspace import Workspace, atomic_path, write_text  # noqa: E402

DEFAULT_REFERENCE = Path("../shared/reference/hotels50k_train_images_per_chain.tsv")
REPO_ROOT = Path(__file__).resolve().parents[2]
HOTEL_BINS = [0, 1, 5, 10, 20, 50, 100, np.inf]
HOTEL_BIN_LABELS = ["1", "2-5", "6-10", "11-20", "21-50", "51-100", ">100"]
SOURCE_LABELS = {"travel_website": "travel website", "traffickcam": "TraffickCam", "folder": "photo folder"}


# ---- balance metrics (pure) --------------------------------------------------------------
def gini(counts) -> float:
    """Gini coefficient of class sizes: 0 when all equal, (n-1)/n when one class holds all."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    if values.size == 0 or values.sum() == 0:
        return float("nan")
    ranks = np.arange(1, values.size + 1)
    return float(2 * np.sum(ranks * values) / (values.size * values.sum()) - (values.size + 1) / values.size)


def normalised_entropy(counts) -> float:
    """Shannon entropy of the class shares divided by its maximum, log(number of classes)."""
    values = np.asarray(counts, dtype=np.float64)
    if values.size < 2 or values.sum() == 0:
        return float("nan")  # one class: balance is not defined
    shares = values[values > 0] / values.sum()
    return float(-np.sum(shares * np.log(shares)) / np.log(values.size))


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
    """The reference TSV, looked for relative to the current folder, then to the repository."""
    path = Path(path) if path is not None else DEFAULT_REFERENCE
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]
    return next((p.resolve() for p in candidates if p.is_file()), None)


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
def save_figure(figure: plt.Figure, target: Path) -> Path:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return target


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


def build_note(ws: Workspace, reference: Path | None = None) -> DatasetNote:
    """Compute every figure from the workspace (and the reference TSV) and write report/dataset.md."""
    catalog = ws.read_catalog()
    metadata = pd.read_parquet(ws.metadata_path) if ws.metadata_path.exists() else None
    reference_path = resolve_reference(reference)
    ref_counts = read_reference(reference_path) if reference_path else None
    out = ws.report_dir
    out.mkdir(parents=True, exist_ok=True)

    where = catalog_label(catalog)
    rows, which_rows = counted_rows(catalog)
    per_hotel = rows.groupby(rows["hotel_id"].fillna("unknown")).size()
    has_chains = rows["chain_id"].notna().any()
    per_chain = rows.groupby(rows["chain_id"].fillna("-1")).size() if has_chains else None
    train = metadata[metadata["split"] == "train"] if metadata is not None else None

    balance_rows = [("hotel", f"{where}, {which_rows}", per_hotel)]
    if per_chain is not None:
        balance_rows.append(("chain", f"{where}, {which_rows}", per_chain))
    if train is not None:
        balance_rows.append(("hotel", "the metadata CSVs (train)", train.groupby("hotel_id").size()))
        balance_rows.append(("chain", "the metadata CSVs (train)", train.groupby(train["chain_id"].fillna("-1")).size()))
    if ref_counts is not None:
        balance_rows.append(("chain", "the reference TSV (full train download)", ref_counts))
    balance = balance_table([r for r in balance_rows if len(r[2])])

    figures: list[Path] = []
    hotel_panels = [(f"{where}", per_hotel)] if len(per_hotel) else []
    if train is not None:
        hotel_panels.append(("the metadata CSVs (train)", train.groupby("hotel_id").size()))
    if hotel_panels:
        figures.append(figure_per_hotel(hotel_panels, out / "dataset_images_per_hotel.png"))
    chain_panels = []
    if ref_counts is not None:
        chain_panels.append(("Source: the reference TSV (full train download)", ref_counts))
    if train is not None:
        chain_panels.append(("Source: the metadata CSVs (train)", train.groupby(train["chain_id"].fillna("-1")).size()))
    if per_chain is not None:
        chain_panels.append((f"Source: {where}", per_chain))
    if chain_panels:
        figures.append(figure_per_chain(chain_panels, out / "dataset_images_per_chain.png"))
    if rows["width"].notna().any():
        figures.append(figure_sizes(rows, where, out / "dataset_sizes.png"))

    parts = ["# The dataset", ""]
    parts += [
        "Where each figure comes from:",
        f"- **{where}**: the photos in this workspace ({len(catalog)} catalogued, counted here: {which_rows})."
        + (" In a photo folder a 'hotel' is a sub-folder." if (catalog["split"] == "folder").any() else ""),
        "- **the metadata CSVs**: "
        + (f"every row of Hotels-50K's train and test sets ({ws.metadata_path.name}, {len(metadata)} rows)."
           if metadata is not None else "not available (run `alienstay ingest hotels50k` to add them)."),
        "- **the reference TSV**: "
        + (f"real per-chain counts of a full train download (`{reference_path}`)."
           if reference_path else "NOT FOUND: pass `--reference PATH` to "
           "hotels50k_train_images_per_chain.tsv; the real chain balance is missing from this note."),
        "",
        "## Counts",
        "",
    ]  # fmt: skip
    counts = [{"source": where, "images": len(rows), "hotels": per_hotel.size,
               "chains": per_chain.size if per_chain is not None else "n/a"}]  # fmt: skip
    if metadata is not None:
        for split, part in metadata.groupby("split", sort=True):
            counts.append({"source": f"the metadata CSVs ({split})", "images": len(part),
                           "hotels": part["hotel_id"].nunique(), "chains": part["chain_id"].nunique()})  # fmt: skip
    if ref_counts is not None:
        counts.append({"source": "the reference TSV (train)", "images": int(ref_counts.sum()),
                       "hotels": "n/a", "chains": ref_counts.size})  # fmt: skip
    parts += [markdown(pd.DataFrame(counts)), ""]

    parts += ["## Status of the catalogued photos", "", f"Source: {where}, every row.", ""]
    status = catalog.assign(reason=catalog["reason"].fillna("").replace("", "-"))
    parts += [markdown(status.groupby(["status", "reason"]).size().rename("images").reset_index()), ""]

    parts += ["## Balance: images per hotel and per chain", ""]
    parts += ["Gini: 0 = equal classes. Normalised entropy: 1 = uniform. Imbalance ratio: largest / smallest.", ""]
    parts += [markdown(balance), ""]
    if ref_counts is not None:
        share = ref_counts.get("-1", 0) / ref_counts.sum()
        top = ref_counts.drop("-1", errors="ignore").head(3)
        parts += [
            f"Real chain balance (source: the reference TSV): {ref_counts.size} chain folders, "
            f"{ref_counts.sum():,} images; chain -1 (no chain) holds {share:.1%}; the largest named "
            f"chains are {', '.join(f'{c} ({n:,})' for c, n in top.items())}; the smallest holds "
            f"{ref_counts.min():,}. Gini {gini(ref_counts):.3f}, normalised entropy "
            f"{normalised_entropy(ref_counts):.3f}, imbalance ratio {imbalance_ratio(ref_counts):,.0f}.",
            "",
        ]
    else:
        parts += ["_The real chain balance could not be shown: the reference TSV was not found._", ""]
    parts += ["Images per hotel, binned (source: " + where + "):", ""]
    parts += [markdown(hotel_histogram(per_hotel).rename("hotels").rename_axis("images per hotel").reset_index()), ""]
    if train is not None:
        parts += ["Images per hotel, binned (source: the metadata CSVs, train):", ""]
        binned = hotel_histogram(train.groupby("hotel_id").size())
        parts += [markdown(binned.rename("hotels").rename_axis("images per hotel").reset_index()), ""]

    parts += ["## Image sources: travel website vs TraffickCam", ""]
    parts += [markdown(source_table(catalog, where, metadata)), ""]

    parts += ["## Image sizes", "", f"Source: {where}, {which_rows} (width and height after EXIF orientation).", ""]
    parts += [markdown(size_table(rows)), ""]

    parts += ["## Figures", ""]
    for figure in figures:
        parts += [f"![{figure.stem}]({figure.name})", ""]
    path = write_text("\n".join(parts), out / "dataset.md")
    ws.log_run("stats", reference=str(reference_path))
    return DatasetNote(path=path, figures=figures, balance=balance)
