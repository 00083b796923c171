"""Nothing silenced leaks: a facet the tagger does not judge shows no word on the photo page,
the photo API or a cluster name (issue 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import webworkspace
from fastapi.testclient import TestClient

from alienstay.clustering.comparison import cluster_names
from alienstay.clustering.features import tag_feature_matrix
from alienstay.web.app import create_app


def _unjudged_light(root: Path) -> Path:
    """The synthetic gallery workspace, its tagger judging `place` only: light words are high but not judged."""
    webworkspace.build(root)
    tags = pd.read_parquet(root / "tags.parquet")
    light = tags["facet"] == "light"
    tags["judged"] = ~light
    tags.loc[light, "selected"] = False  # the tag stage never selects an unjudged word
    tags.to_parquet(root / "tags.parquet", index=False)
    return root


def test_photo_api_and_page_show_an_unjudged_facet_as_not_judged(tmp_path):
    client = TestClient(create_app(_unjudged_light(tmp_path / "ws")))
    record = client.get("/api/images/h1/a.jpg").json()
    facets = {group["facet"]: group for group in record["tags"]}
    assert facets["light"]["judged"] is False and facets["light"]["tags"] == []  # no probability shown
    assert facets["place"]["judged"] is True and facets["place"]["tags"][0]["tag"] == "pool"
    page = client.get("/photo/h1/a.jpg").text
    assert "not judged by this tagger" in page
    assert "80%" not in page  # "night" was 0.8 on this photo: its probability is not on the page


def test_cluster_names_never_use_an_unjudged_word(tmp_path):
    tags = pd.read_parquet(_unjudged_light(tmp_path / "ws") / "tags.parquet")
    ids, words, selected = tag_feature_matrix(tags, value="selected")
    names = cluster_names(selected, words, np.array([0, 0, 0, 1]))
    assert all("night" not in name and "bright" not in name for name in names.values())
    assert names[0] == "pool" and names[1] == "bedroom"


def test_gallery_names_its_tagger_and_offers_example_words_that_find_photos(tmp_path):
    client = TestClient(create_app(_unjudged_light(tmp_path / "ws")))
    page = client.get("/").text
    assert 'id="tagger"' in page and "<code>tiny</code>" in page
    assert "an alien word (pool, bedroom" in page  # the most selected judged words, not a fixed list
    assert "night…" not in page and "soft" not in page  # unjudged or absent words are no example


def test_home_page_marks_an_unjudged_facet_and_shows_no_count_for_it(tmp_path):
    client = TestClient(create_app(_unjudged_light(tmp_path / "ws")))
    page = client.get("/").text
    facets = page[page.index('id="facets"'):]
    light = facets[facets.index("<h3>light</h3>"):]
    light = light[:light.index("</div>")]
    assert "not judged by this tagger" in light and 'data-word="night"' not in light  # no chip, no "0"
    place = facets[facets.index("<h3>place</h3>"):]
    assert 'class="chip facet-place' in place[:place.index("</div>")]  # a judged facet keeps its chips
