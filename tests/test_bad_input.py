"""Bad input, the held-back kinds (issue 16, items 6 and 9): each gets a status and a reason.

Animated and multi-page files, 16-bit greyscale and LA images, WebP, a 1 x 4000 strip, a
folder named like a photo, links out of the folder, broken and looping links, names with
spaces, newlines, unicode and HTML; then every stage that reads the catalog runs over them,
and the gallery opens every usable one.
And of duplicates the best copy is kept, whichever comes first by name.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from alienstay import preprocess
from alienstay.cli.commands import app
from alienstay.sources.folder import catalog_folder
from alienstay.testing.imagefactory import jpeg_bytes, photo_like
from alienstay.workspace import catalog as cat
from alienstay.workspace.layout import Workspace

runner = CliRunner()
ODD_NAMES = ["with space.jpg", "new\nline.jpg", "ünïcødé 客房.jpg", "<img src=x onerror=alert(1)>&amp;.jpg"]


def encoded(image: Image.Image, fmt: str, **args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **args)
    return buffer.getvalue()


def frames(count: int, seed: int) -> list[Image.Image]:
    """Distinct photo-like frames: the prepared copy shows which one was kept."""
    return [photo_like(seed + i, (300, 200)) for i in range(count)]


def nearest_frame(prepared: Path, candidates: list[Image.Image]) -> int:
    pixels = np.asarray(Image.open(prepared).convert("RGB")).astype(float)
    return int(np.argmin([np.abs(pixels - np.asarray(frame).astype(float)).mean() for frame in candidates]))


def grey_picture() -> Image.Image:
    return photo_like(60, (200, 200)).convert("L")


def grey_alpha() -> bytes:
    """LA: a grey photo whose left half is fully transparent (it must come out white)."""
    alpha = np.full((200, 200), 255, dtype=np.uint8)
    alpha[:, :100] = 0
    return encoded(Image.merge("LA", [grey_picture(), Image.fromarray(alpha)]), "PNG")


def sixteen_bit_tiff() -> bytes:
    """Rows from 0 to 65535: scaled to 8 bits its mean is about 128 (clipping would give about 255)."""
    values = np.repeat(np.linspace(0, 65535, 200).astype(np.uint16)[:, None], 200, axis=1)
    return encoded(Image.fromarray(values), "TIFF")


# name -> (status, reason); the files and links are made by write_bad_folder
EXPECTED = {
    "animated.gif": ("ok", "first_frame; frame 1 of 3 kept"),
    "pages.tif": ("ok", "first_frame; frame 1 of 2 kept"),
    "grey16.tif": ("ok", ""),
    "grey_alpha.png": ("ok", ""),
    "photo.webp": ("ok", ""),
    "strip.png": ("rejected", "too_small"),
    "album.jpg": ("rejected", "not_a_file; a directory"),
    "album.jpg/inside.jpg": ("ok", ""),
    "link_out.jpg": ("rejected", "symlink_outside_folder"),
    "link_in.jpg": ("duplicate", "exact_duplicate; kept album.jpg/inside.jpg: identical file, the first in catalog order"),
    "broken.jpg": ("rejected", "broken_symlink"),
    "loop_a.jpg": ("rejected", "symlink_loop"),
    "loop_b.jpg": ("rejected", "symlink_loop"),
    "self.jpg": ("rejected", "symlink_loop"),
    **{name: ("ok", "") for name in ODD_NAMES},
}


def write_bad_folder(root: Path) -> Path:
    folder, outside = root / "photos", root / "elsewhere"
    folder.mkdir(parents=True)
    outside.mkdir()
    first, *rest = frames(3, seed=40)
    (folder / "animated.gif").write_bytes(encoded(first, "GIF", save_all=True, append_images=rest, duration=100))
    first, *rest = frames(2, seed=50)
    (folder / "pages.tif").write_bytes(encoded(first, "TIFF", save_all=True, append_images=rest))
    (folder / "grey16.tif").write_bytes(sixteen_bit_tiff())
    (folder / "grey_alpha.png").write_bytes(grey_alpha())
    (folder / "photo.webp").write_bytes(encoded(photo_like(21), "WEBP", quality=90))
    (folder / "strip.png").write_bytes(encoded(Image.new("RGB", (1, 4000), (90, 90, 90)), "PNG"))
    (folder / "album.jpg").mkdir()
    (folder / "album.jpg" / "inside.jpg").write_bytes(jpeg_bytes(photo_like(22)))
    (outside / "secret.jpg").write_bytes(jpeg_bytes(photo_like(23)))
    (folder / "link_out.jpg").symlink_to(outside / "secret.jpg")
    (folder / "link_in.jpg").symlink_to(folder / "album.jpg" / "inside.jpg")
    (folder / "broken.jpg").symlink_to(folder / "nowhere.jpg")
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    (folder / "self.jpg").symlink_to(folder / "self.jpg")
    for seed, name in enumerate(ODD_NAMES, start=30):
        (folder / name).write_bytes(jpeg_bytes(photo_like(seed)))
    return folder


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    return write_bad_folder(tmp_path)


@pytest.fixture
def decided(bad_folder: Path, tmp_path: Path) -> pd.DataFrame:
    return preprocess.preprocess_catalog(catalog_folder(bad_folder), tmp_path / "prepared").set_index("image_id")


def test_every_bad_kind_gets_a_status_and_a_reason(decided: pd.DataFrame) -> None:
    got = {name: (row.status, row.reason) for name, row in decided.iterrows()}
    assert got == EXPECTED


def test_the_first_frame_is_the_one_kept(decided: pd.DataFrame) -> None:
    for name, made in (("animated.gif", frames(3, seed=40)), ("pages.tif", frames(2, seed=50))):
        assert nearest_frame(Path(decided.loc[name, "prepared_path"]), made) == 0, name
        assert (decided.loc[name, "width"], decided.loc[name, "height"]) == (300, 200)


def test_sixteen_bit_and_grey_alpha_become_proper_rgb(decided: pd.DataFrame) -> None:
    grey16 = np.asarray(Image.open(decided.loc["grey16.tif", "prepared_path"])).astype(int)
    assert abs(grey16.mean() - 128) < 4 and grey16[-1].min() > 245  # scaled from 16 bits, not clipped
    la = np.asarray(Image.open(decided.loc["grey_alpha.png", "prepared_path"])).astype(int)
    assert la[100, 30].min() > 245  # transparent half -> white
    opaque = np.asarray(grey_picture()).astype(int)[:, 100:]
    assert np.abs(la[:, 100:, 0] - opaque).mean() < 4  # the opaque half keeps its grey
    assert decided.loc["photo.webp", "format"] == "WEBP"


def test_links_out_of_the_folder_are_not_read_unless_asked(bad_folder: Path, tmp_path: Path) -> None:
    row = catalog_folder(bad_folder).set_index("image_id").loc["link_out.jpg"]
    assert pd.isna(row["sha256"]) and pd.isna(row["bytes"])  # not even hashed: never opened
    ws = Workspace(tmp_path / "ws")
    for command in (["ingest", "folder", str(bad_folder), "--follow-outside-links"], ["preprocess"]):
        result = runner.invoke(app, [*command, "--workspace", str(ws.root)])
        assert result.exit_code == 0, result.output
    followed = ws.read_catalog().set_index("image_id").loc["link_out.jpg"]
    assert (followed["status"], followed["reason"]) == (cat.OK, "")


def test_odd_names_get_distinct_safe_prepared_copies(decided: pd.DataFrame) -> None:
    paths = [Path(decided.loc[name, "prepared_path"]) for name in ODD_NAMES]
    assert len(set(paths)) == len(ODD_NAMES) and all(p.is_file() for p in paths)
    for path in paths:
        assert not set(path.name) & set(" \n<>&") and path.name.isascii()


def test_every_stage_runs_over_the_bad_folder(bad_folder: Path, tmp_path: Path) -> None:
    from alienstay.testing.tiny_models import build_tiny_clip

    ws = Workspace(tmp_path / "ws")
    model = build_tiny_clip(tmp_path / "tiny-clip")
    for command in (
        ["ingest", "folder", str(bad_folder)],
        ["preprocess"],
        ["stats"],
        ["tag", "--model", str(model), "--workers", "0"],
        ["cluster", "--k-max", "4"],
        ["index"],
        ["report"],
    ):
        result = runner.invoke(app, [*command, "--workspace", str(ws.root)])
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
    catalog = ws.read_catalog().set_index("image_id")
    assert {name: (row.status, row.reason) for name, row in catalog.iterrows()} == EXPECTED
    tagged = set(pd.read_parquet(ws.tags_path)["image_id"])
    assert tagged == {name for name, (status, _) in EXPECTED.items() if status == cat.OK}
    assert set(pd.read_parquet(ws.clusters_path)["image_id"]) == tagged
    assert "symlink_outside_folder" in (ws.report_dir / "dataset.md").read_text()

    # The gallery lists every usable photo, and each one's page, file and record open.
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from alienstay.web.app import create_app

    client = TestClient(create_app(ws.root))
    home = client.get("/")
    assert home.status_code == 200 and "<img src=x onerror" not in home.text  # the HTML name is escaped
    for image_id in sorted(tagged):
        for url in (f"/photo/{quote(image_id)}", f"/media/photo/{quote(image_id)}", f"/api/images/{quote(image_id)}"):
            assert client.get(url).status_code == 200, (image_id, url)


# ---- issue 16, item 9: the best copy of a duplicate is kept ---------------------------------
def original_and_gif_frame(folder: Path) -> tuple[bytes, bytes]:
    """An 800 x 533 original and a 400 x 300 GIF frame of it (a GIF sorts first by name)."""
    original = photo_like(70, (800, 533))
    frame = encoded(original.resize((400, 300), Image.Resampling.LANCZOS), "GIF")
    return jpeg_bytes(original, quality=92), frame


def statuses(catalog: pd.DataFrame) -> dict[str, tuple[str, str, object]]:
    return {r.image_id: (r.status, r.reason, None if pd.isna(r.duplicate_of) else r.duplicate_of)
            for r in catalog.itertuples()}  # fmt: skip


def test_the_largest_copy_is_kept_not_the_first_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    original, frame = original_and_gif_frame(folder)
    (folder / "a_frame.gif").write_bytes(frame)
    (folder / "b_original.jpg").write_bytes(original)
    decided = preprocess.preprocess_catalog(catalog_folder(folder), tmp_path / "prepared")
    assert statuses(decided) == {
        "a_frame.gif": ("duplicate", "near_duplicate; kept b_original.jpg: more pixels (800x533 vs 400x300)",
                        "b_original.jpg"),
        "b_original.jpg": ("ok", "", None),
    }  # fmt: skip


def test_a_better_copy_arriving_later_takes_the_group_over(tmp_path: Path) -> None:
    """Run 1 sees only the GIF and its exact copy; run 2 adds the original: both now point to it."""
    folder, ws = tmp_path / "photos", tmp_path / "ws"
    folder.mkdir()
    original, frame = original_and_gif_frame(folder)
    (folder / "a_frame.gif").write_bytes(frame)
    (folder / "c_frame_copy.gif").write_bytes(frame)

    def ingest_and_preprocess() -> dict[str, tuple[str, str, object]]:
        for command in (["ingest", "folder", str(folder)], ["preprocess"]):
            result = runner.invoke(app, [*command, "--workspace", str(ws)])
            assert result.exit_code == 0, result.output
        return statuses(Workspace(ws).read_catalog())

    assert ingest_and_preprocess() == {
        "a_frame.gif": ("ok", "", None),
        "c_frame_copy.gif": ("duplicate", "exact_duplicate; kept a_frame.gif: identical file, the first in catalog order",
                             "a_frame.gif"),
    }  # fmt: skip
    (folder / "b_original.jpg").write_bytes(original)
    got = ingest_and_preprocess()
    kept_because = "near_duplicate; kept b_original.jpg: more pixels (800x533 vs 400x300)"
    assert got == {
        "a_frame.gif": ("duplicate", kept_because, "b_original.jpg"),
        "c_frame_copy.gif": ("duplicate", kept_because, "b_original.jpg"),
        "b_original.jpg": ("ok", "", None),
    }


@pytest.mark.parametrize(
    ("worse", "better", "why"),
    [
        (("a.jpg", "JPEG", {"quality": 60}), ("b.png", "PNG", {}), "same size, a less lossy format (PNG vs JPEG)"),
        (("a.jpg", "JPEG", {"quality": 40}), ("b.jpg", "JPEG", {"quality": 95}), "same size, less compressed"),
    ],
)
def test_of_two_copies_the_same_size_the_less_compressed_is_kept(tmp_path: Path, worse, better, why) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    picture = photo_like(71, (320, 240))
    for name, fmt, args in (worse, better):
        (folder / name).write_bytes(encoded(picture, fmt, **args))
    got = statuses(preprocess.preprocess_catalog(catalog_folder(folder), tmp_path / "prepared"))
    status, reason, kept = got[worse[0]]
    assert (status, kept, got[better[0]][0]) == ("duplicate", better[0], "ok")
    assert reason.startswith(f"near_duplicate; kept {better[0]}: {why}")
