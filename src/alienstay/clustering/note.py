"""report/clusters.md: does the number of clusters match the number of classes, and why, in this run's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from alienstay.clustering.comparison import ClusteringResult, spread_of_classes
from alienstay.clustering.features import PLACE_FACET
from alienstay.clustering.methods import NOISE, PRIMARY_METHOD, cluster_count


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def why_text(hotel_ari: float, place_ari: float, features_name: str) -> str:
    """The reading of the two ARIs; which paragraph is said depends on the numbers."""
    what = "a tag vector" if features_name == "tags" else "an image embedding"
    if place_ari > hotel_ari:
        return (
            f"So the clusters follow **the place tag** more closely (ARI {_fmt(place_ari)} vs place, "
            f"{_fmt(hotel_ari)} vs hotel). Why: the features describe *what is in a room* (a bed, a pool, "
            "night, a sea view), while a hotel or a chain is an *identity*: a bathroom of hotel A "
            "looks like a bathroom of hotel B, and one hotel shows a lobby, rooms, a pool and a "
            f"restaurant. {what.capitalize()} hardly tells two hotels' bathrooms apart, so clusters cut "
            "across hotels and chains, and the number of clusters follows the number of kinds of place, "
            "not the number of hotels."
        )
    return (
        f"So the clusters follow **the hotel** at least as closely as the place (ARI {_fmt(hotel_ari)} vs "
        f"hotel, {_fmt(place_ari)} vs place): {what} here carries a hotel's identity (its decor, its "
        "furniture line, its light) beyond the kind of room, or the photos of each hotel show one kind "
        "of place. Check the contingency maps below before reading more into it."
    )


def answer_text(result: ClusteringResult, classes: pd.DataFrame, place_facet: str = PLACE_FACET) -> str:
    """Does the number of clusters match the number of classes, and why: in numbers from this run."""
    primary = result.labels[PRIMARY_METHOD]
    scores = result.comparison[result.comparison["method"] == PRIMARY_METHOD].set_index("class")
    similarity = result.similarity.set_index("class") if len(result.similarity) else pd.DataFrame()
    lines = [f"The silhouette picks **k = {result.best_k}** clusters from {len(primary)} photos."]
    for kind in scores.index:
        row = scores.loc[kind]
        verdict = "matches" if int(row["classes"]) == result.best_k else "does not match"
        lines.append(
            f"- **{kind}**: {int(row['classes'])} classes, so the cluster count {verdict} "
            f"(ARI {_fmt(row['ari'])}, NMI {_fmt(row['nmi'])}, homogeneity {_fmt(row['homogeneity'])}, "
            f"completeness {_fmt(row['completeness'])})."
        )
    if "hotel" in scores.index:
        per_cluster, per_class = spread_of_classes(primary, classes["hotel"])
        lines.append(
            f"\nA cluster holds photos of {per_cluster:.1f} hotels on average, and one hotel's photos "
            f"fall into {per_class:.1f} clusters on average."
        )
    if {"hotel", "place"} <= set(similarity.index):
        h, p = similarity.loc["hotel"], similarity.loc["place"]
        lines.append(
            f"Two photos of the **same hotel** have a mean cosine similarity of {_fmt(h['within'])} "
            f"against {_fmt(h['between'])} for two different hotels (a gap of {_fmt(h['within'] - h['between'])}); "
            f"two photos with the **same place tag** have {_fmt(p['within'])} against {_fmt(p['between'])} "
            f"(a gap of {_fmt(p['within'] - p['between'])})."
        )
    if {"hotel", "place"} <= set(scores.index):
        lines.append("\n" + why_text(scores.loc["hotel", "ari"], scores.loc["place", "ari"], result.features_name))
    else:
        missing = [k for k in ("hotel", "place") if k not in scores.index]
        reasons = "; ".join(f"{k}: {result.skipped.get(k, 'not compared')}" for k in missing)
        lines.append(
            f"\nThe hotel-vs-place question cannot be answered from this workspace ({reasons}): "
            f"it needs photos of at least two hotels and a `{place_facet}` facet in the tags."
        )
    return "\n".join(lines)


def report_note(
    result: ClusteringResult,
    classes: pd.DataFrame,
    figures: dict[str, str],
    thumbnails_drawn: int,
    place_facet: str = PLACE_FACET,
) -> str:
    """The whole note: the answer, every score, the named clusters, the figures, what was skipped."""
    parts = [
        "# Clusters by tags vs the real classes\n",
        f"Features: **{result.features_name}** "
        + (
            "(per-facet tag probabilities: bounded, comparable across words, and every facet weighs "
            "the same whatever its number of words)."
            if result.features_name == "tags"
            else "(L2-normalised image embeddings of the tag stage)."
        )
        + f" Photos: {len(result.image_ids)}; hotels: {classes['hotel'].nunique()}, chains: "
        f"{classes['chain'].nunique()}, place tags: {classes['place'].nunique()}.\n",
        "## Does the number of clusters match the number of classes?\n",
        answer_text(result, classes, place_facet) + "\n",
        "Tags group room types; how often embeddings find the hotel: [retrieval.md](retrieval.md) (`alienstay retrieval`).\n",
    ]
    if len(result.comparison):
        table = result.comparison.copy()
        for column in ("ari", "nmi", "homogeneity", "completeness"):
            table[column] = table[column].map(_fmt)
        parts += ["## Scores, every method vs every class\n", table.to_markdown(index=False) + "\n"]
    if "hdbscan" in result.labels:
        noise = float((result.labels["hdbscan"] == NOISE).mean())
        parts.append(
            f"HDBSCAN found {cluster_count(result.labels['hdbscan'])} dense clusters and left "
            f"{noise:.0%} of the photos as noise (scored as one more group above).\n"
        )
    names = result.names[PRIMARY_METHOD]
    sizes = pd.Series(result.labels[PRIMARY_METHOD]).value_counts().sort_index()
    parts += [
        f"## The {PRIMARY_METHOD} clusters, named by their most distinctive tags (highest lift)\n",
        pd.DataFrame({"cluster": sizes.index, "photos": sizes.to_numpy(), "name": [names[c] for c in sizes.index]})
        .to_markdown(index=False)
        + "\n",
    ]
    map_line = f"Map: {result.map_method}"
    if result.map_reason:
        map_line += f" ({result.map_reason})"
    parts.append(f"## Figures\n\n{map_line}; {thumbnails_drawn} thumbnails of typical photos.\n")
    parts += [f"![{title}]({name})\n" for title, name in figures.items()]
    if result.skipped:
        parts.append("## Not computed\n")
        parts += [f"- `{what}`: {why}" for what, why in result.skipped.items()]
        parts.append("")
    return "\n".join(parts)


