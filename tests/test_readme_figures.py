"""The docs' figures about the sample photos are what the commands print today: each test
reruns the command a figure comes from and fails when the quoted figure no longer matches.

The sample photos go through the CLI as docs/tagging.md says: `ingest folder`, `preprocess`,
`tag --model offline` (the tagger every machine has), `cluster`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.testing.tiny_models import prepared_workspace
from alienstay.workspace.layout import Workspace

DOCS = Path(__file__).resolve().parents[1] / "docs"
TAGGING, CLUSTERING, HARDWARE = DOCS / "tagging.md", DOCS / "clustering.md", DOCS / "hardware.md"
TABLE_FACETS = ("place", "objects", "light", "comfort")
runner = CliRunner()
QUOTED = re.compile(r"None of these (\d+) tags is labelled wrong: the (\d+) on facets the labels judge are (\d+) right "
                    r"and (\d+) defensible .*?, the other (\d+) are on facets the labels leave open")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, samples_dir: Path) -> Workspace:
    ws = prepared_workspace(tmp_path_factory.mktemp("readme") / "ws", samples_dir)
    for command in (["tag", "--model", "offline"], ["cluster"]):
        result = runner.invoke(app, [*command, "--workspace", str(ws.root)])
        assert result.exit_code == 0, result.output
    return ws


def page(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def quoted_sample_table() -> dict[str, list[str]]:
    """photo -> its cells, from docs/tagging.md's table of the offline tagger on the samples."""
    text = page(TAGGING)
    start = text.index("| photo | place | objects | light | comfort |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].split(" ")[0]] = cells[1:]
    return rows


def test_the_sample_tag_table_and_its_count_are_what_the_tag_stage_selects(tagged: Workspace) -> None:
    tags = tagged.read_tags()
    chosen = tags[tags["selected"] & tags["facet"].isin(TABLE_FACETS)]
    made = {}
    for image_id in sorted(tags["image_id"].unique()):
        mine = chosen[chosen["image_id"] == image_id]
        made[Path(image_id).stem] = [", ".join(mine.loc[mine["facet"] == f, "tag"]) or "–" for f in TABLE_FACETS]
    assert quoted_sample_table() == made
    assert int(QUOTED.search(" ".join(page(TAGGING).split())).group(1)) == len(chosen)


def test_the_right_and_defensible_counts_are_what_the_labels_say(tagged: Workspace) -> None:
    from test_offline_encoder import _sample_verdicts

    from alienstay.vocabulary.words import load_vocabulary

    found = _sample_verdicts(tagged.read_tags(), load_vocabulary())["verdict"].value_counts()
    total, judged, right, ok, other = map(int, QUOTED.search(" ".join(page(TAGGING).split())).groups())
    assert (judged, right, ok) == (found.sum(), found.get("right", 0), found.get("ok", 0))
    assert found.get("wrong", 0) == 0 and other == total - judged


def test_the_clustering_sentence_is_what_the_cluster_note_says(tagged: Workspace) -> None:
    note = (tagged.report_dir / "clusters.md").read_text(encoding="utf-8")
    k = re.search(r"The silhouette picks \*\*k = (\d+)\*\*", note).group(1)
    classes, ari = re.search(r"\*\*place\*\*: (\d+) classes.*?\(ARI (-?[\d.]+)", note).groups()
    sentence = " ".join(page(CLUSTERING).split())
    assert f"the silhouette picks k = {k} (" in sentence
    assert f"ARI {ari} against the `place` tag, which has {classes} values here" in sentence


def test_the_presets_table_names_the_offline_image_model_that_runs() -> None:
    from alienstay.encoders.offline import IMAGE_MODEL
    from alienstay.runtime.presets import model_for

    lite = IMAGE_MODEL.replace("efficientnet-lite", "EfficientNet-Lite")  # efficientnet-lite1 -> EfficientNet-Lite1
    row = next(line for line in page(HARDWARE).splitlines() if line.startswith("| tagger | openai/clip-vit-base-patch32"))
    assert f"`offline` ({lite} + all-MiniLM-L6-v2, ConSE)" in row
    assert lite in model_for("offline", "tagger").licence  # and `models list --preset offline` says the same
