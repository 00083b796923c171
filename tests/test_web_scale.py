"""The gallery's word index ranks exactly as the pandas search did; paging, rebuilds, limits, escaping."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import reference_search
import webworkspace
from fastapi.testclient import TestClient

from alienstay.web.app import create_app
from alienstay.web.site import MAX_WORDS
from alienstay.wordindex import lookup as wordindex
from alienstay.wordindex.build import build_word_index
from alienstay.workspace.catalog import conform
from alienstay.workspace.layout import Workspace


def today(tags: pd.DataFrame, usable: set[str], words: list[str]) -> list[tuple[str, float]]:
    """The ranking before the index: the pandas search, then the catalog filter the app applied."""
    ranked = reference_search.search(reference_search.build_search_index(tags), words)
    ranked = ranked[ranked["image_id"].isin(usable)]
    return list(zip(ranked["image_id"], ranked["score"]))


def every_page(client: TestClient, words: list[str], per_page: int) -> tuple[int, list[tuple[str, float]]]:
    first = client.get("/api/search", params={"words": ",".join(words), "per_page": per_page}).json()
    rows = [(r["image_id"], r["score"]) for r in first["results"]]
    for page in range(2, first["pages"] + 1):
        answer = client.get("/api/search", params={"words": ",".join(words), "per_page": per_page, "page": page}).json()
        assert answer["total"] == first["total"]
        rows += [(r["image_id"], r["score"]) for r in answer["results"]]
    return first["total"], rows


def assert_same_ranking(client: TestClient, tags: pd.DataFrame, usable: set[str], words: list[str], per_page: int) -> None:
    expected = today(tags, usable, words)
    total, rows = every_page(client, words, per_page)
    assert total == len(expected), words
    assert [i for i, _ in rows] == [i for i, _ in expected], words  # same photos, same order, ties included
    assert [s for _, s in rows] == [round(float(s), 4) for _, s in expected], words


# ---- a planted workspace: many ties, a tag in two facets, ids out of Python's usual order ----
PLANTED_WORDS = [("place", "pool"), ("place", "bedroom"), ("light", "night"), ("light", "bright"),
                 ("objects", "lamp"), ("style", "bright"), ("count", "for two")]


def planted(root: Path, seed: int = 0, photos: int = 240) -> tuple[pd.DataFrame, set[str]]:
    rng = np.random.default_rng(seed)
    ids = [f"h{i % 7}/{name}" for i, name in enumerate(
        f"{p}{n:03d}.jpg" for n, p in zip(range(photos), itertools.cycle(["a", "B", "é", "Z", "_", "ä"])))]
    rows = []
    for image_id in ids:
        for facet, tag in PLANTED_WORDS:
            prob = float(rng.choice([0.25, 0.5, 0.75, 0.875, rng.random()]))  # mostly ties on purpose
            rows.append({"image_id": image_id, "facet": facet, "tag": tag, "score": 0.2, "prob": prob,
                         "selected": bool(rng.random() < 0.6), "model_id": "planted", "vocab_hash": "0" * 16})
    tags = pd.DataFrame(rows).astype({"score": "float32", "prob": "float32"})
    tags.to_parquet(root / "tags.parquet", index=False)
    usable = set(ids[: photos - 10])  # the last ten photos left the catalog (rejected since)
    catalog = [{"image_id": i, "hotel_id": i.split("/")[0], "source": "folder", "status": "ok" if i in usable else "rejected",
                "reason": None if i in usable else "duplicate"} for i in ids]
    conform(pd.DataFrame(catalog)).to_parquet(root / "catalog.parquet", index=False)
    return tags, usable


QUERIES = [["pool"], ["bright"], ["light:bright"], ["pool", "night"], ["night", "pool"], ["bright", "lamp", "for two"],
           ["place:pool", "pool"], ["pool", "bedroom", "night"]]


@pytest.mark.parametrize(("per_page", "photos"), [(7, 240), (120, 240), (7, 203)])
def test_planted_workspace_ranks_as_today_on_every_page(tmp_path: Path, per_page: int, photos: int) -> None:
    # 203 photos: the last byte of each bit column is partly padding, which must never match.
    root = tmp_path / "ws"
    root.mkdir()
    tags, usable = planted(root, photos=photos)
    client = TestClient(create_app(root))
    for words in QUERIES:
        assert_same_ranking(client, tags, usable, words, per_page)
    counts = client.get("/api/search?words=pool,night").json()["counts"]
    selected = tags[tags["selected"] & tags["image_id"].isin(usable)]
    assert counts == {w: int(selected[selected["tag"] == w]["image_id"].nunique()) for w in ["pool", "night"]}


def test_an_and_of_bit_columns_is_every_photo_with_all_the_words(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    tags, _ = planted(root, photos=203)
    ws = Workspace(root)
    build_word_index(ws)
    index = wordindex.WordIndex.open(ws)
    ids = index.ids.to_pylist()
    selected = tags[tags["selected"]]
    for words in (["pool", "night"], ["bright", "lamp", "for two"], ["pool", "place:pool"]):
        having = [set(selected[selected["tag"] == w.split(":")[-1]]["image_id"]) for w in words]
        expected = sorted(ids.index(i) for i in set.intersection(*having))
        assert index.having_all(words).tolist() == expected


def test_sample_workspace_ranks_as_today(tmp_path: Path, samples_dir: Path) -> None:
    from typer.testing import CliRunner

    from alienstay.cli.commands import app
    from alienstay.testing.tiny_models import build_tiny_clip, prepared_workspace

    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    model = build_tiny_clip(tmp_path / "tiny-clip")
    result = CliRunner().invoke(app, ["tag", "--model", str(model), "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    tags = pd.read_parquet(ws.tags_path)
    usable = set(pd.read_parquet(ws.catalog_path).query("status == 'ok'")["image_id"])
    client = TestClient(create_app(ws.root))
    selected = tags[tags["selected"]]
    common = selected["tag"].value_counts().index[:4].tolist()
    queries = [[w] for w in common] + [list(p) for p in itertools.combinations(common, 2)] + [common[:3]]
    assert any(len(today(tags, usable, q)) > 1 for q in queries)  # the comparison ranks something
    for words in queries:
        assert_same_ranking(client, tags, usable, words, per_page=3)


def test_index_is_rebuilt_when_tags_change_while_the_server_runs(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    tags, usable = planted(root, seed=1)
    client = TestClient(create_app(root))
    before = client.get("/api/search?words=pool,night").json()
    current = (root / "index" / "words" / "current.json").read_text()
    tags, _ = planted(root, seed=2)  # `alienstay tag` rewrote tags.parquet
    assert_same_ranking(client, tags, usable, ["pool", "night"], per_page=50)
    assert client.get("/api/search?words=pool,night").json() != before
    assert (root / "index" / "words" / "current.json").read_text() != current
    assert len([p for p in (root / "index" / "words").iterdir() if p.is_dir()]) == 1  # the old build is gone
    chips = client.get("/api/tags").json()["facets"]
    assert {t["tag"]: t["photos"] for f in chips if f["facet"] == "place" for t in f["tags"]}["pool"] == int(
        tags[(tags["tag"] == "pool") & tags["selected"]].shape[0])


def test_paging_and_word_count_are_validated(tmp_path: Path) -> None:
    client = TestClient(create_app(webworkspace.build(tmp_path / "ws")))
    for query in ["per_page=0", "page=0", "per_page=100000", "page=x"]:
        assert client.get(f"/api/search?words=pool&{query}").status_code == 422, query
        assert client.get(f"/?words=pool&{query}").status_code == 422, query
    page2 = client.get("/api/search?words=pool&per_page=2&page=2").json()
    assert [r["image_id"] for r in page2["results"]] == webworkspace.POOL[2:] and page2["pages"] == 2
    assert client.get("/api/search?words=pool&per_page=2&page=9").json()["results"] == []
    html = client.get("/?words=pool&per_page=2").text
    assert 'id="pager"' in html and "page=2" in html

    made_up = ",".join(f"zq{i}" for i in range(3000))
    assert client.get("/?words=" + made_up).status_code == 422
    assert client.get("/api/search?words=" + made_up).status_code == 422
    few = ",".join(["pool", *(f"zq{i}" for i in range(MAX_WORDS - 1))])
    page = client.get("/?words=" + few)
    assert page.status_code == 200 and len(page.content) < 200_000
    assert "zq1," not in page.text.split('id="dropped"')[0]  # no chip link carries an unknown word
    assert 'id="dropped"' in page.text and [c for c in page.text.split() if "zq" in c]
    assert 'data-image-id="h1/c.jpg"' in page.text  # the known word still searches


# ---- escaping and ids no route can lose --------------------------------------------------------
HOSTILE_ID = 'h9/<script>alert("id")</script>.jpg'
NEWLINE_ID = "h9/new\nline.jpg"
HOSTILE_TAG = '<img src=x onerror=alert("tag")>'


def hostile_workspace(root: Path) -> Path:
    webworkspace.build(root)
    catalog = pd.read_parquet(root / "catalog.parquet")
    extra = []
    for image_id in (HOSTILE_ID, NEWLINE_ID):
        prepared = webworkspace.jpeg(root / "prepared" / f"x{len(extra)}.jpg", (90, 90, 90))
        extra.append({"image_id": image_id, "hotel_id": "<b>hotel</b>", "source": "folder",
                      "prepared_path": str(prepared), "status": "ok"})
    conform(pd.concat([catalog, pd.DataFrame(extra)], ignore_index=True)).to_parquet(root / "catalog.parquet", index=False)
    tags = pd.read_parquet(root / "tags.parquet")
    more = [{"image_id": i, "facet": f, "tag": t, "score": 0.2, "prob": 0.9, "selected": True, "model_id": "tiny",
             "vocab_hash": "0" * 16} for i in (HOSTILE_ID, NEWLINE_ID) for f, t in [("place", "pool"), ("<i>facet</i>", HOSTILE_TAG)]]
    pd.concat([tags, pd.DataFrame(more).astype({"score": "float32", "prob": "float32"})]).to_parquet(root / "tags.parquet", index=False)
    edits = pd.read_parquet(root / "edits.parquet")
    hostile_edit = {**edits.iloc[0].to_dict(), "edit_id": "e9", "image_id": HOSTILE_ID, "recipe": "<u>recipe</u>",
                    "value": "<s>value</s>", "verdict_reason": "<script>reason</script>"}
    pd.concat([edits, pd.DataFrame([hostile_edit])]).to_parquet(root / "edits.parquet", index=False)
    pd.concat([pd.read_parquet(root / "clusters.parquet"), pd.DataFrame(
        {"image_id": [HOSTILE_ID, NEWLINE_ID], "cluster": [0, 0], "method": "kmeans", "k": 2, "features": "tags",
         "name": "<script>cluster</script>", "x": [0.05, 0.06], "y": [0.0, 0.0]})]).to_parquet(root / "clusters.parquet", index=False)
    return root


def test_every_page_escapes_names_and_tags_and_every_listed_photo_opens(tmp_path: Path) -> None:
    root = hostile_workspace(tmp_path / "ws")
    client = TestClient(create_app(root))
    from alienstay.web.cards import page_url, photo_url

    pages = ["/", "/?words=pool", "/?words=" + HOSTILE_TAG, page_url(HOSTILE_ID), page_url(HOSTILE_ID) + "?view=staff",
             page_url("h1/a.jpg"), "/edits", "/edits?view=staff", "/edits?image=" + HOSTILE_ID.replace("<", "%3C")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        for raw in ("<script>", "<img src=x", "<b>hotel", "<i>facet", "<u>recipe", "<s>value"):
            assert raw not in response.text, (url, raw)
    assert "&lt;script&gt;alert(" in client.get("/?words=pool").text
    assert HOSTILE_TAG.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;") in client.get("/").text
    assert "&lt;script&gt;reason" in client.get("/edits?view=staff").text

    # Every photo the home page and the search list opens: page, image and API entry.
    listed = client.get("/api/search?words=pool").json()["results"]
    assert NEWLINE_ID in [r["image_id"] for r in listed] and HOSTILE_ID in [r["image_id"] for r in listed]
    for image_id in [*webworkspace.TAGS, HOSTILE_ID, NEWLINE_ID]:
        assert client.get(page_url(image_id)).status_code == 200, image_id
        assert client.get(photo_url(image_id)).content[:2] == b"\xff\xd8", image_id
        assert client.get("/api/images/" + photo_url(image_id).removeprefix("/media/photo/")).json()["image_id"] == image_id


def test_api_edits_names_no_file_path(tmp_path: Path) -> None:
    root = webworkspace.build(tmp_path / "ws")
    client = TestClient(create_app(root))
    for url in ["/api/edits?view=staff", "/api/images/h1/a.jpg?view=staff"]:
        text = client.get(url).text
        assert str(root) not in text and "output_path" not in text and "source_path" not in text, url
        assert "/media/edit/e0" in text
    assert client.get("/api/edits?view=nobody").status_code == 422
    Workspace(root)  # the workspace itself is untouched by serving it


def test_cluster_neighbours_are_the_nearest_on_the_map_ties_by_id() -> None:
    import pyarrow as pa

    from alienstay.web.tables import Clusters

    rng = np.random.default_rng(0)
    photos = 3000
    ids = [f"h{i % 97:02d}/p{i:05d}.jpg" for i in rng.permutation(photos)]
    xy = rng.integers(0, 12, (photos, 2)).astype(float)  # a coarse grid: many photos at one distance
    xy[rng.choice(photos, 30, replace=False), rng.integers(0, 2, 30)] = rng.choice([np.nan, np.inf], 30)  # off the map
    clusters = Clusters(pa.table({"image_id": ids, "cluster": rng.integers(-1, 3, photos), "x": xy[:, 0], "y": xy[:, 1]}))
    clusters.build_trees()
    cluster, placed = clusters.cluster, np.isfinite(xy).all(axis=1)
    for me in [*rng.choice(photos, 40, replace=False), *np.flatnonzero(~placed)[:3]]:
        same = [j for j in range(photos) if cluster[j] == cluster[me] and j != me and placed[j]]
        brute = sorted((float(np.hypot(*(xy[j] - xy[me]))), ids[j]) for j in same)
        expected = [] if cluster[me] < 0 or not placed[me] else [i for _, i in brute[:8]]
        assert clusters.neighbours(ids[me]) == expected


def test_a_refresh_swaps_in_a_new_snapshot_and_never_changes_the_one_a_request_holds(tmp_path: Path) -> None:
    from alienstay.web.gallery import Gallery

    root = tmp_path / "ws"
    root.mkdir()
    planted(root, seed=1)
    gallery = Gallery(Workspace(root))
    held = gallery.current  # what a request in flight reads
    before = (held.index.folder.name, held.usable, held.catalog, held.count("pool"))
    planted(root, seed=2)  # new tags while the request runs
    fresh = gallery.refresh()
    assert fresh is gallery.current and fresh is not held
    assert fresh.index.folder.name != before[0]
    assert held.index.folder.name == before[0] and held.count("pool") == before[3]
    assert held.usable is before[1] and held.catalog is before[2]
