"""The gallery over a synthetic workspace, through FastAPI's TestClient."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import webworkspace
from fastapi.testclient import TestClient

from alienstay.web.app import create_app
from alienstay.wordindex import lookup as wordindex
from alienstay.wordindex.build import build_word_index
from alienstay.workspace.layout import Workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.jpg"
    return webworkspace.jpeg(secret, (1, 2, 3))


@pytest.fixture
def client(tmp_path: Path, outside: Path) -> TestClient:
    return TestClient(create_app(webworkspace.build(tmp_path / "ws", outside_file=outside)))


def test_search_is_an_and_of_selected_tags_ranked_by_summed_prob(client: TestClient) -> None:
    found = client.get("/api/search", params={"words": "pool,night"}).json()
    assert [r["image_id"] for r in found["results"]] == webworkspace.POOL_NIGHT
    assert found["results"][0]["score"] == pytest.approx(0.9 + 0.8, abs=1e-4)
    # h1/c.jpg has night at 0.5 but not selected: an unselected tag is no match.
    only_pool = client.get("/api/search?words=pool").json()
    assert [r["image_id"] for r in only_pool["results"]] == webworkspace.POOL
    chips = {c["tag"] for c in only_pool["results"][1]["tags"]}
    assert chips == {"pool", "night"}  # each result carries its selected tags


def test_facet_qualified_word_and_unknown_word(client: TestClient) -> None:
    found = client.get("/api/search?words=light:bright").json()
    assert [r["image_id"] for r in found["results"]] == ["h2/d.jpg"]
    missing = client.get("/api/search?words=pool,teleporter").json()
    assert missing["total"] == 0 and missing["unknown"] == ["teleporter"]


def test_search_page_shows_results_in_order_with_chips(client: TestClient) -> None:
    page = client.get("/?words=pool,night")
    assert page.status_code == 200
    text = page.text
    first, second = text.index('data-image-id="h1/a.jpg"'), text.index('data-image-id="h2/b.jpg"')
    assert first < second and 'data-image-id="h1/c.jpg"' not in text
    assert 'class="chip facet-place hit"' in text
    assert 'data-word="bedroom"' in text  # the vocabulary chips, by facet


def test_photo_page_and_api_show_tags_cluster_catalog_and_edits(client: TestClient) -> None:
    record = client.get("/api/images/h1/a.jpg").json()
    assert record["cluster"]["cluster"] == 0 and record["cluster"]["name"] == "pool + night"
    assert [n["image_id"] for n in record["neighbours"]] == ["h2/b.jpg", "h1/c.jpg"]  # nearest on the map first
    assert record["catalog"]["hotel_id"] == "h1"
    assert [t["tag"] for t in record["tags"][0]["tags"]] == ["pool", "bedroom"]
    assert {e["edit_id"] for e in record["edits"]} >= {"e0"} and "e1" not in {e["edit_id"] for e in record["edits"]}
    staff = client.get("/api/images/h1/a.jpg?view=staff").json()
    assert {e["edit_id"] for e in staff["edits"]} >= {"e0", "e1"}  # guests never see the too-strong e1
    page = client.get("/photo/h1/a.jpg").text
    assert "pool + night" in page and "time_of_day" in page
    assert client.get("/photo/h3/broken.jpg").status_code == 404  # rejected photos are not shown


def test_edits_view_shows_original_beside_each_value_with_verdicts(client: TestClient) -> None:
    page = client.get("/edits?recipe=time_of_day&view=staff").text
    assert 'data-edit-id="e0"' in page and 'data-edit-id="e1"' in page
    assert "verdict faithful" in page and "verdict too_strong" in page and "structure ssim 0.40 &lt; 0.5" in page
    guest = client.get("/edits?recipe=time_of_day").text
    assert 'data-edit-id="e0"' in guest and 'data-edit-id="e1"' not in guest and "too_strong" not in guest
    assert "structure ssim" in page and "/media/photo/h1/a.jpg" in page
    edits = client.get("/api/edits?recipe=time_of_day&view=staff").json()["edits"]
    assert [e["value"] for e in edits[:2]] == ["dusk", "night"]
    assert "night" not in [e["value"] for e in client.get("/api/edits?recipe=time_of_day").json()["edits"]]
    assert client.get(edits[0]["image"]).status_code == 200


def test_media_serves_named_files_and_refuses_everything_else(client: TestClient, outside: Path) -> None:
    photo = client.get("/media/photo/h1/a.jpg")
    assert photo.status_code == 200 and photo.content[:2] == b"\xff\xd8"
    assert client.get("/media/edit/e0").status_code == 200
    # Rows whose files lie outside the workspace are never served.
    assert client.get("/media/photo/h3/evil.jpg").status_code == 404
    assert client.get("/media/edit/evil").status_code == 404
    # Paths in the URL are ids, never file paths.
    for url in [
        "/media/photo/..%2F..%2Foutside%2Fsecret.jpg",
        "/media/photo/%2e%2e/%2e%2e/outside/secret.jpg",
        f"/media/photo/{outside}",
        "/media/edit/..%2Foutside%2Fsecret.jpg",
        "/static/..%2Fapp.py",
        "/static/%2e%2e/app.py",
    ]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.content != outside.read_bytes()


def test_missing_optional_tables_give_friendly_empty_states(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    bare = TestClient(create_app(root))
    assert "No catalog in this workspace yet" in bare.get("/").text

    webworkspace.write_catalog(root)
    client = TestClient(create_app(root))
    assert "No tags yet" in client.get("/").text
    assert client.get("/api/search?words=pool").json() == {
        "words": ["pool"], "unknown": ["pool"], "total": 0, "counts": {"pool": 0}, "page": 1, "per_page": 120, "pages": 0,
        "results": [],
    }
    assert client.get("/api/tags").json() == {"facets": []}
    assert client.get("/api/edits").json() == {"edits": []}
    assert 'id="no-edits"' in client.get("/edits").text
    page = client.get("/photo/h1/a.jpg").text
    assert "Not tagged yet" in page and "Not clustered yet" in page and "No restyles" in page

    webworkspace.write_tags(root)  # the gallery re-reads a table that appears while it runs
    assert [r["image_id"] for r in client.get("/api/search?words=pool,night").json()["results"]] == webworkspace.POOL_NIGHT


def test_search_core_ties_break_by_id(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws").ensure()
    pd.DataFrame(
        {"image_id": ["b", "a", "c"], "facet": "place", "tag": "pool", "prob": [0.5, 0.5, 0.6], "score": 0.1, "selected": True}
    ).astype({"prob": "float32", "score": "float32"}).to_parquet(ws.tags_path, index=False)
    build_word_index(ws)
    index = wordindex.WordIndex.open(ws)
    found = wordindex.search(index, ["pool"], None)
    assert index.ids_of(found.ordinals) == ["c", "a", "b"] and found.total == 3
    assert wordindex.search(index, [], None).total == 0 and wordindex.search(None, ["pool"], None).total == 0


def test_type_ahead_lists_every_word_once_an_index_and_follows_new_tags(tmp_path: Path, outside: Path) -> None:
    root = webworkspace.build(tmp_path / "ws", outside_file=outside)
    client = TestClient(create_app(root))
    words = [(g["facet"], t["tag"]) for g in client.get("/api/tags").json()["facets"] for t in g["tags"]]
    page = client.get("/").text
    listed = page[page.index('<datalist id="vocabulary">'):page.index("</datalist>")]
    assert words and all(f'<option value="{tag}" label="{facet}"></option>' in listed for facet, tag in words)
    site = client.app.state.site
    gallery = site.data.current
    assert site.vocabulary_html(gallery) is site.vocabulary_html(gallery)  # rendered once, not once a request

    tags = pd.read_parquet(root / "tags.parquet")
    extra = tags.iloc[:1].assign(facet="place", tag="observatory", selected=True)
    pd.concat([tags, extra]).to_parquet(root / "tags.parquet", index=False)  # a new tag run adds a word
    listed = client.get("/").text
    assert '<option value="observatory" label="place"></option>' in listed
    assert site.vocabulary_html(site.data.current) is not site.vocabulary_html(gallery)


def test_a_photo_listed_twice_in_the_catalog_shows_its_first_row(tmp_path: Path, outside: Path) -> None:
    root = webworkspace.build(tmp_path / "ws", outside_file=outside)
    catalog = pd.read_parquet(root / "catalog.parquet")
    first = catalog[catalog["image_id"] == "h1/a.jpg"].iloc[0]
    twice = pd.concat([catalog, catalog[catalog["image_id"] == "h1/a.jpg"].assign(hotel_id="copy", width=1)])
    twice.to_parquet(root / "catalog.parquet", index=False)
    client = TestClient(create_app(root))
    record = client.get("/api/images/h1/a.jpg").json()
    assert record["catalog"]["hotel_id"] == first["hotel_id"] != "copy"
    home = client.get("/").text
    assert home.count('data-image-id="h1/a.jpg"') == 1  # one card, not two
