"""Tag analysis: the numbers on hand-made tag tables, and the CLI note on the real samples."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.notes import analysis
from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace

runner = CliRunner()


def tags_table(rows: dict[str, dict[str, list[tuple[str, float, bool]]]]) -> pd.DataFrame:
    """{image: {facet: [(tag, prob, selected), ...]}} -> a tags.parquet-shaped frame."""
    records = [
        {"image_id": image, "facet": facet, "tag": tag, "prob": prob, "selected": selected,
         "model_id": "m", "vocab_hash": "v"}
        for image, facets in rows.items()
        for facet, words in facets.items()
        for tag, prob, selected in words
    ]
    return pd.DataFrame(records)


@pytest.fixture
def handmade() -> pd.DataFrame:
    # facet "place": balanced over two words, always confident -> informative
    # facet "light": always the same word -> spread 0 -> not informative
    # facet "view": silent on 3 photos of 4 -> coverage 25 % -> not informative
    def photo(place: str, view: bool):
        return {
            "place": [("bedroom", 0.9 if place == "bedroom" else 0.1, place == "bedroom"),
                      ("lobby", 0.9 if place == "lobby" else 0.1, place == "lobby")],
            "light": [("night", 0.8, True), ("daylight", 0.2, False)],
            "view": [("sea view", 0.6 if view else 0.5, view), ("no view", 0.4 if view else 0.5, False)],
        }

    return tags_table({"a": photo("bedroom", True), "b": photo("lobby", False),
                       "c": photo("bedroom", False), "d": photo("lobby", False)})


def test_facet_spread_bounds():
    assert analysis.facet_spread(np.array([5, 0, 0]), 3) == 0.0
    assert analysis.facet_spread(np.array([2, 2, 2]), 3) == pytest.approx(1.0)
    assert analysis.facet_spread(np.array([0, 0]), 2) == 0.0
    assert 0 < analysis.facet_spread(np.array([3, 1]), 2) < 1


def test_frequencies_silence_and_tags_per_image(handmade):
    freq = analysis.tag_frequencies(handmade).set_index("tag")
    assert freq.loc["bedroom", "photos"] == 2 and freq.loc["night", "share"] == 1.0
    assert freq.loc["daylight", "photos"] == 0
    silent = analysis.silent_share(handmade)
    assert silent["view"] == 0.75 and silent["place"] == 0.0
    per_image = analysis.tags_per_image(handmade)
    assert per_image.to_dict() == {"a": 3, "b": 2, "c": 2, "d": 2}


def test_informativeness_separates_useful_from_useless_facets(handmade):
    info = analysis.informativeness(handmade).set_index("facet")
    assert info.loc["place", "spread"] == pytest.approx(1.0)
    assert info.loc["place", "mean_max_prob"] == pytest.approx(0.9)
    assert info.loc["light", "spread"] == 0.0
    assert info.loc["view", "coverage"] == 0.25
    assert info["informative"].to_dict() == {"place": True, "light": False, "view": False}
    text = analysis.verdict_text(info.reset_index(), analysis.Thresholds())
    assert "**1 of 3 facets inform an alien**" in text
    assert "silent on 75% of photos" in text


def test_cooccurrence_and_chains(handmade):
    co = analysis.cooccurrence(handmade)
    assert co.loc["night", "night"] == 1.0
    assert co.loc["bedroom", "lobby"] == 0.0
    assert co.loc["sea view", "bedroom"] == 0.25
    catalog = pd.DataFrame({"image_id": list("abcd"), "chain_name": ["Alpha", "Alpha", "Beta", "Beta"]})
    by_chain = analysis.tags_by_chain(handmade, catalog)
    assert by_chain.loc["Alpha", "bedroom"] == 0.5 and by_chain.loc["Beta", "lobby"] == 0.5
    assert by_chain.loc["Alpha", "night"] == 1.0
    no_chains = catalog.assign(chain_name=pd.NA)
    assert analysis.tags_by_chain(handmade, no_chains).empty


def test_analyse_cli_on_the_real_samples(tmp_path, samples_dir):
    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    model = build_tiny_clip(tmp_path / "tiny-clip")
    result = runner.invoke(app, ["tag", "--model", str(model), "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["analyse", "--examples", "3", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output

    note = (ws.report_dir / "tags.md").read_text()
    for figure in re.findall(r"\]\(([^)]+\.png)\)", note):
        assert (ws.report_dir / figure).stat().st_size > 1000, figure
    for expected in ["tags_frequencies.png", "tags_informativeness.png", "tags_cooccurrence.png", "tags_examples.png"]:
        assert expected in note
    info = analysis.informativeness(ws.read_tags())
    claimed = re.search(r"\*\*(\d+) of (\d+) facets inform an alien\*\*", note)
    assert claimed and int(claimed.group(1)) == int(info["informative"].sum()) and int(claimed.group(2)) == 11
    place = info.set_index("facet").loc["place"]
    assert f"`place` (14 words): coverage {place['coverage']:.0%}" in note
    assert "No chains in the catalog" in note


def test_analyse_without_tags_says_which_command_to_run(workspace):
    from alienstay.workspace.layout import WorkspaceError

    with pytest.raises(WorkspaceError, match="alienstay tag"):
        analysis.run_analysis(workspace)
    analysis_columns = analysis.TAG_COLUMNS + ["score"]
    pd.DataFrame({c: pd.Series(dtype="string") for c in analysis_columns}).to_parquet(workspace.tags_path)
    with pytest.raises(WorkspaceError, match="holds no photos"):
        analysis.run_analysis(workspace)


def test_cooccurrence_when_every_facet_stays_silent_is_empty_not_a_crash() -> None:
    from alienstay.notes.analysis import cooccurrence

    tags = pd.DataFrame(
        {"image_id": ["a", "a", "b"], "facet": ["place"] * 3, "tag": ["bedroom", "lobby", "bedroom"],
         "prob": [0.5, 0.5, 0.6], "selected": [False, False, False]}
    )
    assert cooccurrence(tags).empty
