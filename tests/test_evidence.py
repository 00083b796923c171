"""Encoders declare what they can see: selection, the tags table and the analysis honour it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from alienstay.labelled.samples import load_labels, score_selection
from alienstay.notes import analysis
from alienstay.vocabulary.evidence import (
    SEES_EVERYTHING,
    Evidence,
    FacetRule,
    evidence_of,
    select_tags,
)
from alienstay.vocabulary.words import load_vocabulary, parse_vocabulary
from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def water_vocabulary():
    word = lambda **extra: {"definition": "d", "prompts": ["p"], **extra}  # noqa: E731
    return parse_vocabulary(
        {
            "version": 1,
            "facets": {
                "water": {"select": {"top_k": 1, "min_prob": 0.3},
                          "words": {"pool": word(), "sea": word(), "no water": word(absence=True)}},
                "count": {"select": {"top_k": 1, "min_prob": 0.3}, "words": {"one": word(), "many": word()}},
            },
        }
    )


def test_absence_words_are_marked_in_the_packaged_vocabulary():
    assert load_vocabulary().absence_tags == {"no view", "no water", "nothing arranged"}


def test_an_encoder_that_cannot_see_absences_never_selects_one_nor_the_runner_up_below_its_floor():
    vocab = water_vocabulary()
    probs = np.array([[0.1, 0.2, 0.7, 0.6, 0.4], [0.6, 0.1, 0.3, 0.5, 0.5]])
    everything = select_tags(probs, vocab, SEES_EVERYTHING)
    assert np.array(vocab.tags)[everything[0]].tolist() == ["no water", "one"]
    blind = Evidence(sees_absences=False)
    chosen = np.array(vocab.tags)[select_tags(probs, vocab, blind)[0]].tolist()
    assert chosen == ["one"]  # "sea" (0.2) is below the floor: water stays silent, it does not fall back
    assert np.array(vocab.tags)[select_tags(probs, vocab, blind)[1]].tolist() == ["pool", "one"]


def test_a_facet_the_encoder_does_not_judge_stays_silent_and_rules_replace_the_vocabulary_floors():
    vocab = water_vocabulary()
    probs = np.array([[0.6, 0.3, 0.1, 0.9, 0.1]])
    evidence = Evidence(facets=frozenset({"water"}), rules={"water": FacetRule(top_k=1, min_prob=0.7)})
    assert not select_tags(probs, vocab, evidence).any()  # pool 0.6 < 0.7; count is not judged
    assert evidence.may_select(vocab).tolist() == [True, True, True, False, False]
    assert evidence.key != SEES_EVERYTHING.key


def test_an_encoder_without_a_declaration_judges_everything():
    assert evidence_of(SimpleNamespace(model_id="clip")) is SEES_EVERYTHING


def test_tag_stage_writes_the_judged_column_from_the_encoders_evidence(tiny_clip, tmp_path, samples_dir):
    from alienstay.encoders.hf import load_hf_encoder
    from alienstay.tagging import run_tagging

    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    encoder = load_hf_encoder(str(tiny_clip))
    encoder.evidence = Evidence(facets=frozenset({"place", "water"}), sees_absences=False)
    vocab = load_vocabulary()
    run_tagging(ws, encoder, vocab, workers=0, show_progress=False)
    tags = pd.read_parquet(ws.tags_path)
    judged = tags.groupby("facet")["judged"].any()
    assert judged["place"] and judged["water"] and not judged["count"]
    assert not tags.loc[tags["tag"] == "no water", "judged"].any()
    assert not tags.loc[~tags["judged"], "selected"].any()
    assert not tags.loc[tags["tag"].isin(vocab.absence_tags), "selected"].any()

    note = analysis.build_note(analysis.read_tags_for_analysis(ws), pd.DataFrame(
        {"image_id": [], "chain_name": [], "prepared_path": [], "path": []}), ws.report_dir, 2, analysis.Thresholds())
    assert "9 facets are not judged by this tagger" in note
    assert "- `count` (3 words): not judged by this tagger." in note
    silent = analysis.silent_table(analysis.read_tags_for_analysis(ws)).set_index("facet")
    assert silent.loc["count", "judged"] == analysis.NOT_JUDGED and silent.loc["count", "silent share"] == 1.0
    assert silent.loc["place", "judged"] == "yes"


def test_labels_name_only_vocabulary_words_and_score_by_right_ok_and_wrong():
    vocab = load_vocabulary()
    photos = load_labels(vocab)
    assert len(photos) == 13 and all(p.labels for p in photos)
    villa = next(p for p in photos if p.name == "villa_ocean")
    assert villa.labels["water"].verdict("swimming pool") == "right"
    assert villa.labels["water"].verdict("no water") == "wrong"
    assert villa.labels["place"].verdict("balcony") == "ok"
    selected = np.zeros((1, len(vocab.words)), dtype=bool)
    for tag in ["swimming pool", "no water", "balcony", "modern"]:
        selected[0, vocab.tags.index(tag)] = True
    table = score_selection([villa], selected, vocab).set_index("facet")
    assert table.loc["water", "precision"] == 0.5 and table.loc["water", "wrong"] == 1
    assert table.loc["place", "precision"] == 1.0 and table.loc["place", "strict_precision"] == 0.0
    assert table.loc["all", "selected"] == 4 and table.loc["all", "wrong"] == 1
