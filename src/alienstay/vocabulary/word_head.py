"""A word head: per-word probabilities learned from an image classifier's class scores.

ImageNet has objects, not rooms, and no "daylight": ConSE (offline.py) can only say which
word's *name* is close to the names of the classes it sees, so "bathtub" wins on lakes and
"night" on sunny coasts. A room follows from its objects (a bed, a tub and a sink, tables and
chairs), and light from the pixels. The head is one L2-regularised logistic regression per
word over a photo's features:
- the log of the 1000 ImageNet class probabilities (standardised), and
- a few pixel statistics (brightness, its spread, saturation, sky-blue share of the top third,
  and warmth, red minus blue, of the whole photo, its brightest tenth and its top third: lamps
  light a room orange, daylight does not; standardised and weighted by STAT_WEIGHT so twelve
  numbers are not drowned by a thousand),
fitted on labelled photos (calibration.py fits it inside cross-validation, never on the photos it
is scored on). Strong regularisation (C = HEAD_C): 125 photos cannot support more.
The head stores only numbers (means, scales, coefficients), so a profile is a plain YAML file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Compared (C 0.001-0.1, weight 1-10) on the calibration photos' cross-validation folds, so mildly
# optimistic: docs/tagging.md, "Tags you can trust", says so.
HEAD_C = 0.01
STAT_WEIGHT = 3.0
LOG_FLOOR = 1e-4  # class probabilities below it carry no information: log(p + floor)
PIXEL_MEAN = PIXEL_STD = 0.5  # how the offline transform normalised the pixels (offline.ImageNetTransform)
WARMTH_STATS = ("warmth", "highlight_warmth", "top_warmth")  # added last (docs/tagging.md measures with and without)
STAT_NAMES = ("brightness", "bright_p90", "dark_p10", "top_brightness", "saturation", "blue_share",
              "top_blue_share", "dark_share", "bright_share", *WARMTH_STATS)


def pixel_statistics(pixels: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) normalised pixels -> (B, len(STAT_NAMES)) light and sky statistics."""
    rgb = np.clip(np.asarray(pixels, dtype=np.float32) * PIXEL_STD + PIXEL_MEAN, 0.0, 1.0)
    lum = rgb.mean(axis=1)
    top = slice(0, rgb.shape[2] // 3)
    blue = (rgb[:, 2] > rgb[:, 0] + 0.05) & (rgb[:, 2] > 0.45)
    saturation = (rgb.max(axis=1) - rgb.min(axis=1)) / np.maximum(rgb.max(axis=1), 1e-6)
    flat = lum.reshape(len(lum), -1)
    p10, p90 = np.percentile(flat, [10, 90], axis=1)
    warmth = rgb[:, 0] - rgb[:, 2]
    return np.stack([
        flat.mean(1), p90, p10,
        lum[:, top].reshape(len(lum), -1).mean(1), saturation.reshape(len(lum), -1).mean(1),
        blue.reshape(len(lum), -1).mean(1), blue[:, top].reshape(len(lum), -1).mean(1),
        (flat < 0.15).mean(1), (flat > 0.85).mean(1),
        warmth.reshape(len(lum), -1).mean(1), _mean_where_at_least(warmth, flat, p90),
        warmth[:, top].reshape(len(lum), -1).mean(1),
    ], axis=1).astype(np.float32)


def _mean_where_at_least(values: np.ndarray, lum: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """(B, S, S) values averaged over each photo's pixels whose lum (B, S*S) is at least its floor (B,)."""
    brightest = lum >= floor[:, None]
    flat = values.reshape(len(values), -1)
    return (flat * brightest).sum(1) / brightest.sum(1)


def head_features(class_probs: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The raw features a head reads: log class probabilities, then pixel statistics."""
    return np.hstack([np.log(np.asarray(class_probs, dtype=np.float32) + LOG_FLOOR), pixel_statistics(pixels)])


@dataclass(frozen=True)
class WordHead:
    """Standardisation and one logistic regression per word ("facet:tag")."""

    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,) standard deviation, times STAT_WEIGHT's inverse for the statistics
    words: tuple[str, ...]
    coef: np.ndarray  # (len(words), F)
    intercept: np.ndarray  # (len(words),)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(B, F) raw features -> (B, len(words)) probabilities that each word is right."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ self.coef.T + self.intercept)))

    def apply(self, probs: np.ndarray, features: np.ndarray, vocab_words: list[str]) -> np.ndarray:
        """Replace the probabilities of the words the head knows; the rest stay as they are."""
        out = np.array(probs, dtype=np.float32, copy=True)
        index = {word: i for i, word in enumerate(vocab_words)}
        known = [(index[w], j) for j, w in enumerate(self.words) if w in index]
        if known:
            predicted = self.predict(features)
            for column, j in known:
                out[:, column] = predicted[:, j]
        return out

    @property
    def feature_count(self) -> int:
        """How many raw features the head reads (head_features: class log-probabilities, then statistics)."""
        return len(self.mean)

    def only(self, words: set[str]) -> "WordHead":
        """The head for these words alone (a profile keeps only the words it may select)."""
        keep = [i for i, w in enumerate(self.words) if w in words]
        return WordHead(self.mean, self.scale, tuple(self.words[i] for i in keep), self.coef[keep], self.intercept[keep])

    def to_dict(self) -> dict:
        return {"mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist(),
                "words": {w: {"intercept": round(float(b), 6), "coef": c.round(6).tolist()}
                          for w, c, b in zip(self.words, self.coef, self.intercept, strict=True)}}

    @classmethod
    def from_dict(cls, document: dict) -> "WordHead":
        words = tuple(document["words"])
        return cls(np.asarray(document["mean"], dtype=np.float64), np.asarray(document["scale"], dtype=np.float64),
                   words, np.asarray([document["words"][w]["coef"] for w in words], dtype=np.float64).reshape(len(words), -1),
                   np.asarray([document["words"][w]["intercept"] for w in words], dtype=np.float64))


def standardiser(features: np.ndarray, n_stats: int = len(STAT_NAMES)) -> tuple[np.ndarray, np.ndarray]:
    mean, scale = features.mean(0), features.std(0) + 1e-6
    scale[-n_stats:] /= STAT_WEIGHT  # a smaller scale weighs a statistic more under the same L2 penalty
    return mean, scale


def fit_head(features: np.ndarray, targets: dict[str, np.ndarray], c: float = HEAD_C,
             n_stats: int = len(STAT_NAMES)) -> WordHead:
    """One logistic regression a word; `targets[word]` is 1 (right/ok), 0 (wrong) or -1 (not judged).

    The last `n_stats` feature columns are pixel statistics (weighted by STAT_WEIGHT)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardiser(features, n_stats)
    z = (features - mean) / scale
    words, coefs, intercepts = [], [], []
    for word, y in targets.items():
        keep = y >= 0
        if len(set(y[keep].tolist())) < 2:
            continue  # one class only: nothing to learn, the word stays silent
        model = LogisticRegression(C=c, max_iter=2000).fit(z[keep], y[keep])
        words.append(word)
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
    coef = np.asarray(coefs).reshape(len(words), features.shape[1])
    return WordHead(mean, scale, tuple(words), coef, np.asarray(intercepts))
