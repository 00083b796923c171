"""Outside packages add registry entries through Python entry points, found on the first lookup."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

from alienstay.editing.masks import MASKERS
from alienstay.runtime.registry import EntryPointError, Registry


def fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> Path:
    """An installed distribution as importlib.metadata sees one: a *.dist-info with METADATA and
    entry_points.txt beside its modules, all under `root` (which the test puts on sys.path)."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    importlib.invalidate_caches()
    return root


MASKER_MODULE = """
    import numpy as np

    from alienstay.editing.registry import MaskerSpec
    from alienstay.runtime.weights import Weights


    class Brightest:
        def __init__(self, model):
            self.model_id = model

        def mask(self, image, query, threshold=0.5):
            grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
            return (grey >= threshold).astype(np.float32)


    SPEC = MaskerSpec(name="brightest", build=lambda models, device="cpu": Brightest(models["masker"]),
                      weights={"masker": Weights("brightest", "MIT", files=None)}, threshold=("mask_threshold", 0.5),
                      description="the brightest pixels, whatever the query")
"""


@pytest.fixture
def fresh_maskers(monkeypatch):
    """MASKERS as if nothing had looked it up yet in this process (its built-ins kept)."""
    monkeypatch.setattr(MASKERS, "_entries", dict(MASKERS._entries))
    monkeypatch.setattr(MASKERS, "_outside_loaded", False)
    monkeypatch.setattr(MASKERS, "_points_done", set())
    return MASKERS


def test_an_outside_masker_appears_on_the_first_lookup(tmp_path, monkeypatch, fresh_maskers):
    from PIL import Image

    root = fake_distribution(tmp_path / "site", "alien-masks", """
        [alienstay.maskers]
        brightest = alien_masks_brightest:SPEC
    """, {"alien_masks_brightest": MASKER_MODULE})
    monkeypatch.syspath_prepend(str(root))
    assert "brightest" not in fresh_maskers._entries  # nothing loaded before the first lookup
    assert fresh_maskers.names()[-1] == "brightest" and "clipseg" in fresh_maskers
    spec = fresh_maskers.get("brightest")
    image = Image.new("RGB", (8, 4), "black")
    image.paste((255, 255, 255), (0, 0, 4, 4))
    mask = spec.build(spec.models).mask(image, "anything", spec.threshold[1])
    assert mask.shape == (4, 8) and mask[:, :4].all() and not mask[:, 4:].any()
    assert fresh_maskers.outside == {"brightest": "alien-masks 0.1"} and spec not in fresh_maskers.builtin()
    assert fresh_maskers.load_entry_points() == []  # a second load adds nothing twice


def test_a_function_may_return_several_entries(tmp_path, monkeypatch):
    root = fake_distribution(tmp_path / "site", "many-things", """
        [alienstay.test_things]
        all = many_things:entries
    """, {"many_things": """
        from types import SimpleNamespace

        def entries():
            return [SimpleNamespace(name="one"), SimpleNamespace(name="two")]
    """})
    monkeypatch.syspath_prepend(str(root))
    things: Registry = Registry("thing", group="alienstay.test_things")
    assert things.names() == ["one", "two"] and things.outside == {"one": "many-things 0.1", "two": "many-things 0.1"}


@pytest.mark.parametrize(("module", "expected"), [
    ("raise ImportError('needs the frobnicator package')", "failed to load (ImportError: needs the frobnicator package)"),
    ("ENTRY = SimpleNamespace(name='hf')", "encoder 'hf' is registered twice"),
])
def test_a_broken_entry_point_names_its_distribution(tmp_path, monkeypatch, module, expected):
    root = fake_distribution(tmp_path / "site", "broken-encoder", """
        [alienstay.test_encoders]
        broken = broken_encoder:ENTRY
    """, {"broken_encoder": f"from types import SimpleNamespace\n{module}\n"})
    monkeypatch.syspath_prepend(str(root))
    encoders: Registry = Registry("encoder", group="alienstay.test_encoders")
    encoders.register(type("Entry", (), {"name": "hf"})())
    with pytest.raises(EntryPointError) as raised:
        encoders.get("hf")
    message = str(raised.value)
    assert "broken-encoder 0.1" in message and "'broken' (broken_encoder:ENTRY)" in message and expected in message
    with pytest.raises(EntryPointError):  # every lookup fails while the distribution is broken, not only the first
        encoders.names()
