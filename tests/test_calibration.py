"""Labels files, evaluation and calibration: pure parts on small arrays, then both commands end to end
on the real calibration photos (../shared/samples/calibration) with the offline tagger, and with
tiny random CLIP and SigLIP models for the hub paths."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from alienstay.calibration import CalibrationError, calibrate, check_profile, choose_floor, load_profile
from alienstay.cli import app
from alienstay.evaluation import cluster_agreement, facet_table, wilson, word_table
from alienstay.evidence import SEES_EVERYTHING, select_tags
from alienstay.labeltable import OK, RIGHT, UNJUDGED, WRONG, LabelsFileError, load_label_table
from alienstay.vocabulary import load_vocabulary
from tests.conftest import REPO, on_ci

CALIBRATION = Path(os.environ.get("ALIENSTAY_CALIBRATION", REPO.parent / "shared" / "samples" / "calibration"))
runner = CliRunner()


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary(None)


@pytest.fixture(scope="module")
def calibration_labels() -> Path:
    labels = CALIBRATION / "labels.tsv"
    if not labels.is_file():
        message = f"calibration photos not found at {CALIBRATION} (set ALIENSTAY_CALIBRATION)"
        if on_ci():
            pytest.fail(message, pytrace=False)  # on CI a missing input fails, it does not skip
        pytest.skip(message)
    return labels


def _labels_file(tmp_path: Path, rows: list[str], name: str = "labels.tsv") -> Path:
    for i in range(len(rows) - 1):
        from PIL import Image

        Image.new("RGB", (8, 8)).save(tmp_path / f"p{i}.jpg")
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _index(vocab, facet: str, tag: str) -> int:
    return next(i for i, w in enumerate(vocab.words) if (w.facet, w.tag) == (facet, tag))


# ---- labels file ----------------------------------------------------------------------------
def test_labels_file_judges_words_through_the_mapping(tmp_path, vocab):
    path = _labels_file(tmp_path, ["file\tscene\thas_bed\thas_daylight\tnote", "p0.jpg\tbedroom\t1\t0\tx", "p1.jpg\tother\tno\t\t"])
    table = load_label_table(path, vocab)
    v = table.verdicts
    assert v[0, _index(vocab, "place", "bedroom")] == RIGHT
    assert v[0, _index(vocab, "place", "bathroom")] == WRONG  # the scene judges the whole place facet
    assert v[0, _index(vocab, "objects", "bed")] == RIGHT
    assert v[0, _index(vocab, "light", "daylight")] == WRONG
    assert v[0, _index(vocab, "objects", "sofa")] == UNJUDGED  # no column names it
    assert (v[1, [i for i, w in enumerate(vocab.words) if w.facet == "place"]] == UNJUDGED).all()  # scene `other`
    assert v[1, _index(vocab, "objects", "bed")] == WRONG  # "no" reads as 0
    assert list(table.scene.astype(object)) == ["bedroom", "other"]


def test_user_mapping_extends_the_packaged_one(tmp_path, vocab):
    path = _labels_file(tmp_path, ["file,has_fireplace", "p0.jpg,1"], "labels.csv")
    mapping = tmp_path / "mine.yaml"
    mapping.write_text(yaml.safe_dump({"columns": {"has_fireplace": {"1": {"objects": {"right": ["fireplace"]}}}}}))
    table = load_label_table(path, vocab, mapping)
    assert table.verdicts[0, _index(vocab, "objects", "fireplace")] == RIGHT


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["name\tscene", "p0.jpg\tbedroom"], "no `file` column"),
        (["file\tcolour", "p0.jpg\tred"], "none of its columns"),
        (["file\tscene", "missing.jpg\tbedroom"], "photos it names are missing"),
    ],
)
def test_bad_labels_file_names_the_file_and_the_fix(tmp_path, vocab, rows, message):
    path = _labels_file(tmp_path, rows)
    with pytest.raises(LabelsFileError, match=message) as error:
        load_label_table(path, vocab)
    assert str(path) in str(error.value)


def test_mapping_naming_an_unknown_word_is_refused(tmp_path, vocab):
    path = _labels_file(tmp_path, ["file\thas_x", "p0.jpg\t1"])
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(yaml.safe_dump({"columns": {"has_x": {"1": {"objects": {"right": ["spaceship"]}}}}}))
    with pytest.raises(LabelsFileError, match="spaceship"):
        load_label_table(path, vocab, mapping)


# ---- figures ----------------------------------------------------------------------------------
def test_wilson_interval_is_wide_on_few_photos():
    low, high = wilson(5, 5)
    assert high == pytest.approx(1.0) and 0.5 < low < 0.6  # 5 of 5 right: the truth may be ~0.57
    assert np.isnan(wilson(0, 0)[0])


def test_precision_recall_coverage_count_only_judged_selections(tmp_path, vocab):
    path = _labels_file(tmp_path, ["file\thas_bed", "p0.jpg\t1", "p1.jpg\t0", "p2.jpg\t1"])
    table = load_label_table(path, vocab)
    bed = _index(vocab, "objects", "bed")
    selected = np.zeros((3, len(vocab.words)), bool)
    selected[[0, 1], bed] = True
    selected[2, _index(vocab, "objects", "sofa")] = True  # not judged by any column: not counted
    words = word_table(selected, table, vocab).set_index("tag")
    assert (words.loc["bed", "selected"], words.loc["bed", "correct"]) == (2, 1)
    assert words.loc["bed", "precision"] == 0.5 and words.loc["bed", "recall"] == 0.5
    assert words.loc["sofa", "unjudged_selections"] == 1 and np.isnan(words.loc["sofa", "precision"])
    facets = facet_table(selected, table, vocab).set_index("facet")
    assert facets.loc["all", "covered_photos"] == 2 and facets.loc["all", "coverage"] == pytest.approx(2 / 3)


def test_cluster_agreement_stands_beside_chance():
    scene = pd.Series(["a"] * 10 + ["b"] * 10, dtype="string")
    perfect = cluster_agreement(np.array([0] * 10 + [1] * 10), scene)
    assert perfect["ari"] == pytest.approx(1.0) and abs(perfect["shuffled_ari"]) < 0.2


def test_floor_is_the_lowest_that_keeps_the_target_above_it():
    probs = np.array([0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.3, 0.2])
    verdicts = np.array([RIGHT, RIGHT, OK, RIGHT, RIGHT, WRONG, WRONG, RIGHT])
    assert choose_floor(probs, verdicts, target=0.9, min_selected=5) == pytest.approx(0.75)
    assert choose_floor(probs, verdicts, target=0.9, min_selected=7) is None  # never 9 in 10 right with 7 selections


def test_calibration_silences_what_it_cannot_trust(tmp_path, vocab):
    """A word whose probability carries its label gets a floor; one whose probability is noise is silenced."""
    rng = np.random.default_rng(0)
    n = 60
    rows = ["file\thas_bed\thas_sofa"] + [f"p{i}.jpg\t{i % 2}\t{(i // 2) % 2}" for i in range(n)]
    table = load_label_table(_labels_file(tmp_path, rows), vocab)
    probs = rng.uniform(0, 0.2, (n, len(vocab.words))).astype(np.float32)
    bed, sofa = _index(vocab, "objects", "bed"), _index(vocab, "objects", "sofa")
    probs[:, bed] = np.where(np.arange(n) % 2 == 1, 0.9, 0.1)
    probs[:, sofa] = rng.uniform(0, 1, n)
    profile = calibrate(probs, table, vocab, SEES_EVERYTHING, model_id="m", revision="r", folds=3)
    assert "objects:bed" in profile.floors and "objects:sofa" not in profile.floors
    assert "objects:sofa" in profile.silenced and "place:bedroom" in profile.silenced
    evidence = profile.evidence(SEES_EVERYTHING)
    chosen = select_tags(probs, vocab, evidence)
    assert chosen[:, bed].sum() == n // 2 and chosen.sum() == n // 2  # only the trusted word speaks
    saved = load_profile(profile.save(tmp_path / "p.yaml"))
    assert saved.floors == pytest.approx(profile.floors) and saved.key == profile.key
    with pytest.raises(CalibrationError, match="re-run `alienstay calibrate`"):
        check_profile(saved, "m", load_vocabulary_with_extra_word(tmp_path), "p.yaml")


def load_vocabulary_with_extra_word(tmp_path: Path):
    from alienstay.vocabulary import default_vocabulary_path

    document = yaml.safe_load(default_vocabulary_path().read_text())
    document["facets"]["objects"]["words"]["rug"] = {"definition": "a mat", "prompts": ["a rug"], "persona": ["A5"]}
    path = tmp_path / "vocab.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_vocabulary(path)


def test_a_profile_that_is_not_yaml_is_named(tmp_path):
    bad = tmp_path / "profile.yaml"
    bad.write_text("floors: [")
    with pytest.raises(CalibrationError, match=str(bad)):
        load_profile(bad)
