"""What the tags say about the collection, and whether they inform an alien at all.

Reads ``tags.parquet`` (and the catalog for chains and example photos), writes
``report/tags.md`` and its figures. Everything is computed from the tags table: the facet
order and the number of words a facet are those of the vocabulary the tags were made with.

"Informative" is measured per facet by three numbers, each with a stated threshold:
- coverage: share of photos with at least one confident (selected) tag in the facet;
- spread: entropy of the selected-tag distribution over the dataset, divided by log(K)
  (0 = every photo gets the same word, 1 = all K words equally often);
- confidence: mean over photos of the facet's largest probability, against chance 1/K.

A facet the tagger declared it has no evidence for (the tags table's `judged` column, see
evidence.py) is silent by design: it is reported as "not judged by this tagger", never as
uninformative (it is never counted among the facets that inform).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from alienstay.labelled.evaluation import precision_phrase, read_measured  # noqa: E402
from alienstay.notes.dataset import normalised_entropy  # noqa: E402
from alienstay.workspace import catalog as cat  # noqa: E402
from alienstay.workspace.layout import (  # noqa: E402
    Workspace,
    WorkspaceError,
    save_figure,
    write_text,
)

TAG_COLUMNS = ["image_id", "facet", "tag", "prob", "selected", "model_id", "vocab_hash"]
OPTIONAL_TAG_COLUMNS = ["judged"]  # absent from tables written before encoders declared evidence
NOT_JUDGED = "not judged by this tagger"


@dataclass(frozen=True)
class Thresholds:
    """When a facet counts as informative; stated in the note so a reader can disagree."""

    min_coverage: float = 0.5
    min_spread: float = 0.3
    min_confidence_over_chance: float = 1.5


# ---- pure core: tag table -> numbers ---------------------------------------------------
def facet_order(tags: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(tags["facet"]))


def words_per_facet(tags: pd.DataFrame) -> pd.Series:
    return tags.drop_duplicates(["facet", "tag"]).groupby("facet", sort=False).size()


def tag_frequencies(tags: pd.DataFrame) -> pd.DataFrame:
    """facet, tag, photos (selected in how many), share (of all tagged photos); vocabulary order."""
    n_images = tags["image_id"].nunique()
    counts = tags.groupby(["facet", "tag"], sort=False)["selected"].sum().astype(int)
    frame = counts.rename("photos").reset_index()
    frame["share"] = frame["photos"] / max(n_images, 1)
    return frame


def tags_per_image(tags: pd.DataFrame) -> pd.Series:
    """How many tags each photo received (all facets)."""
    return tags.groupby("image_id", sort=False)["selected"].sum().astype(int)


def judged_facets(tags: pd.DataFrame) -> pd.Series:
    """Per facet: whether the tagger judged it (some word of it could be selected)."""
    if "judged" not in tags.columns:
        return pd.Series(True, index=facet_order(tags))
    return tags.groupby("facet", sort=False)["judged"].any().reindex(facet_order(tags)).fillna(True).astype(bool)


def silent_table(tags: pd.DataFrame) -> pd.DataFrame:
    """facet, silent share, judged ("yes" or "not judged by this tagger"): the note's silence table."""
    silent = silent_share(tags)
    judged = judged_facets(tags)
    return pd.DataFrame(
        {
            "facet": silent.index,
            "silent share": silent.to_numpy(),
            "judged": ["yes" if judged[f] else NOT_JUDGED for f in silent.index],
        }
    )


def silent_share(tags: pd.DataFrame) -> pd.Series:
    """Per facet: share of photos with no confident tag (the facet stayed silent)."""
    any_selected = tags.groupby(["facet", "image_id"], sort=False)["selected"].any()
    return (~any_selected).groupby(level="facet", sort=False).mean()


def cooccurrence(tags: pd.DataFrame, top: int = 25) -> pd.DataFrame:
    """Share of photos carrying both tags, for the `top` most frequent selected tags."""
    chosen = tags[tags["selected"]]
    if chosen.empty:  # every facet stayed silent: nothing comes together
        return pd.DataFrame()
    frequent = chosen["tag"].value_counts().head(top).index.tolist()
    indicator = pd.crosstab(chosen["image_id"], chosen["tag"]).reindex(columns=frequent, fill_value=0).clip(upper=1)
    n_images = tags["image_id"].nunique()
    return (indicator.T @ indicator) / max(n_images, 1)


