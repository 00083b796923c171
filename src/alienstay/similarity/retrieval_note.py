"""The retrieval note and its figure: top-k accuracy by hotel and by chain, embeddings vs tags vs chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alienstay.similarity.retrieval import Accuracy


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f} %"


def plot(accuracies: dict[str, dict[str, Accuracy]], target: Path) -> Path:
    """Grouped bars: hotel top-1/10/100 and chain top-1/3/5 for each feature, beside chance."""
    from alienstay.clustering.figures import _pyplot, save_figure

    plt = _pyplot()
    first = next(iter(accuracies.values()))
    columns = [(kind, k) for kind in ("hotel", "chain") for k in first[kind].ks]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(columns))
    series = list(accuracies.items())
    width = 0.8 / (len(series) + 1)
    for i, (name, acc) in enumerate(series):
        values = [acc[kind].hits[k] for kind, k in columns]
        ax.bar(x + i * width, np.nan_to_num(values), width, label=name)
    ax.bar(x + len(series) * width, [first[kind].chance(k) for kind, k in columns], width, label="chance", color="#bbb")
    ax.set_xticks(x + width * len(series) / 2, [f"{kind}\ntop-{k}" for kind, k in columns])
    ax.set_ylim(0, 1)
    ax.set_ylabel("queries whose own class is in the top k")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Does a photo find its own hotel (chain)?", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, target)


def write_note(accuracies: dict[str, dict[str, Accuracy]], photos: int, hotels: int, chains: int, queries: int, figure: str) -> str:
    rows = ["| features | " + " | ".join(f"{kind} top-{k}" for kind in ("hotel", "chain") for k in next(iter(accuracies.values()))[kind].ks) + " |"]
    rows.append("| --- " * (1 + sum(len(a.ks) for a in next(iter(accuracies.values())).values())) + "|")
    for name, acc in accuracies.items():
        rows.append(f"| {name} | " + " | ".join(_pct(acc[kind].hits[k]) for kind in ("hotel", "chain") for k in acc[kind].ks) + " |")
    first = next(iter(accuracies.values()))
    rows.append("| chance | " + " | ".join(_pct(first[kind].chance(k)) for kind in ("hotel", "chain") for k in first[kind].ks) + " |")
    emb, tags = accuracies.get("embeddings"), accuracies.get("tags")
    answer = ""
    if emb and tags:
        answer = (
            f"**Embeddings find a photo's own hotel first {_pct(emb['hotel'].hits[1])} of the time, tags "
            f"{_pct(tags['hotel'].hits[1])}** (chance {_pct(first['hotel'].chance(1))}). Tags name what is in a "
            "photo (room type, light, objects), which many hotels share, so they group room types; an "
            "embedding keeps the details that tell one hotel from another (carpet, headboard, the view), "
            "which is why the dataset's authors answer the hotel question by retrieval.\n"
        )
    return "\n".join([
        "# The hotel question by retrieval\n",
        f"Every usable photo with both an embedding and a tag vector ({photos} photos, {hotels} hotels, "
        f"{chains} chains) is a query ({queries} queries) against all the others, its own exact and near copies "
        "left out. A query ranks the hotels by their best-matching photo (cosine) and scores a hit at k when "
        "its own hotel is among the first k: the metric of Hotels-50K (top-1/10/100 by hotel, top-1/3/5 by "
        "chain; photos without a chain, Hotels-50K's chain -1, are left out of the chain figures). Ties count "
        "against the query. Chance: k hotels of all.\n",
        answer,
        *rows,
        "",
        f"Queries answered: by hotel {first['hotel'].queries} ({first['hotel'].unanswerable} whose hotel has no "
        f"other photo), by chain {first['chain'].queries}"
        + (" (fewer than two chains among these photos: by chain cannot be asked)" if first["chain"].labels < 2 else "")
        + ".\n",
        f"![top-k accuracy by hotel and chain]({figure})\n",
    ])
