"""Every entry of every registry keeps the registry's contract: no name list is pinned here.

Each entry's declaration is checked (a name, a description, callables where it runs code, and
for every weights it names: a hub id, a licence and the files its loader reads). An entry whose
default weights all have a tiny stand-in (alienstay.testing.tiny_entries) is also loaded with
them and run once, the way its stage runs it; a new entry is checked the moment it registers.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from alienstay.runtime.registry import HOMES, all_registries
from alienstay.runtime.weights import ALTERNATIVE, defaults
from alienstay.testing.tiny_entries import STAND_INS, stand_in

SRC = Path(__file__).resolve().parents[1] / "src"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._/:-]*$")
EXTRAS = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
ENTRIES = [(registry, entry) for registry in all_registries() for entry in registry]


def entry_id(pair) -> str:
    return f"{pair[0].kind}:{pair[1].name}"


def test_every_registry_the_package_creates_is_found():
    created = {str(path.relative_to(SRC).with_suffix("")).replace("/", ".").removesuffix(".__init__")
               for path in SRC.rglob("*.py") if re.search(r"\bRegistry\(\"", path.read_text())}
    assert created == set(HOMES.values())
    assert {registry.kind for registry in all_registries()} == set(HOMES)
    assert all(registry.group and registry.group.startswith("alienstay.") for registry in all_registries())


@pytest.mark.parametrize("pair", ENTRIES, ids=entry_id)
def test_the_declaration_is_complete(pair):
    check_declaration(*pair)


def check_declaration(registry, entry) -> None:
    """What every entry of `registry` must state (tests/test_extending_doc.py checks the docs' entries with it)."""
    assert NAME.match(entry.name), entry.name
    said = getattr(entry, "description", None) or getattr(entry, "note", None)
    assert said or registry.kind == "preset member", "a description says what it is"
    for field in dataclasses.fields(entry):
        if "Callable" in str(field.type):
            value = getattr(entry, field.name)
            assert value is None or callable(value), field.name
    assert set(getattr(entry, "needs", ())) <= set(EXTRAS), "needs: extras of pyproject.toml"
    declared = getattr(entry, "weights", None)
    if not isinstance(declared, dict):
        return
    assert not declared or defaults(declared), "the first weights are its default, not an alternative"
    for key, weights in declared.items():
        assert key.split(ALTERNATIVE)[0] in defaults(declared), f"{key}: an alternative of a role it has"
        assert weights.licence.strip(), f"{key}: the licence, from the model card"
        if weights.fetchable:
            assert HUB_ID.match(weights.model), f"{key}: {weights.model} is not a hub id"
            assert weights.files and all(isinstance(p, str) and p for p in weights.files), key


def test_every_preset_member_names_weights_its_entry_declares():
    from alienstay.runtime import presets

    for member in presets.MEMBERS:
        assert member.preset in presets.PRESETS
        assert member.role in presets.ROLES or member.role == f"edit:{member.entry}", member.name
        assert member.weights in member.spec.weights.values()  # raises, naming the keys, when it does not
    for preset in presets.PRESETS:
        assert presets.members(preset.name) and (preset.inherits is None or preset.inherits in presets.PRESETS)


def test_every_stand_in_is_of_a_model_some_entry_declares():
    declared = {w.model for _, entry in ENTRIES if isinstance(getattr(entry, "weights", None), dict)
                for w in entry.weights.values()}
    assert set(STAND_INS) <= declared, set(STAND_INS) - declared  # a stale stand-in tests nothing


# ---- loaded with tiny stand-ins and run once, one way per kind of registry ---------------------
@pytest.fixture(scope="module")
def photo(samples_dir) -> Image.Image:
    return Image.open(sorted(Path(samples_dir).glob("*.jpg"))[0]).convert("RGB").resize((96, 64))


def _encoder(entry, models, photo, root, recipes=None):
    from alienstay.encoders import load_entry

    encoder = load_entry(entry, models[0], "cpu", entry.dtypes[0])
    texts = encoder.encode_texts(["a bed", "a window"])
    images = encoder.encode_images(encoder.image_transform()(photo)[None])
    assert texts.shape[1] == images.shape[1] and np.allclose(texts.norm(dim=1).numpy(), 1, atol=1e-4)


def _captioner(entry, models, photo, root, recipes=None):
    captioner = entry.load(models[0], "cpu", "float32")
    captions = captioner.caption(captioner.image_transform()(photo)[None])
    assert len(captions) == 1 and isinstance(captions[0], str)


def _editor(entry, models, photo, root, recipes=None):
    from alienstay.editing.base import Speed, fit_size
    from alienstay.editing.controls import CONTROL_MAPS
    from alienstay.editing.identity import SeriesSettings, build_request
    from alienstay.editing.recipes import load_recipes

    recipe = next(r for r in load_recipes(recipes).recipes.values() if entry.name in r.methods)
    control = next(iter(CONTROL_MAPS))  # an editor steered by a ControlNet gets the first map's
    editor = entry.build(models[0], recipe, speed=Speed(), controlnet=stand_in(control.default_controlnet, root),
                         control=control.name)
    request = build_request(recipe, recipe.values[0].name, SeriesSettings(method=entry.name, steps=2, size=64))
    original = fit_size(photo, 64)  # as the series runner gives it
    mask = np.zeros((original.height, original.width), dtype=np.float32)
    mask[8:32, 8:48] = 1
    output = editor.edit(original, request, mask if entry.needs_mask else None)
    # the runner resizes an output of another size back (editing/runner.py); a whole image it must be
    assert abs(output.image.width - original.width) <= 16 and abs(output.image.height - original.height) <= 16
    assert editor.is_diffusion == entry.is_diffusion and editor.model_id


def _masker(entry, models, photo, root, recipes=None):
    masker = entry.build(dict(zip(entry.models, models)), device="cpu")
    mask = np.asarray(masker.mask(photo, "bed", entry.threshold[1]))
    assert mask.shape == (photo.height, photo.width)


def _control_map(entry, models, photo, root, recipes=None):
    assert entry.compute(photo).size == photo.size


def _text_to_image(entry, models, photo, root, recipes=None):
    image, model_id = entry.render(models[0], "a room", "", 0, 2, 64, 1.0, device="cpu", dtype="float32")
    assert image.size == (64, 64) and model_id


def _structure(entry, models, photo, root, recipes=None):
    from alienstay.editing.faithfulness import dino_self_similarity_distance

    model, processor = entry.load(models[0], "cpu")
    assert dino_self_similarity_distance(model, processor, photo, photo) == pytest.approx(0, abs=1e-5)


def _clustering(entry, models, photo, root, recipes=None):
    from alienstay.clustering import planted_tag_vectors

    features, _ = planted_tag_vectors(40, 3, seed=0)
    labels = entry.fit(features.astype(np.float32), 3, 0)
    assert labels.shape == (40,) and labels.dtype.kind == "i"


def _probability(entry, models, photo, root, recipes=None):
    from alienstay.vocabulary.words import load_vocabulary

    vocab = load_vocabulary()
    scores = np.random.default_rng(0).uniform(-0.2, 0.4, (3, len(vocab.words))).astype(np.float32)
    probs = entry.apply(scores, vocab, SimpleNamespace(logit_scale=100.0, logit_bias=-10.0))
    assert probs.shape == scores.shape and ((probs >= 0) & (probs <= 1)).all()


def _selection_rule(entry, models, photo, root, recipes=None):
    from alienstay.labelled.calibration import FloorSample
    from alienstay.labelled.table import RIGHT, WRONG

    probs = np.random.default_rng(0).uniform(0, 1, (60, 3)).astype(np.float32)
    verdicts = np.where(probs > 0.5, RIGHT, WRONG)  # every selection above 0.5 is right
    names = ["room:a", "room:b", "room:c"]
    floors = entry.choose(FloorSample(probs, verdicts, [0, 1, 2], names), 0.9)
    assert floors and set(floors) <= set(names) and all(0.0 <= f <= 0.5 for f in floors.values())
    assert entry.choose(FloorSample(probs, verdicts, [], names), 0.9) == {}  # no candidate word: no floor


RUN = {"encoder": _encoder, "captioner": _captioner, "edit method": _editor, "masker": _masker,
       "control map": _control_map, "text-to-image model": _text_to_image, "structure model": _structure,
       "clustering method": _clustering, "probability rule": _probability,
       "selection rule": _selection_rule}  # fmt: skip
# Checked by their declaration alone: a tag engine needs a workspace and a vocabulary run
# (tests/test_tagging.py), a feature kind a tagged workspace (tests/test_clustering.py), an index
# backend a workspace's embeddings (tests/test_search_index.py).
DECLARED_ONLY = {"tag engine", "feature kind", "index backend", "preset", "preset member"}


def test_every_kind_of_registry_is_run_or_said_to_be_declared_only():
    assert set(RUN) | DECLARED_ONLY == {registry.kind for registry in all_registries()}


RUNNABLE = [pair for pair in ENTRIES if pair[0].kind in RUN
            and all(w.model in STAND_INS for w in defaults(getattr(pair[1], "weights", None) or {}).values())]


@pytest.mark.parametrize("pair", RUNNABLE, ids=entry_id)
def test_the_entry_loads_and_runs_with_tiny_stand_ins(pair, photo, tmp_path_factory):
    run_with_stand_ins(*pair, photo, tmp_path_factory.getbasetemp() / "stand-ins")


def run_with_stand_ins(registry, entry, photo: Image.Image, root: Path, recipes: Path | None = None) -> None:
    """Load `entry` with the tiny stand-ins of its default weights (built once under `root`) and run it once;
    an editor with a recipe that allows it (from `recipes`, else the packaged ones)."""
    root.mkdir(exist_ok=True)
    models = [stand_in(w.model, root) for w in defaults(getattr(entry, "weights", None) or {}).values()]
    RUN[registry.kind](entry, models or [None], photo, root, recipes)