def informativeness(tags: pd.DataFrame, thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """Per facet: words K, coverage, normalised entropy of selected tags, mean max prob vs chance, verdict."""
    k = words_per_facet(tags)
    coverage = 1 - silent_share(tags)
    selected_counts = tags[tags["selected"]].groupby(["facet", "tag"], sort=False).size()
    max_prob = tags.groupby(["facet", "image_id"], sort=False)["prob"].max().groupby(level="facet", sort=False).mean()
    rows = []
    for facet in facet_order(tags):
        counts = selected_counts.get(facet, pd.Series(dtype=float)).to_numpy(dtype=float)
        spread = facet_spread(counts, int(k[facet]))
        chance = 1 / int(k[facet])
        rows.append(
            {
                "facet": facet,
                "words": int(k[facet]),
                "coverage": float(coverage[facet]),
                "spread": spread,
                "mean_max_prob": float(max_prob[facet]),
                "chance": chance,
                "confidence_over_chance": float(max_prob[facet]) / chance,
            }
        )
    frame = pd.DataFrame(rows)
    frame["judged"] = judged_facets(tags).reindex(frame["facet"]).to_numpy()
    frame["informative"] = (
        frame["judged"]
        & (frame["coverage"] >= thresholds.min_coverage)
        & (frame["spread"] >= thresholds.min_spread)
        & (frame["confidence_over_chance"] >= thresholds.min_confidence_over_chance)
    )
    return frame


def facet_spread(counts: np.ndarray, k: int) -> float:
    """How evenly a facet's k words are selected: stats.normalised_entropy over all k words.

    Differs in one place: a facet with nothing selected (or one word) has no spread, 0, not NaN,
    so the informativeness verdict can compare it with its threshold.
    """
    value = normalised_entropy(counts, k)
    return 0.0 if np.isnan(value) else value


def tags_by_chain(tags: pd.DataFrame, catalog: pd.DataFrame, top_tags: int = 15, top_chains: int = 12) -> pd.DataFrame:
    """Share of each chain's photos carrying each frequent tag (empty when the catalog has no chains)."""
    chains = catalog[["image_id", "chain_name"]].dropna()
    chains = chains[chains["chain_name"].astype(str) != ""]
    if chains["chain_name"].nunique() < 2:
        return pd.DataFrame()
    chosen = tags[tags["selected"]].merge(chains, on="image_id")
    biggest = chains["chain_name"].value_counts().head(top_chains).index
    frequent = chosen["tag"].value_counts().head(top_tags).index
    photos = chains[chains["chain_name"].isin(biggest)].groupby("chain_name").size()
    counts = pd.crosstab(chosen["chain_name"], chosen["tag"]).reindex(index=biggest, columns=frequent, fill_value=0)
    return counts.div(photos.reindex(biggest), axis=0)


def example_photos(tags: pd.DataFrame, tag: str, n: int) -> list[str]:
    """The photos where `tag` was selected with the highest probability."""
    rows = tags[(tags["tag"] == tag) & tags["selected"]].sort_values("prob", ascending=False, kind="stable")
    return rows["image_id"].head(n).tolist()


# ---- figures ------------------------------------------------------------------------------
def plot_frequencies(freq: pd.DataFrame, path: Path) -> str:
    facets = list(dict.fromkeys(freq["facet"]))
    cols = 3
    rows = int(np.ceil(len(facets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(13, 2.6 * rows), squeeze=False)
    for ax, facet in zip(axes.ravel(), facets):
        part = freq[freq["facet"] == facet]
        ax.barh(part["tag"], part["share"], color="tab:purple")
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(facet, fontsize=10)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(facets):]:
        ax.axis("off")
    fig.suptitle("Share of photos carrying each tag, by facet")
    fig.tight_layout()
    return save_figure(fig, path).name  # the note links figures by file name


def plot_heatmap(matrix: pd.DataFrame, title: str, path: Path, xlabel: str = "", ylabel: str = "") -> str:
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * matrix.shape[1] + 2), max(4, 0.35 * matrix.shape[0] + 1.5)))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", vmin=0, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=90, fontsize=7)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of photos")
    return save_figure(fig, path).name  # the note links figures by file name


