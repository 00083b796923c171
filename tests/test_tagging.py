"""The tag stage: encoders through the resolver, selection rules, outputs, resume, failures, captions."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from alienstay import tagging
from alienstay.cli.commands import app
from alienstay.encoders import load_encoder
from alienstay.encoders.hf import load_hf_encoder
from alienstay.vocabulary.words import load_vocabulary, parse_vocabulary
from alienstay.testing.tiny_models import (
    build_tiny_blip,
    build_tiny_clip,
    build_tiny_florence2,
    build_tiny_siglip,
    build_tiny_siglip2,
    prepared_workspace,
)
from alienstay.workspace.layout import Workspace

runner = CliRunner()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("models") / "tiny-siglip")


@pytest.fixture(scope="session")
def tiny_siglip2(tmp_path_factory) -> Path:
    return build_tiny_siglip2(tmp_path_factory.mktemp("models") / "tiny-siglip2")


@pytest.fixture(scope="session")
def prepared_template(tmp_path_factory, samples_dir) -> Workspace:
    return prepared_workspace(tmp_path_factory.mktemp("template") / "ws", samples_dir)


@pytest.fixture
def prepared(prepared_template, tmp_path) -> Workspace:
    """A private copy of the prepared workspace (prepared_path values still point at the template's files)."""
    root = tmp_path / "ws"
    shutil.copytree(prepared_template.root, root)
    return Workspace(root)


def tag_cli(ws: Workspace, model: Path, *extra: str):
    result = runner.invoke(app, ["tag", "--model", str(model), "--workspace", str(ws.root), *extra])
    assert result.exit_code == 0, result.output
    return result


def assert_same_tags(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same rows, same selections; scores equal up to float rounding (batch shapes change BLAS blocking)."""
    pd.testing.assert_frame_equal(left.drop(columns=["score", "prob"]), right.drop(columns=["score", "prob"]))
    np.testing.assert_allclose(left["score"], right["score"], atol=1e-6)
    np.testing.assert_allclose(left["prob"], right["prob"], atol=1e-6)


# ---- selection rules on hand-made scores ------------------------------------------------
def rules_vocabulary():
    def words(*tags):
        return {t: {"definition": t, "prompts": [t, f"a {t}"], "persona": ["A1"]} for t in tags}

    return parse_vocabulary(
        {
            "version": 1,
            "facets": {
                "one": {"select": {"top_k": 1, "min_prob": 0.5}, "words": words("a", "b", "c")},
                "two": {"select": {"top_k": 2, "min_prob": 0.2}, "words": words("d", "e", "f", "g")},
            },
        }
    )


def test_probabilities_are_a_softmax_within_each_facet():
    vocab = rules_vocabulary()
    scores = np.array([[0.3, 0.1, 0.1, 0.2, 0.2, 0.0, -0.1]], dtype=np.float32)
    probs = tagging.facet_probabilities(scores, vocab, logit_scale=10.0)
    np.testing.assert_allclose(probs[0, :3].sum(), 1, atol=1e-6)
    np.testing.assert_allclose(probs[0, 3:].sum(), 1, atol=1e-6)
    expected = np.exp(10 * scores[0, :3]) / np.exp(10 * scores[0, :3]).sum()
    np.testing.assert_allclose(probs[0, :3], expected, rtol=1e-5)
    flatter = tagging.facet_probabilities(scores, vocab, logit_scale=1.0)
    assert flatter[0, 0] < probs[0, 0]  # the model's temperature matters


def test_selection_top_k_floors_and_silent_facets():
    vocab = rules_vocabulary()
    probs = np.array(
        [
            [0.7, 0.2, 0.1, 0.4, 0.3, 0.2, 0.1],  # one: a; two: d and e (f also passes the floor, top_k=2 stops it)
            [0.4, 0.35, 0.25, 0.25, 0.25, 0.25, 0.25],  # one: nothing reaches 0.5; two: ties -> first two
            [0.34, 0.33, 0.33, 0.1, 0.1, 0.7, 0.1],  # one: silent; two: only f passes the floor
        ]
    )
    selected = tagging.select_tags(probs, vocab)
    tags = np.array(vocab.tags)
    assert tags[selected[0]].tolist() == ["a", "d", "e"]
    assert tags[selected[1]].tolist() == ["d", "e"]
    assert tags[selected[2]].tolist() == ["f"]


# ---- encoders through the resolver ------------------------------------------------------
def test_sigmoid_probabilities_are_per_word_with_the_bias():
    vocab = rules_vocabulary()
    scores = np.array([[0.3, 0.1, 0.1, 0.2, 0.2, 0.0, -0.1]], dtype=np.float32)
    probs = tagging.sigmoid_probabilities(scores, logit_scale=10.0, logit_bias=-1.0)
    np.testing.assert_allclose(probs[0], 1 / (1 + np.exp(-(10 * scores[0] - 1))), rtol=1e-5)
    assert probs[0, :3].sum() != pytest.approx(1)  # not a distribution over the facet's words
    # Adding a word to a facet leaves the others' sigmoid untouched (it would move a softmax).
    wider = tagging.sigmoid_probabilities(np.append(scores, [[0.9]], axis=1), 10.0, -1.0)
    np.testing.assert_allclose(wider[0, :7], probs[0], rtol=1e-6)


class StubEncoder:
    logit_scale, logit_bias = 10.0, -2.0


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # sigmoid(10 s - 2): a .88, b .50, c .27 | d .73, e .73, f .12, g .05 -> a; d, e
        ("sigmoid", [["a", "d", "e"], [], ["a", "d", "e"]]),
        # softmax within the facet: row 0 a .84 | d .48 e .48 -> a; d, e. Row 1 is flat: softmax
        # spreads .33 a word (one: below .5; two: .25 a word passes .2) where every sigmoid is ~0;
        # row 2: a and b share the facet (.4998 each, below .5) where each alone is a sure yes.
        ("softmax", [["a", "d", "e"], ["d", "e"], ["d", "e"]]),
    ],
)
def test_selection_on_known_scores_by_rule(rule, expected):
    vocab = rules_vocabulary()
    scores = np.array(
        [
            [0.4, 0.2, 0.1, 0.3, 0.3, 0.0, -0.1],
            [-0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5],  # nothing matches: sigmoid selects nothing
            [0.9, 0.9, 0.0, 0.9, 0.9, 0.9, 0.9],  # everything matches: top_k caps each facet
        ],
        dtype=np.float32,
    )
    encoder = StubEncoder()
    encoder.probability = rule
    selected = tagging.select_tags(tagging.encoder_probabilities(scores, vocab, encoder), vocab)
    tags = np.array(vocab.tags)
    assert [tags[row].tolist() for row in selected] == expected


def test_the_probability_rule_follows_the_config_family(tiny_clip, tiny_siglip, tiny_siglip2):
    assert load_hf_encoder(str(tiny_clip)).probability == "softmax"  # CLIP as before
    assert load_hf_encoder(str(tiny_siglip)).probability == "sigmoid"  # SigLIP and SigLIP 2 FixRes
    assert load_hf_encoder(str(tiny_siglip2)).probability == "sigmoid"  # SigLIP 2 NaFlex


@pytest.mark.parametrize("builder", ["tiny_clip", "tiny_siglip", "tiny_siglip2"])
def test_hf_encoder_loads_through_the_resolver(builder, request):
    folder = request.getfixturevalue(builder)
    encoder = load_encoder(str(folder))
    assert encoder.model_id == str(folder) and encoder.revision.startswith("local-")
    assert encoder.logit_scale == pytest.approx(float(encoder.model.logit_scale.exp()))
    transform = pickle.loads(pickle.dumps(encoder.image_transform()))  # runs in DataLoader workers
    pixels = torch.stack([transform(Image.new("RGB", (90, 60), c)) for c in ("red", "navy")])
    images = encoder.encode_images(pixels)
    texts = encoder.encode_texts(["a photo of a bed", "a sofa", "a bright sunny room"])
    assert images.dtype == texts.dtype == torch.float32
    torch.testing.assert_close(images.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(texts.norm(dim=1), torch.ones(3))
    assert not torch.allclose(images[0], images[1])


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_reduced_precision_encoders_stay_close_to_float32(tiny_clip, dtype):
    reference = load_hf_encoder(str(tiny_clip))
    reduced = load_hf_encoder(str(tiny_clip), dtype=dtype)
    transform = reference.image_transform()
    pixels = torch.stack([transform(Image.new("RGB", (64, 64), c)) for c in ("red", "green", "blue")])
    cosine = (reference.encode_images(pixels) * reduced.encode_images(pixels)).sum(dim=1)
    assert reduced.dtype == dtype
    assert cosine.min() > 0.9


def test_missing_model_error_names_the_id_and_the_fix(prepared, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(prepared.root / "empty-hub-cache"))
    result = runner.invoke(app, ["tag", "--model", "no-such-org/no-such-clip", "--workspace", str(prepared.root)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "no-such-org/no-such-clip" in text
    assert "hf download no-such-org/no-such-clip" in text and "--model /path/to/" in text


def test_malformed_vocabulary_stops_the_cli_with_the_key(prepared, tiny_clip, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nfacets:\n  place:\n    select: {top_k: 1, min_prob: 0.3}\n"
                   "    words:\n      bedroom: {definition: a room}\n", encoding="utf-8")
    result = runner.invoke(app, ["tag", "--model", str(tiny_clip), "--vocabulary", str(bad), "-w", str(prepared.root)])
    assert result.exit_code == 2
    assert "facets.place.words.bedroom.prompts" in " ".join(result.output.split())


# ---- the stage on the real samples ----------------------------------------------------------
def test_tag_cli_writes_the_agreed_outputs(prepared, tiny_clip):
    tag_cli(prepared, tiny_clip, "--batch-size", "3", "--workers", "1")
    vocab = load_vocabulary()
    tags = prepared.read_tags()
    n_images = 8
    assert len(tags) == n_images * len(vocab.words)
    assert list(tags.columns[:8]) == ["image_id", "facet", "tag", "score", "prob", "selected", "model_id", "model_revision"]
    assert tags["score"].dtype == np.float32 and tags["prob"].dtype == np.float32 and tags["selected"].dtype == bool
    assert set(tags["model_id"]) == {str(tiny_clip)} and set(tags["vocab_hash"]) == {vocab.hash}
    assert tags.groupby(["image_id", "facet"])["prob"].sum().between(0.999, 1.001).all()
    per_facet = tags[tags["selected"]].groupby(["image_id", "facet"]).size()
    top_k = {name: f.top_k for name, f in vocab.facets.items()}
    assert all(count <= top_k[facet] for (_, facet), count in per_facet.items())
    assert (tags.loc[tags["selected"], "prob"] >= tags.loc[tags["selected"], "facet"].map(
        {n: f.min_prob for n, f in vocab.facets.items()})).all()

    ids, matrix, meta = tagging.read_embeddings(prepared)
    assert sorted(ids) == sorted(tags["image_id"].unique()) and len(ids) == n_images
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    assert np.load(prepared.embeddings_matrix_path).dtype == np.float16
    assert meta["model_id"] == str(tiny_clip) and meta["vocab_hash"] == vocab.hash
    assert meta["load_as"] == str(tiny_clip.resolve())  # what search hands load_encoder for a phrase
    # the cosine in tags.parquet is the image embedding against the cached word embedding
    words = np.load(next(prepared.cache_dir.glob("text-embeddings-*.npy")))
    first = tags[tags["image_id"] == ids[0]]["score"].to_numpy()
    np.testing.assert_allclose(first, matrix[0] @ words.T, atol=2e-3)
    log = prepared.runs_log_path.read_text()
    assert '"stage": "tag"' in log and vocab.hash in log and '"model_revision": "local-' in log


def test_two_runs_give_identical_scores(prepared, prepared_template, tiny_clip, tmp_path):
    other = Workspace(tmp_path / "other")
    shutil.copytree(prepared_template.root, other.root)
    tag_cli(prepared, tiny_clip, "--workers", "0")
    tag_cli(other, tiny_clip, "--workers", "2")
    pd.testing.assert_frame_equal(prepared.read_tags(), other.read_tags())  # bit for bit
    third = Workspace(tmp_path / "third")
    shutil.copytree(prepared_template.root, third.root)
    tag_cli(third, tiny_clip, "--batch-size", "5")
    assert_same_tags(prepared.read_tags(), third.read_tags())


@pytest.mark.parametrize("builder", ["tiny_siglip", "tiny_siglip2"])
def test_siglip_runs_the_whole_stage_with_sigmoid_probabilities(prepared, builder, request):
    folder = request.getfixturevalue(builder)
    tag_cli(prepared, folder)
    tags = prepared.read_tags()
    assert tags["image_id"].nunique() == 8 and set(tags["model_id"]) == {str(folder)}
    encoder = load_hf_encoder(str(folder))
    expected = 1 / (1 + np.exp(-(encoder.logit_scale * tags["score"] + encoder.logit_bias)))
    np.testing.assert_allclose(tags["prob"], expected, rtol=1e-4, atol=1e-6)
    vocab = load_vocabulary()
    for facet, group in tags.groupby("facet"):  # per-word floors and top_k, as for CLIP
        chosen = group[group["selected"]]
        assert (chosen["prob"] >= vocab.facets[facet].min_prob).all()
        assert (chosen.groupby("image_id").size() <= vocab.facets[facet].top_k).all()


def test_text_embeddings_are_cached_by_model_and_vocabulary(prepared, tiny_clip):
    encoder = load_hf_encoder(str(tiny_clip))
    vocab = load_vocabulary()
    first = tagging.cached_word_embeddings(prepared, encoder, vocab)
    assert first.shape == (len(vocab.words), 16)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)

    def must_not_run(texts):
        raise AssertionError("text embeddings recomputed despite the cache")

    encoder.encode_texts = must_not_run
    np.testing.assert_array_equal(tagging.cached_word_embeddings(prepared, encoder, vocab), first)
    assert len(list(prepared.cache_dir.glob("text-embeddings-*.npy"))) == 1


def interrupt_after(monkeypatch, calls: int) -> None:
    """Make the mapper die like a killed process after `calls` batches (shards so far stay on disk)."""
    original = tagging.TagMapper.__call__
    seen = {"n": 0}

    def dying(self, *args, **kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tagging.TagMapper, "__call__", dying)


def test_resume_after_a_kill_equals_an_uninterrupted_run(prepared, prepared_template, tiny_clip, tmp_path, monkeypatch):
    uninterrupted = Workspace(tmp_path / "uninterrupted")
    shutil.copytree(prepared_template.root, uninterrupted.root)
    tag_cli(uninterrupted, tiny_clip, "--batch-size", "2", "--rows-per-shard", "2", "--workers", "0")

    # As the CLI loads it (device and dtype auto: bf16 on a GPU), so both runs compute alike.
    encoder, vocab = load_encoder(str(tiny_clip), device="auto", dtype="auto"), load_vocabulary()
    interrupt_after(monkeypatch, calls=2)
    with pytest.raises(KeyboardInterrupt):
        tagging.run_tagging(prepared, encoder, vocab, batch_size=2, rows_per_shard=2, workers=0, show_progress=False)
    monkeypatch.undo()
    settings = tagging.TagIdentity.of(encoder, vocab)
    assert len(tagging.tagged_ids(prepared, settings)) == 4  # two shards of two photos survived the kill
    assert not prepared.tags_path.exists()
    # a kill between the embeddings shard and its tag shard leaves an orphan: it must be redone, not duplicated
    tags_dir, _ = tagging.shard_dirs(prepared, settings)
    tagging.tag_shards(tags_dir)[-1].unlink()
    # a kill in the middle of a write leaves only a temporary file, never a half shard under the real name
    (tags_dir / ".part-000000004-000000005.parquet.x1y2.tmp").write_bytes(b"PAR1 half written")

    summary = tagging.run_tagging(prepared, encoder, vocab, batch_size=2, workers=1, show_progress=False)
    assert summary.already_done == 2 and summary.tagged_now == 6
    assert_same_tags(prepared.read_tags(), uninterrupted.read_tags())
    ids_a, matrix_a, _ = tagging.read_embeddings(prepared)
    ids_b, matrix_b, _ = tagging.read_embeddings(uninterrupted)
    assert ids_a == ids_b
    np.testing.assert_allclose(matrix_a, matrix_b, atol=1e-3)  # fp16 on disk


def test_a_photo_that_fails_to_decode_is_recorded_not_fatal(prepared, tiny_clip):
    catalog = prepared.read_catalog()
    broken = prepared.root / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    catalog.loc[0, "prepared_path"] = str(broken)
    prepared.write_catalog(catalog)
    tag_cli(prepared, tiny_clip, "--batch-size", "4")
    failures = prepared.read_tag_failures()
    assert failures["image_id"].tolist() == [catalog.loc[0, "image_id"]]
    assert failures["reason"].iloc[0] and failures["path"].iloc[0] == str(broken)
    assert prepared.read_tags()["image_id"].nunique() == 7


# ---- captions ----------------------------------------------------------------------------------
def test_caption_and_prompt_string(prepared, tiny_clip, tmp_path):
    from alienstay.captioning.captioners import prompt_string, read_captions

    blip = build_tiny_blip(tmp_path / "tiny-blip")
    tag_cli(prepared, tiny_clip, "--caption", "--caption-model", str(blip))
    captions = read_captions(prepared)
    assert len(captions) == 8 and set(captions["model_id"]) == {str(blip)}
    assert captions["caption"].map(lambda c: isinstance(c, str) and len(c) > 0).all()
    image_id = captions["image_id"].iloc[0]
    prompt = prompt_string(prepared, image_id)
    tags = prepared.read_tags()
    chosen = tags[(tags["image_id"] == image_id) & tags["selected"]].sort_values("prob", ascending=False)["tag"]
    assert prompt.startswith(captions["caption"].iloc[0] + ", ")
    assert prompt.endswith(", ".join(chosen.head(12)))
    tag_cli(prepared, tiny_clip, "--caption", "--caption-model", str(blip))  # resume: nothing new to caption
    assert len(read_captions(prepared)) == 8


def test_resume_after_a_real_sigkill_mid_shard_at_default_sizes_equals_an_uninterrupted_run(
    prepared, prepared_template, tiny_clip, tmp_path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from alienstay.runtime.devices import batch_size_for, probe, select_device
    from alienstay.tagging.settings import TagSettings

    defaults = TagSettings()
    machine = probe()
    batch = defaults.batch_size or batch_size_for(select_device(defaults.device, machine), machine)  # 0: by device
    assert batch in (32, 128, 256) and defaults.rows_per_shard == 512  # the sizes this test is about: 32 CPU, 256 GPU
    copies = 100  # 8 photos x 100 ids = 800 rows: one full shard of 512, then a second one in the making

    def widen(ws: Workspace) -> None:
        catalog = ws.read_catalog()
        wide = pd.concat([catalog.assign(image_id=catalog["image_id"] + f"#{i}") for i in range(copies)], ignore_index=True)
        ws.write_catalog(wide)

    uninterrupted = Workspace(tmp_path / "uninterrupted")
    shutil.copytree(prepared_template.root, uninterrupted.root)
    for ws in (prepared, uninterrupted):
        widen(ws)
    command = [sys.executable, "-m", "alienstay.cli.commands", "tag", "--model", str(tiny_clip), "-w", str(prepared.root)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = prepared.tag_shards_dir
    deadline = time.monotonic() + 300
    # The moment the first shard lands, photos 512.. are being read and encoded, held in memory.
    while not list(shards.glob("*/part-*.parquet")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = sorted(p.name for p in shards.glob("*/part-*.parquet"))
    assert done_at_kill == ["part-000000000-000000511.parquet"], "the run was not killed in the second shard"
    assert not prepared.tag_manifest_path.exists() and not prepared.tags_path.exists()

    tag_cli(prepared, tiny_clip)
    import json

    last_run = json.loads(prepared.runs_log_path.read_text(encoding="utf-8").splitlines()[-1])
    assert (last_run["batch_size"], last_run["tagged_now"]) == (batch, 288)  # only the unfinished shard was redone
    tag_cli(uninterrupted, tiny_clip)
    resumed, full = prepared.read_tags(), uninterrupted.read_tags()
    assert resumed["image_id"].nunique() == 800
    # Batches from row 512 fall where the uninterrupted run's fall (fixed blocks): equal bit for bit.
    pd.testing.assert_frame_equal(resumed, full)
    ids_a, matrix_a, meta_a = prepared.read_embeddings()
    ids_b, matrix_b, meta_b = uninterrupted.read_embeddings()
    assert ids_a == ids_b and meta_a == meta_b
    np.testing.assert_array_equal(np.load(prepared.embeddings_matrix_path), np.load(uninterrupted.embeddings_matrix_path))
    np.testing.assert_array_equal(matrix_a, matrix_b)


def test_florence2_in_bfloat16_captions_and_records_the_dtype_it_ran_in(tmp_path):
    """The `gpu` preset's captioner runs in bf16: the weights must be bf16 and the captions say so."""
    from alienstay.captioning.captioners import load_captioner

    captioner = load_captioner(str(build_tiny_florence2(tmp_path / "tiny-florence2")), device="cpu", dtype="bfloat16")
    assert captioner.model.dtype == torch.bfloat16 and captioner.record()["dtype"] == "bfloat16"
    captioner.min_new_tokens = captioner.max_new_tokens = 4
    assert all(isinstance(c, str) and c for c in captioner.caption(torch.stack(
        [captioner.image_transform()(Image.new("RGB", (90, 60), c)) for c in ("red", "navy")])))


def test_florence2_detailed_captions_through_the_caption_stage(prepared, tmp_path):
    from alienstay.captioning.captioners import (
        FLORENCE_TASK,
        Florence2Captioner,
        load_captioner,
        read_captions,
    )
    from alienstay.stages import caption as caption_stage

    folder = build_tiny_florence2(tmp_path / "tiny-florence2")
    captioner = load_captioner(str(folder))  # a bare folder: its config's model_type picks florence2
    assert isinstance(captioner, Florence2Captioner) and FLORENCE_TASK == "<DETAILED_CAPTION>"
    captioner.min_new_tokens = captioner.max_new_tokens = 6  # random weights: force some words out
    assert all(isinstance(c, str) and c for c in captioner.caption(torch.stack(
        [captioner.image_transform()(Image.new("RGB", (90, 60), c)) for c in ("red", "navy")])))
    summary = caption_stage.run(prepared, caption_stage.CaptionSettings(model=f"florence2:{folder}"))
    captions = read_captions(prepared)
    assert summary.written == 8 and len(captions) == 8 and set(captions["model_id"]) == {str(folder)}
    assert captions["caption"].map(lambda c: isinstance(c, str)).all()
    assert caption_stage.run(prepared, caption_stage.CaptionSettings(model=str(folder))).written == 0  # resumable
