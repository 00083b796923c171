"""Clustering: planted structure is found, noise is not, degenerate inputs get a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from alienstay import clustering
from alienstay.cli.commands import app
from alienstay.clustering import ClusteringError, planted_tag_vectors
from alienstay.workspace.catalog import conform

PLACES = ["bedroom", "bathroom", "pool", "lobby"]
LIGHTS = ["bright", "dim", "night"]


def test_planted_groups_are_recovered() -> None:
    features, truth = planted_tag_vectors(240, groups=4, seed=3)
    assert adjusted_rand_score(truth, clustering.kmeans_labels(features, 4, seed=0)) > 0.95
    assert adjusted_rand_score(truth, clustering.agglomerative_labels(features, 4)) > 0.95
    found = clustering.hdbscan_labels(features)
    dense = found != clustering.NOISE
    assert dense.mean() > 0.8
    assert adjusted_rand_score(truth[dense], found[dense]) > 0.9


def test_random_vectors_have_no_structure_to_recover() -> None:
    features, _ = planted_tag_vectors(240, groups=0, seed=3)
    made_up = np.random.default_rng(0).integers(0, 4, size=240)
    assert abs(adjusted_rand_score(made_up, clustering.kmeans_labels(features, 4, seed=0))) < 0.05


@pytest.mark.parametrize("groups", [3, 6])
def test_silhouette_chooses_the_planted_k(groups: int) -> None:
    features, _ = planted_tag_vectors(200, groups=groups, seed=groups)
    best, scores = clustering.choose_k_by_silhouette(features, 2, 10, seed=0)
    assert best == groups
    assert scores[groups] == max(scores.values())


def test_silhouette_scan_on_a_sample_still_finds_k() -> None:
    features, _ = planted_tag_vectors(3_000, groups=5, seed=2)
    best, _ = clustering.choose_k_by_silhouette(features, 2, 8, seed=0, sample_size=500, fit_sample=600)
    assert best == 5


def test_degenerate_inputs_say_why() -> None:
    one, _ = planted_tag_vectors(1, groups=1)
    with pytest.raises(ClusteringError, match="at least 2"):
        clustering.choose_k_by_silhouette(one)
    same = np.tile(planted_tag_vectors(1, groups=1)[0], (10, 1))
    with pytest.raises(ClusteringError, match="identical"):
        clustering.choose_k_by_silhouette(same)
    few, _ = planted_tag_vectors(5, groups=2)
    with pytest.raises(ClusteringError, match="at most the number of photos minus one"):
        clustering.kmeans_labels(few, 10)
    with pytest.raises(ClusteringError, match="--k-min 8"):
        clustering.choose_k_by_silhouette(few, k_min=8)


def test_same_seed_same_clusters_and_map() -> None:
    features, _ = planted_tag_vectors(40, groups=3, seed=1)
    classes = pd.DataFrame({"hotel": ["h"] * 40, "chain": [pd.NA] * 40, "place": ["p"] * 40}, dtype="string")
    ids = [f"i{i}" for i in range(40)]
    first = clustering.run_clustering(ids, features, classes, k_max=6, seed=5)
    again = clustering.run_clustering(ids, features, classes, k_max=6, seed=5)
    pd.testing.assert_frame_equal(clustering.clusters_table(first), clustering.clusters_table(again))
    assert first.map_method == "umap"


def test_tiny_inputs_fall_back_from_umap_with_a_reason() -> None:
    features, _ = planted_tag_vectors(6, groups=2, seed=1)
    xy, method, reason = clustering.map_2d(features)
    assert xy.shape == (6, 2) and method == "tsne" and "too few" in reason
    xy, method, reason = clustering.map_2d(features[:3])
    assert xy.shape == (3, 2) and method == "pca" and reason


def test_cluster_names_use_the_most_distinctive_tags() -> None:
    words = ["place:bedroom", "place:pool", "light:bright", "light:night"]
    matrix = np.array([[0.9, 0.1, 0.5, 0.5], [0.8, 0.2, 0.5, 0.5], [0.1, 0.9, 0.1, 0.9], [0.2, 0.8, 0.1, 0.9]])
    names = clustering.cluster_names(matrix, words, np.array([0, 0, 1, 1]), top=2)
    assert names[0].startswith("bedroom") and names[1] in {"pool + night", "night + pool"}


# ---- a synthetic workspace: hotels x places, the tags made from the place --------------------
def write_synthetic_workspace(root: Path, hotels: int = 6, per_hotel: int = 4) -> Path:
    """Every hotel shows every kind of place: tags follow the place, never the hotel."""
    rng = np.random.default_rng(0)
    prepared = root / "prepared"
    prepared.mkdir(parents=True)
    catalog, tags = [], []
    for h in range(hotels):
        for j in range(per_hotel):
            image_id = f"hotel{h}/photo{j}.jpg"
            path = prepared / f"h{h}_p{j}.jpg"
            Image.new("RGB", (24, 16), (40 * j, 30 * h, 120)).save(path)
            catalog.append(
                {"image_id": image_id, "hotel_id": f"hotel{h}", "chain_id": str(h % 2),
                 "prepared_path": str(path), "status": "ok"}
            )
            place = PLACES[j % len(PLACES)]
            # The light facet is undecided noise: the only structure is the place.
            for facet, words, chosen in (("place", PLACES, place), ("light", LIGHTS, None)):
                raw = np.where(np.array(words) == chosen, 4.0, 0.0) + rng.normal(0, 0.3, len(words))
                probs = np.exp(raw) / np.exp(raw).sum()
                for word, prob in zip(words, probs):
                    tags.append(
                        {"image_id": image_id, "facet": facet, "tag": word, "score": np.float32(0.2),
                         "prob": np.float32(prob), "selected": bool(prob == probs.max() and prob >= 0.3),
                         "model_id": "synthetic", "vocab_hash": "0" * 16}
                    )
    conform(pd.DataFrame(catalog)).to_parquet(root / "catalog.parquet", index=False)
    pd.DataFrame(tags).to_parquet(root / "tags.parquet", index=False)
    return root


def test_cli_planted_hotels_cluster_by_room_not_hotel(tmp_path: Path) -> None:
    """docs/clustering.md: 12 hotels x 4 room types, k = 4, ARI 1.00 vs room type, -0.11 vs hotel."""
    ws = write_synthetic_workspace(tmp_path / "ws", hotels=12)
    result = CliRunner().invoke(app, ["cluster", "--k-max", "8", "--workspace", str(ws)])
    assert result.exit_code == 0, result.output

    table = pd.read_parquet(ws / "clusters.parquet")
    assert {"image_id", "cluster", "method", "k", "features", "x", "y"} <= set(table.columns)
    assert len(table) == 48 and table["image_id"].is_unique  # one row a photo: the primary method
    primary = table[table["method"] == "kmeans"]
    assert len(primary) == 48 and primary["features"].eq("tags").all()
    every_method = pd.read_parquet(ws / "clusters_all_methods.parquet")
    assert {"kmeans", "kmeans_hotel", "kmeans_place", "agglomerative", "hdbscan"} <= set(every_method["method"])
    # Tags follow the place, so the clusters are the 4 places, and cut across all 12 hotels.
    assert primary["k"].iloc[0] == 4
    room = primary["image_id"].str[-5].astype(int) % len(PLACES)  # photoJ.jpg shows PLACES[J % 4]
    hotel = primary["image_id"].str.split("/").str[0]
    # 1.0 by construction: the synthetic tags carry the room type and nothing else.
    assert adjusted_rand_score(room, primary["cluster"]) == pytest.approx(1.0)
    # Below chance (0): each cluster holds one photo of every hotel, so no same-hotel pair shares one.
    assert round(adjusted_rand_score(hotel, primary["cluster"]), 2) == -0.11
    note = (ws / "report" / "clusters.md").read_text()
    assert "k = 4" in note and "the place tag" in note
    assert "ARI 1.00 vs place, -0.11 vs hotel" in note
    assert "does not match" in note  # 12 hotels, 4 clusters
    assert (ws / "report" / "clusters_map.png").stat().st_size > 10_000
    assert (ws / "report" / "clusters_contingency_hotel.png").exists()


def test_cli_prints_degenerate_input_without_traceback(tmp_path: Path) -> None:
    ws = write_synthetic_workspace(tmp_path / "ws", hotels=1, per_hotel=1)
    result = CliRunner().invoke(app, ["cluster", "--workspace", str(ws)])
    assert result.exit_code == 2
    assert "at least 2" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ClusteringError)


def test_cli_clusters_embeddings_and_names_clusters_by_tags(tmp_path: Path) -> None:
    from alienstay.workspace.layout import Workspace

    ws = Workspace(write_synthetic_workspace(tmp_path / "ws"))
    result = CliRunner().invoke(app, ["cluster", "--features", "embeddings", "--workspace", str(ws.root)])
    assert result.exit_code == 2 and "alienstay tag" in result.output  # no embeddings yet: says what makes them

    # Embeddings in the tag stage's layout: the place as a direction, plus noise.
    ids = sorted(pd.read_parquet(ws.tags_path)["image_id"].unique())
    rng = np.random.default_rng(1)
    matrix = rng.normal(0, 0.05, (len(ids), 16)).astype(np.float32)
    for row, image_id in enumerate(ids):
        matrix[row, int(image_id[-5])] += 1.0  # photoN.jpg: N is the place index
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ws.embeddings_dir.mkdir(parents=True, exist_ok=True)
    np.save(ws.embeddings_matrix_path, matrix.astype(np.float16))
    pd.DataFrame({"image_id": ids}).to_parquet(ws.embeddings_ids_path, index=False)
    ws.embeddings_meta_path.write_text('{"model_id": "synthetic"}')

    result = CliRunner().invoke(app, ["cluster", "--features", "embeddings", "--k-max", "8", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(ws.clusters_path)
    assert table["features"].eq("embeddings").all() and table["k"].iloc[0] == 4
    # names come from the selected tags of the same photos: the place first
    assert {name.split(" + ")[0] for name in table["name"]} == set(PLACES)


def test_a_registered_method_is_run_scored_and_named(monkeypatch) -> None:
    features, truth = planted_tag_vectors(60, groups=3, seed=4)
    classes = pd.DataFrame(
        {"hotel": [f"h{g}" for g in truth], "chain": [pd.NA] * 60, "place": [f"p{g}" for g in truth]}, dtype="string"
    )
    name = "halves_for_test"
    registry = clustering.CLUSTER_METHODS
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # undone after the test
    clustering.register_method(name, lambda x, k, seed: (np.arange(len(x)) % 2).astype(np.int64))
    with pytest.raises(ValueError, match="registered twice"):
        clustering.register_method(name, lambda x, k, seed: np.zeros(len(x), dtype=np.int64))
    result = clustering.run_clustering([f"i{i}" for i in range(60)], features, classes, k_max=5)
    assert set(result.labels[name].tolist()) == {0, 1} and set(result.names[name]) == {0, 1}
    scored = result.comparison[result.comparison["method"] == name]
    assert set(scored["class"]) == {"hotel", "place"} and (scored["ari"].abs() < 0.2).all()
    assert name in set(clustering.clusters_table(result)["method"])


def test_the_place_pseudo_class_comes_from_the_facet_setting() -> None:
    tags = pd.DataFrame(
        {"image_id": ["a", "a", "b", "b"], "facet": ["room", "room", "room", "room"],
         "tag": ["bed", "pool", "bed", "pool"], "prob": [0.9, 0.1, 0.2, 0.8]}
    )
    catalog = pd.DataFrame({"image_id": ["a", "b"], "hotel_id": ["h1", "h2"], "chain_id": [pd.NA, pd.NA]})
    assert clustering.known_classes(catalog, tags, ["a", "b"])["place"].isna().all()  # no `place` facet
    classes = clustering.known_classes(catalog, tags, ["a", "b"], place_facet="room")
    assert classes["place"].tolist() == ["bed", "pool"]


def test_a_registered_feature_kind_is_loaded_by_name(monkeypatch, tmp_path: Path) -> None:
    from alienstay.workspace.layout import Workspace

    registry = clustering.FEATURE_KINDS
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # undone after the test
    matrix = np.eye(3, dtype=np.float32)
    registry.register(clustering.FeatureKind("unit", lambda ws, tags: (["a", "b", "c"], matrix)))
    ids, loaded = clustering.load_features(Workspace(tmp_path), "unit", pd.DataFrame())
    assert ids == ["a", "b", "c"] and loaded is matrix
    with pytest.raises(ClusteringError, match="choose one of tags, embeddings, unit"):
        clustering.load_features(Workspace(tmp_path), "colour", pd.DataFrame())


def test_a_cluster_with_no_selected_tag_gets_no_word() -> None:
    """Names come from selected tags (0/1): a cluster where nothing was selected is not named by a guess."""
    words = ["place:bedroom", "place:pool"]
    selected = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    names = clustering.cluster_names(selected, words, np.array([0, 0, 1, 1]))
    assert names[0] == "bedroom" and names[1] == clustering.comparison.NO_NAME