def plot_tags_per_image(counts: pd.Series, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(counts, bins=np.arange(counts.min(), counts.max() + 2) - 0.5, color="tab:blue", rwidth=0.85)
    ax.set_xlabel("tags on a photo (all facets)")
    ax.set_ylabel("photos")
    ax.set_title("Tags per photo")
    return save_figure(fig, path).name  # the note links figures by file name


def plot_informativeness(info: pd.DataFrame, path: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    y = np.arange(len(info))
    axes[0].barh(y, info["coverage"], color="tab:green")
    axes[0].set_title("coverage: photos with a confident tag")
    axes[1].barh(y, info["spread"], color="tab:orange")
    axes[1].set_title("spread: normalised entropy of selected tags")
    axes[2].barh(y, info["mean_max_prob"], color="tab:purple", label="mean max probability")
    axes[2].scatter(info["chance"], y, color="black", marker="|", s=200, label="chance 1/K")
    axes[2].set_title("confidence: mean max probability")
    axes[2].legend(fontsize=7, loc="lower right")
    for ax in axes:
        ax.set_xlim(0, 1)
    axes[0].set_yticks(y, info["facet"])
    axes[0].invert_yaxis()
    fig.suptitle("Do the tags inform an alien? One row a facet")
    fig.tight_layout()
    return save_figure(fig, path).name  # the note links figures by file name


def plot_examples(tags: pd.DataFrame, catalog: pd.DataFrame, tags_to_show: list[str], n: int, path: Path) -> str | None:
    files = catalog.set_index("image_id")["prepared_path"].astype("string").fillna(catalog.set_index("image_id")["path"])
    grid = [(tag, example_photos(tags, tag, n)) for tag in tags_to_show]
    grid = [(tag, ids) for tag, ids in grid if ids]
    if not grid:
        return None
    fig, axes = plt.subplots(len(grid), n, figsize=(1.9 * n, 1.9 * len(grid)), squeeze=False)
    for row, (tag, ids) in enumerate(grid):
        for col in range(n):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(ids) and ids[col] in files.index:
                with Image.open(files[ids[col]]) as image:
                    image.thumbnail((256, 256))
                    ax.imshow(image.convert("RGB"))
            if col == 0:
                ax.set_title(tag, fontsize=9, loc="left")
    fig.suptitle("Photos where each frequent tag is surest")
    fig.tight_layout()
    return save_figure(fig, path).name  # the note links figures by file name


# ---- note ---------------------------------------------------------------------------------------
def verdict_text(info: pd.DataFrame, thresholds: Thresholds, measured: pd.DataFrame | None = None) -> str:
    good = info[info["informative"]]
    judged = info["judged"] if "judged" in info else pd.Series(True, index=info.index)
    unjudged = info.loc[~judged, "facet"].tolist()
    lines = [
        f"**{len(good)} of {len(info)} facets inform an alien** on this collection "
        f"(rule: coverage >= {thresholds.min_coverage:.0%}, spread >= {thresholds.min_spread:.2f}, "
        f"mean max probability >= {thresholds.min_confidence_over_chance:g} x chance).",
    ]
    if unjudged:
        lines.append(
            f"{len(unjudged)} facets are {NOT_JUDGED} ({', '.join(f'`{f}`' for f in unjudged)}): it declared "
            "no evidence for them, so they stay silent by design and say nothing about the collection."
        )
    lines.append("")
    for row, is_judged in zip(info.itertuples(), judged, strict=True):
        if not is_judged:
            lines.append(f"- `{row.facet}` ({row.words} words): {NOT_JUDGED}.")
            continue
        reasons = []
        if row.coverage < thresholds.min_coverage:
            reasons.append(f"silent on {1 - row.coverage:.0%} of photos")
        if row.spread < thresholds.min_spread and row.coverage > 0:
            reasons.append(f"nearly one word for every photo (spread {row.spread:.2f})")
        if row.confidence_over_chance < thresholds.min_confidence_over_chance:
            reasons.append(f"barely above chance ({row.mean_max_prob:.2f} vs {row.chance:.2f})")
        status = "informs" if row.informative else "does not inform: " + "; ".join(reasons)
        lines.append(
            f"- `{row.facet}` ({row.words} words): coverage {row.coverage:.0%}, spread {row.spread:.2f}, "
            f"mean max probability {row.mean_max_prob:.2f} (chance {row.chance:.2f}) -> {status}; "
            f"{precision_phrase(measured, row.facet)}."
        )
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    return frame.to_markdown(index=False, floatfmt=floatfmt)


def build_note(
    tags: pd.DataFrame, catalog: pd.DataFrame, out_dir: Path, examples_per_tag: int, thresholds: Thresholds
) -> str:
    freq = tag_frequencies(tags)
    per_image = tags_per_image(tags)
    info = informativeness(tags, thresholds)
    co = cooccurrence(tags)
    by_chain = tags_by_chain(tags, catalog)
    n_images = tags["image_id"].nunique()
    models = ", ".join(sorted(tags["model_id"].astype(str).unique()))
    vocab_hashes = ", ".join(sorted(tags["vocab_hash"].astype(str).unique()))

    figures = {
        "frequencies": plot_frequencies(freq, out_dir / "tags_frequencies.png"),
        "per_image": plot_tags_per_image(per_image, out_dir / "tags_per_image.png"),
        "informativeness": plot_informativeness(info, out_dir / "tags_informativeness.png"),
    }
    if not co.empty:
        figures["cooccurrence"] = plot_heatmap(co, "Co-occurrence of selected tags", out_dir / "tags_cooccurrence.png")
    if not by_chain.empty:
        figures["chains"] = plot_heatmap(by_chain, "Frequent tags by chain", out_dir / "tags_by_chain.png", "tag", "chain")
    frequent = freq.sort_values("photos", ascending=False, kind="stable")
    frequent = frequent[frequent["photos"] > 0]["tag"].head(8).tolist()
    grid = plot_examples(tags, catalog, frequent, examples_per_tag, out_dir / "tags_examples.png")

    top = freq.sort_values("photos", ascending=False, kind="stable").head(10)
    parts = [
        "# Tags: what an alien can search by",
        "",
        f"{n_images} photos tagged by `{models}` with vocabulary `{vocab_hashes}`: "
        f"{len(freq)} words in {len(info)} facets. A photo carries {per_image.mean():.1f} tags on average "
        f"(median {per_image.median():.0f}, min {per_image.min()}, max {per_image.max()}).",
        "",
        "## Do the tags inform an alien?",
        "",
        verdict_text(info, thresholds, read_measured(out_dir, models)),
        "",
        f"![informativeness]({figures['informativeness']})",
        "",
        "## Most frequent tags",
        "",
        markdown_table(top[["facet", "tag", "photos", "share"]]),
        "",
        f"![tag frequencies]({figures['frequencies']})",
        "",
        "## Facets that stay silent",
        "",
        "Share of photos with no confident tag in the facet (a silent facet is better than a wrong word); "
        f"a facet {NOT_JUDGED} is silent on every photo by design:",
        "",
        markdown_table(silent_table(tags)),
        "",
        f"![tags per photo]({figures['per_image']})",
    ]
    if "cooccurrence" in figures:
        parts += ["", "## Which tags come together", "", f"![co-occurrence]({figures['cooccurrence']})"]
    if "chains" in figures:
        parts += ["", "## Tags by chain", "", f"![tags by chain]({figures['chains']})"]
    else:
        parts += ["", "_No chains in the catalog (a folder of photos): no per-chain view._"]
    if grid:
        parts += ["", "## Examples", "", f"![examples]({grid})"]
    return "\n".join(parts) + "\n"


def read_tags_for_analysis(ws: Workspace) -> pd.DataFrame:
    """The tags table, only the columns the analysis needs, with its vocabulary order kept."""
    import pyarrow.parquet as pq

    present = set(pq.read_schema(ws.require("tags")).names)
    return ws.read("tags", columns=TAG_COLUMNS + [c for c in OPTIONAL_TAG_COLUMNS if c in present])


def run_analysis(ws: Workspace, examples_per_tag: int = 6, thresholds: Thresholds = Thresholds()) -> Path:
    """Read tags + catalog, write report/tags.md and its PNG figures; return the note's path."""
    tags = read_tags_for_analysis(ws)
    if tags.empty:
        raise WorkspaceError(
            f"{ws.tags_path} holds no photos: check that `alienstay preprocess --workspace {ws.root}` "
            "kept some photos (status ok), then run `alienstay tag` again."
        )
    catalog = cat.usable(ws.read_catalog())
    note = build_note(tags, catalog, ws.report_dir, examples_per_tag, thresholds)
    path = write_text(note, ws.report_dir / "tags.md")
    ws.log_run("analyse", tags=str(ws.tags_path), examples_per_tag=examples_per_tag, **thresholds.__dict__)
    return path
