"""How often a tagger's selected words are right on labelled photos, with the uncertainty said.

Everything here is pure, on arrays: a (photos x words) selection against a LabelTable's verdicts.
- precision: selected words judged right or ok / selected words the labels judge (strict: right only);
- recall: photos where the word is right and selected / photos where it is right;
- coverage: photos with at least one selected word the labels judge / photos (per facet: the
  photos on which the facet judges some word).
Counts are small (a hundred photos, a handful per word), so each precision and recall carries a
95 % Wilson interval (scipy's binomtest) and its counts; a word selected on no judged photo has
no precision (NaN), not a perfect one. Cluster agreement (ARI/NMI against the scene column)
stands beside the mean of shuffled clusterings of the same sizes, the score chance gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from alienstay.labelled.table import OK, RIGHT, UNJUDGED, WRONG, LabelTable
from alienstay.vocabulary.words import Vocabulary

CONFIDENCE = 0.95
SHUFFLES = 200


def wilson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of successes / trials; (nan, nan) with no trial."""
    if trials == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(successes), int(trials)).proportion_ci(confidence, method="wilson")
    return float(interval.low), float(interval.high)


def _rate(successes: int, trials: int) -> dict[str, float]:
    low, high = wilson(successes, trials)
    return {"value": successes / trials if trials else float("nan"), "low": low, "high": high}


def _row(name: dict, selected: np.ndarray, verdicts: np.ndarray, photos_judged: int) -> dict:
    """The figures of one word, one facet or everything: `selected`/`verdicts` are the same block."""
    chosen = selected & (verdicts != UNJUDGED)
    n = int(chosen.sum())
    good = int((chosen & (verdicts >= OK)).sum())
    right = int((chosen & (verdicts == RIGHT)).sum())
    is_right = verdicts == RIGHT
    found = int((selected & is_right).sum())
    covered = int(chosen.any(axis=1).sum()) if chosen.ndim == 2 else int(chosen.sum())
    precision, recall = _rate(good, n), _rate(found, int(is_right.sum()))
    return {
        **name,
        "selected": n,
        "correct": good,
        "wrong": int((chosen & (verdicts == WRONG)).sum()),
        "precision": precision["value"],
        "precision_low": precision["low"],
        "precision_high": precision["high"],
        "strict_precision": right / n if n else float("nan"),
        "right_photos": int(is_right.sum()),
        "recall": recall["value"],
        "recall_low": recall["low"],
        "recall_high": recall["high"],
        "judged_photos": photos_judged,
        "covered_photos": covered,
        "coverage": covered / photos_judged if photos_judged else float("nan"),
        "unjudged_selections": int((selected & (verdicts == UNJUDGED)).sum()),
    }


def word_table(selected: np.ndarray, labels: LabelTable, vocab: Vocabulary) -> pd.DataFrame:
    """One row a word: selections the labels judge, precision and recall with their intervals."""
    selected = np.asarray(selected, dtype=bool)
    rows = []
    for i, word in enumerate(vocab.words):
        judged = int(labels.judged[:, i].sum())
        rows.append(_row({"facet": word.facet, "tag": word.tag}, selected[:, i], labels.verdicts[:, i], judged))
    return pd.DataFrame(rows)


def facet_table(selected: np.ndarray, labels: LabelTable, vocab: Vocabulary) -> pd.DataFrame:
    """One row a facet the labels judge, then `all`: precision, recall and coverage per photo."""
    selected = np.asarray(selected, dtype=bool)
    rows = []
    for facet, part in vocab.facet_slices().items():
        judged = labels.judged[:, part].any(axis=1)
        if not judged.any():
            continue
        rows.append(_row({"facet": facet}, selected[:, part], labels.verdicts[:, part], int(judged.sum())))
    rows.append(_row({"facet": "all"}, selected, labels.verdicts, len(labels.files)))
    return pd.DataFrame(rows)


def cluster_agreement(clusters: np.ndarray, scene: pd.Series, seed: int = 0, shuffles: int = SHUFFLES) -> dict[str, float]:
    """ARI and NMI of clusters against the scene labels, beside shuffled clusters of the same sizes."""
    known = scene.notna().to_numpy()
    truth, found = scene[known].astype(str).to_numpy(), np.asarray(clusters)[known]
    if len(set(truth)) < 2 or len(truth) < 3:
        return {"photos": int(known.sum()), "ari": float("nan"), "nmi": float("nan"),
                "shuffled_ari": float("nan"), "shuffled_nmi": float("nan")}
    rng = np.random.default_rng(seed)
    shuffled = [rng.permutation(found) for _ in range(shuffles)]
    return {
        "photos": int(known.sum()),
        "clusters": int(len(set(found.tolist()))),
        "scenes": int(len(set(truth))),
        "ari": float(adjusted_rand_score(truth, found)),
        "nmi": float(normalized_mutual_info_score(truth, found)),
        "shuffled_ari": float(np.mean([adjusted_rand_score(truth, s) for s in shuffled])),
        "shuffled_nmi": float(np.mean([normalized_mutual_info_score(truth, s) for s in shuffled])),
    }


# ---- measured precision beside the analysis' confidence-only verdicts ---------------------------
EVALUATION_TABLE = "evaluation_facets.csv"


def read_measured(report_dir, model_id: str) -> pd.DataFrame | None:
    """The facets table `alienstay evaluate` left in report/ for this model, indexed by facet; None if none."""
    from pathlib import Path

    path = Path(report_dir) / EVALUATION_TABLE
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    if "model_id" not in table or set(table["model_id"].astype(str)) != {model_id}:
        return None  # measured for another tagger: says nothing about this one
    return table.set_index("facet")


def precision_phrase(measured: pd.DataFrame | None, facet: str) -> str:
    """'measured precision x [lo, hi] on n tags' where labels judged the facet, else 'unmeasured'."""
    if measured is None or facet not in measured.index or not measured.loc[facet, "selected"]:
        return "precision unmeasured (a confidence-only verdict: `alienstay evaluate --labels FILE` measures it)"
    row = measured.loc[facet]
    return (f"measured precision {row['precision']:.2f} [{row['precision_low']:.2f}, {row['precision_high']:.2f}] "
            f"on {int(row['selected'])} labelled tags (report/evaluation.md)")
