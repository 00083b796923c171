"""The retrieval note and its figure: image-level top-K (the dataset's rule) by hotel and chain, beside chance.

The headline is the official counting rule; the paper's variant (chain -1 dropped) is a second,
named line; distinct-hotel top-K is an extra table, named so, never the paper's metric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alienstay.similarity.retrieval import Accuracy
from alienstay.similarity.retrieval_images import CHAIN_KS, HOTEL_KS, Figures

COLUMNS = [("hotel", k) for k in HOTEL_KS] + [("chain", k) for k in CHAIN_KS]
HEADER = "| " + " | ".join(f"{kind} top-{k}" for kind, k in COLUMNS) + " |"
OFFICIAL = "official rule (image-level)"
VARIANT = "paper's variant: chain -1 dropped"
RULE = (
    "**Rule: image-level top-K, as the dataset's own evaluator counts** (`evaluate/retrieval.py` of "
    "GWUvision/Hotels-50K). A query ranks the gallery's *photos* by cosine, best first, and scores a hit "
    "at K when one of its first K photos is of its own hotel (K = 1, 10, 100) or chain (K = 1, 3, 5). "
    f"*{OFFICIAL}*: chain -1 (\"no chain\") photos stay in the ranked lists, where they can only miss, and "
    f"chain -1 queries are skipped for the chain figures. *{VARIANT}*: chain -1 photos leave the lists and "
    "chain -1 queries leave both figures. Chance: K photos drawn at random from the query's gallery "
    "(hypergeometric, averaged over the queries). Ties never help a query. "
    "`alienstay retrieval --export-knn FILE` writes the evaluator's input file, so the figures can be checked."
)
DISTINCT = (
    "## Distinct-hotel top-K (an extra table, not the paper's metric)\n\n"
    "Here a query ranks *hotels* (chains), each by its best-matching photo, and scores a hit when its own is "
    "among the first K distinct hotels (chain -1 photos left out of the chain figures). A hotel's many photos "
    "then take one place in the ranking instead of many, so these figures are at least the image-level ones "
    "at every K, the more so the more photos a hotel has.\n"
)


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f} %"


def _row(label: str, figures: Figures, chance: bool = False) -> str:
    hotel = figures.hotel_chance if chance else figures.hotel
    chain = figures.chain_chance if chance else figures.chain
    values = [hotel[k] for k in HOTEL_KS] + [chain[k] for k in CHAIN_KS]
    return f"| {label} | " + " | ".join(_pct(v) for v in values) + " |"


def plot(lines: dict[str, Figures], target: Path) -> Path:
    """Grouped bars: hotel top-1/10/100 and chain top-1/3/5 by the official rule, for each feature, beside chance."""
    from alienstay.clustering.figures import _pyplot, save_figure

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(COLUMNS))
    first = next(iter(lines.values()))
    series = [(name, [getattr(f, kind)[k] for kind, k in COLUMNS]) for name, f in lines.items()]
    series.append(("chance", [(first.hotel_chance if kind == "hotel" else first.chain_chance)[k] for kind, k in COLUMNS]))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series):
        ax.bar(x + i * width, np.nan_to_num(values), width, label=name, **({"color": "#bbb"} if name == "chance" else {}))
    ax.set_xticks(x + width * (len(series) - 1) / 2, [f"{kind}\ntop-{k}" for kind, k in COLUMNS])
    ax.set_ylim(0, 100)
    ax.set_ylabel("% of queries with a hit\nin the first k photos")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Does a photo find its own hotel (chain)? Image-level top-k, the dataset's rule", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, target)


def write_note(
    protocol: str, official: dict[str, Figures], variant: dict[str, Figures],
    distinct: dict[str, dict[str, Accuracy]], figure: str,
) -> str:
    """The note: protocol, rule, the official and variant lines beside chance, then the distinct-hotel table."""
    first, first_variant = next(iter(official.values())), next(iter(variant.values()))
    rows = ["| features | counting " + HEADER, "| --- " * (2 + len(COLUMNS)) + "|"]
    for name in official:
        rows.append(_row(f"{name} | {OFFICIAL}", official[name]))
        rows.append(_row(f"{name} | {VARIANT}", variant[name]))
    rows.append(_row(f"chance | {OFFICIAL}", first, chance=True))
    rows.append(_row(f"chance | {VARIANT}", first_variant, chance=True))
    emb, tags = official.get("embeddings"), official.get("tags")
    answer = ""
    if emb and tags:
        answer = (
            f"**Embeddings find a photo of the query's own hotel first {_pct(emb.hotel[1])} of the time, tags "
            f"{_pct(tags.hotel[1])}** (chance {_pct(first.hotel_chance[1])}). Tags name what is in a photo "
            "(room type, light, objects), which many hotels share; an embedding keeps the details that tell one "
            "hotel from another (carpet, headboard, the view), which is why the dataset's authors answer the "
            "hotel question by retrieval. Photos with the same tags have equal tag vectors, and ties never help "
            "a query, so tags can score below chance.\n"
        )
    counted = (
        f"Queries counted: {first.queries} for the hotel figures, {first.chain_queries} with a chain for the "
        f"chain figures; paper's variant: {first_variant.queries}.\n"
    )
    return "\n".join([
        "# The hotel question by retrieval\n", protocol + "\n", RULE + "\n", answer, *rows, "", counted,
        f"![image-level top-k accuracy by hotel and chain]({figure})\n", DISTINCT, *distinct_rows(distinct), "",
    ])


def distinct_rows(distinct: dict[str, dict[str, Accuracy]]) -> list[str]:
    """The distinct-hotel table (fractions -> percent), with chance: K hotels (chains) of all."""
    rows = ["| features " + HEADER, "| --- " * (1 + len(COLUMNS)) + "|"]
    for name, acc in distinct.items():
        rows.append(f"| {name} | " + " | ".join(_pct(100 * acc[kind].hits[k]) for kind, k in COLUMNS) + " |")
    first = next(iter(distinct.values()))
    rows.append("| chance (K of all) | " + " | ".join(_pct(100 * first[kind].chance(k)) for kind, k in COLUMNS) + " |")
    return rows
