"""The owlv2-sam masker (OWLv2 boxes -> SAM masks) with tiny random models, on the sample photos.

Both models are built from configs (src/alienstay/testing/tiny_maskers.py), saved with save_pretrained and
loaded back through the resolver by the masker's own loader. Random weights give arbitrary
boxes, so the tests check what could break: the mask's shape and type, that every box above the
floor is segmented and their union returned, that a floor nothing passes gives an empty mask the
runner and the guard handle, the edit key, the preset's members, and one masked edit whose
outside is bit-identical.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.editing import masks, owlsam, selection
from alienstay.editing import pipelines as P
from alienstay.editing.base import fit_size
from alienstay.editing.faithfulness import EMPTY_MASK, Guard
from alienstay.editing.identity import SeriesSettings, build_request, edit_key
from alienstay.editing.recipes import load_recipes
from alienstay.editing.runner import run_series
from alienstay.runtime import model_store, presets
from alienstay.testing import tiny_maskers, tiny_pipelines
from alienstay.workspace.layout import Workspace

runner = CliRunner()


def floor_keeping_the_best(scores: np.ndarray) -> float:
    """A score floor only the best-scoring box(es) pass: halfway to the next distinct score."""
    distinct = np.unique(scores)[::-1]
    return float((distinct[0] + distinct[1]) / 2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_maskers")
    return {"owl": tiny_maskers.build_tiny_owlv2(root / "owl"), "sam": tiny_maskers.build_tiny_sam(root / "sam"),
            "inpaint": tiny_pipelines.build_tiny_inpaint(root / "inpaint")}  # fmt: skip


@pytest.fixture(scope="module")
def masker(tiny, test_device) -> owlsam.OwlSamMasker:
    models = {"masker": str(tiny["owl"]), "masker:segmenter": str(tiny["sam"])}
    return masks.MASKERS.get("owlv2-sam").build(models, device=test_device)  # the registry's own builder



def test_both_models_load_through_the_resolver_with_or_without_torchvision(masker, tiny):
    from transformers.utils import is_torchvision_available

    # The masker asks for the PIL image processors by name: the same pixels whether torchvision
    # is installed (every GPU machine) or not, and without it nothing imports it.
    if not is_torchvision_available():
        assert "torchvision" not in sys.modules
    assert masker.model_id == f"{tiny['owl']} + {tiny['sam']}"
    assert all(revision.startswith("local-") for revision in masker.revisions.values())  # folders, named by content
    assert type(masker.detector_processor).__name__ == "Owlv2ImageProcessorPil"
    assert type(masker.segmenter_processor.image_processor).__name__ == "SamImageProcessorPil"


def test_the_mask_is_the_union_of_every_box_above_the_floor_at_full_resolution(masker, samples_dir):
    photos = sorted(samples_dir.glob("*.jpg"))[:2]
    for path in photos:
        photo = Image.open(path).convert("RGB")  # full size (800 px): no 352 px grid as CLIPSeg's
        found = masker.detect(photo, "the beds", 0.0)
        assert len(found.boxes) > 1 and np.all(np.diff(found.scores) <= 0)  # every box, best first
        assert np.all(found.boxes[:, 2] <= photo.width) and np.all(found.boxes[:, 3] <= photo.height)
        per_box = masker.segment(photo, found.boxes)
        assert per_box.shape == (len(found.boxes), photo.height, photo.width) and per_box.dtype == bool
        mask = masker.mask(photo, "the beds", 0.0)
        assert mask.shape == (photo.height, photo.width) and mask.dtype == bool
        assert np.array_equal(mask, owlsam.with_margin(per_box.any(axis=0)))  # the union of all boxes' masks...
        assert not np.array_equal(mask, owlsam.with_margin(per_box[0]))  # ...not the best box's alone

        # A floor only the best score passes keeps that box (or those tied with it) alone.
        floor = floor_keeping_the_best(found.scores)
        best = masker.detect(photo, "the beds", floor)
        kept = int((found.scores > floor).sum())
        assert 1 <= len(best.boxes) == kept < len(found.boxes) and np.allclose(best.boxes, found.boxes[:kept])
        single = masker.mask(photo, "the beds", floor)
        assert np.array_equal(single, owlsam.with_margin(per_box[:kept].any(axis=0))) and 0 < single.mean() < mask.mean()


def test_a_floor_nothing_passes_gives_an_empty_mask_and_says_so(masker, samples_dir, caplog):
    photo = Image.open(sorted(samples_dir.glob("*.jpg"))[0]).convert("RGB")
    with caplog.at_level(logging.WARNING, logger="alienstay"):
        mask = masker.mask(photo, "bed", 1.0)  # sigmoid scores are never above 1
    assert mask.shape == (photo.height, photo.width) and mask.dtype == bool and not mask.any()
    assert "nothing matched 'bed' above score 1.0" in caplog.text and owlsam.SCORE_SETTING in caplog.text


def test_the_edit_key_names_the_masker_and_both_models_and_clipsegs_stays_as_it_was():
    recipe = load_recipes().get("bed_decoration")
    clipseg = masks.mask_identity(recipe, "inpaint", None, None)
    assert clipseg == {"mask_model": "CIDAS/clipseg-rd64-refined"}  # unchanged: existing workspaces' keys hold
    name, models = masks.choose_masker(None, "gpu")
    owl = masks.mask_identity(recipe, "inpaint", None, masker=name, models=models)
    assert name == "owlv2-sam" and owl["masker"] == "owlv2-sam"
    assert owl["mask_models"] == {"masker": "google/owlv2-large-patch14-ensemble", "masker:segmenter": "facebook/sam-vit-huge"}
    assert owl[owlsam.SCORE_SETTING] == owlsam.DEFAULT_SCORE_MIN  # the floor applied is part of the key

    def key(identity):
        request = build_request(recipe, "rose petals", SeriesSettings(method="inpaint", extra=identity))
        return edit_key("room.jpg", recipe, "inpaint", "sd-inpainting", request)

    assert key(clipseg) != key(owl)  # a cached CLIPSeg edit is never reused for owlv2-sam
    other_sam = masks.mask_identity(recipe, "inpaint", None, masker=name, models={**models, "masker:segmenter": "facebook/sam-vit-base"})
    assert key(other_sam) != key(owl)  # nor one made with another SAM


def test_presets_choose_the_masker_and_models_download_fetches_both_of_its_models():
    assert masks.choose_masker(None, "cpu") == ("clipseg", {"masker": "CIDAS/clipseg-rd64-refined"})
    assert masks.choose_masker(None, None) == masks.choose_masker(None, "cpu")
    assert masks.choose_masker(None, "offline")[0] == "clipseg"  # no hub models: the masker's own default
    # --masker clipseg on gpu: CLIPSeg's own model, never the preset's OWLv2 id
    assert masks.choose_masker("clipseg", "gpu") == ("clipseg", {"masker": "CIDAS/clipseg-rd64-refined"})
    name, models = masks.choose_masker(None, "gpu", {"masker": "/my/owl", "masker:segmenter": None})
    assert name == "owlv2-sam" and models == {"masker": "/my/owl", "masker:segmenter": "facebook/sam-vit-huge"}

    gpu = presets.members("gpu")
    spec = masks.MASKERS.get("owlv2-sam")
    for role in spec.models:  # every model the masker loads is a member of the gpu preset, with its licence
        assert gpu[role].entry == "owlv2-sam" and gpu[role].licence == "Apache-2.0" and gpu[role].fetchable
    plan = model_store.plan_download("gpu")
    assert plan["google/owlv2-large-patch14-ensemble"][0] == ("masker",)
    assert plan["facebook/sam-vit-huge"][0] == ("masker:segmenter",)
    assert "CIDAS/clipseg-rd64-refined" not in plan and "CIDAS/clipseg-rd64-refined" in model_store.plan_download("cpu")
    rows = {row.role: row for row in model_store.inventory("gpu", root=Path("/nonexistent"))}
    assert rows["masker"].model == gpu["masker"].model and rows["masker:segmenter"].model == "facebook/sam-vit-huge"


SIZE = 128  # at 64 px the 3 px margin around the tiny SAM's speckled masks fills the photo


def _series(ws: Workspace, editor, mask_for, extra: dict) -> tuple[pd.DataFrame, object]:
    recipe = load_recipes().get("bed_decoration")
    chosen = selection.photos_for_workspace(ws, 5).head(1)
    settings = SeriesSettings(method=editor.method, steps=2, size=SIZE, extra=extra)
    return run_series(ws, recipe, chosen, editor, settings, Guard(use_lpips=False), mask_for), recipe


def test_a_masked_edit_keeps_everything_outside_the_maskers_mask_bit_identical(ws, tiny, masker):
    recipe = load_recipes().get("bed_decoration")
    photo = selection.photos_for_workspace(ws, 5).head(1).iloc[0]
    original = fit_size(Image.open(photo.prepared_path), SIZE)  # what the runner edits
    # the best box alone: a mask that is neither empty nor the whole photo
    floor = floor_keeping_the_best(masker.detect(original, "bed", 0.0).scores)
    expected = masker.mask(original, "bed", floor)
    assert 0 < expected.mean() < 1

    mask_for = masks.make_mask_for(recipe, "inpaint", None, masker="owlv2-sam",
                                   models={"masker": str(tiny["owl"]), "masker:segmenter": str(tiny["sam"])})  # fmt: skip
    table, _ = _series(ws, P.InpaintEditor(str(tiny["inpaint"])), mask_for, {owlsam.SCORE_SETTING: floor})
    assert len(table) == 3 and (table["outside_mask_change"] == 0.0).all()
    assert np.allclose(table["mask_area"], expected.mean())
    before = np.asarray(original.convert("RGB"))
    for row in table.itertuples():
        edited = np.asarray(Image.open(row.output_path).convert("RGB"))
        assert edited.shape == before.shape
        assert np.array_equal(edited[~expected], before[~expected])  # outside: the original, bit for bit
        assert not np.array_equal(edited[expected], before[expected])  # inside: edited


def test_an_empty_mask_runs_no_edit_and_records_why(ws, tiny):
    recipe = load_recipes().get("bed_decoration")
    mask_for = masks.make_mask_for(recipe, "inpaint", None, masker="owlv2-sam",
                                   models={"masker": str(tiny["owl"]), "masker:segmenter": str(tiny["sam"])})  # fmt: skip
    table, _ = _series(ws, P.InpaintEditor(str(tiny["inpaint"])), mask_for, {owlsam.SCORE_SETTING: 1.0})
    assert len(table) == 3 and (table["mask_area"] == 0.0).all()
    assert (table["verdict"] == "not_applied").all() and (table["verdict_reason"] == EMPTY_MASK).all()
    for row in table.itertuples():
        original = np.asarray(fit_size(Image.open(row.source_path), SIZE))
        assert np.array_equal(np.asarray(Image.open(row.output_path).convert("RGB")), original)


def test_the_cli_edits_with_owlv2_sam_and_records_it_in_the_key(ws, tiny, test_device):
    def edit(masker: str):
        return runner.invoke(app, [
            "edit", "--recipe", "bed_decoration", "--method", "inpaint", "--model", str(tiny["inpaint"]), "--masker", masker,
            "--mask-model", str(tiny["owl"]), "--mask-segmenter", str(tiny["sam"]), "--steps", "2", "--size", "64",
            "--images", "5", "--device", test_device, "--workspace", str(ws.root),
        ])  # fmt: skip

    result = edit("owlv2-sam")
    assert result.exit_code == 0, result.output
    table = ws.read_edits()
    assert len(table) == 5 * 3 and table["mask_area"].notna().all() and (table["outside_mask_change"] == 0.0).all()
    # whatever the random boxes were, an empty mask is named, never passed off as a "faithful" edit
    assert (table[table["mask_area"] == 0.0]["verdict_reason"] == EMPTY_MASK).all()
    bad = edit("sam3")
    assert bad.exit_code == 2 and "unknown masker 'sam3': use one of clipseg, owlv2-sam" in bad.output
