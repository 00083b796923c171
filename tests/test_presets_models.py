"""Presets, `alienstay models list|download` end to end against a loopback hub, and the models folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import HubServer

from alienstay.runtime import model_store, presets
from alienstay.runtime.devices import Machine, probe
from alienstay.runtime.models import MODELS_DIR_ENV, resolve
from alienstay.testing import tiny_pipelines as tp
from alienstay.testing.tiny_models import build_tiny_blip, build_tiny_clip

DECOYS = ("flax_model.msgpack", "tf_model.h5", "v1-5-pruned-emaonly.ckpt", "safety_checker/model.safetensors")


def test_every_role_of_cpu_has_a_member_and_gpu_inherits_the_rest():
    cpu, gpu = presets.members("cpu"), presets.members("gpu")
    assert list(cpu) == [role for role in presets.ROLES if role not in presets.GPU_ONLY_ROLES]
    assert set(gpu) == set(cpu) | set(presets.GPU_ONLY_ROLES)
    assert gpu["tagger"].model != cpu["tagger"].model  # gpu's own entry wins
    assert gpu["edit:instruct-pix2pix"] == cpu["edit:instruct-pix2pix"]  # inherited
    assert all(member.licence for preset in presets.PRESETS.names() for member in presets.members(preset).values())
    assert not any(m.fetchable for m in presets.members("offline").values())  # pip-only: nothing to fetch


def test_auto_picks_by_hardware():
    assert presets.pick("auto", Machine(cuda_devices=1, cuda_build="12.4")) == "gpu"
    assert presets.pick("auto", Machine(mps=True)) == "cpu"
    assert presets.pick("auto", Machine()) == "cpu"
    expected = "gpu" if probe().cuda_devices else "cpu"  # this machine's own answer
    assert presets.pick("auto") == expected
    with pytest.raises(ValueError, match="cpu, gpu, offline"):
        presets.pick("laptop")


def test_preset_members_are_their_entries_weights_and_cpu_is_the_registries_defaults():
    from alienstay import persona
    from alienstay.editing import flux_family, pipelines
    from alienstay.editing.masks import MASKERS
    from alienstay.editing.methods import EDITORS
    from alienstay.persona.text_to_image import TEXT_TO_IMAGE
    from alienstay.runtime.weights import defaults

    assert list(presets.PIPELINE_FILES) == list(pipelines.PIPELINE_FILES)
    assert presets.FLUX_FILES == flux_family.FLUX_FILES
    for preset in presets.PRESETS.names():
        for member in presets.members(preset).values():  # no id, licence or file list of its own
            assert any(member.weights is w for w in member.spec.weights.values()), member.name
    cpu, gpu = presets.members("cpu"), presets.members("gpu")
    for member in cpu.values():  # the cpu preset loads every entry's default weights
        assert member.weights is next(iter(defaults(member.spec.weights).values())), member.name
    for method in (role for role in presets.GPU_ONLY_ROLES if role.startswith("edit:")):
        assert gpu[method].model == EDITORS.get(method.removeprefix("edit:")).default_models["pipeline"]
    assert "NOT for commercial use" in gpu["edit:kontext"].licence and gpu["edit:qwen-image-edit"].licence == "Apache-2.0"
    assert cpu["masker"].model == MASKERS.get("clipseg").default_model
    assert cpu["text-to-image"].model == TEXT_TO_IMAGE.get(persona.DEFAULT_MODEL).default_model
    with pytest.raises(ValueError, match="declares no weights 'tagger@nope'; use one of tagger"):
        _ = presets.Member("cpu", "tagger", "encoder", "hf", "tagger@nope").model


@pytest.fixture(scope="module")
def hub_repos(tmp_path_factory) -> dict[str, Path]:
    """Every hub model of the `cpu` preset as a tiny model, plus files no loader reads (decoys)."""
    root = tmp_path_factory.mktemp("hub")
    cpu = presets.members("cpu")
    builders = {
        "tagger": build_tiny_clip, "captioner": build_tiny_blip, "masker": tp.build_tiny_clipseg,
        "edit:instruct-pix2pix": tp.build_tiny_instruct_pix2pix, "edit:controlnet": tp.build_tiny_sd,
        "control:mlsd": tp.build_tiny_controlnet, "control:canny": tp.build_tiny_controlnet,
        "edit:inpaint": tp.build_tiny_inpaint, "guard:dino": tp.build_tiny_dino,
    }  # fmt: skip
    repos: dict[str, Path] = {}
    for role, build in builders.items():
        model = cpu[role].model
        folder = build(root / model.replace("/", "--"))
        for decoy in DECOYS:
            (folder / decoy).parent.mkdir(parents=True, exist_ok=True)
            (folder / decoy).write_bytes(b"never read by a loader")
        repos[model] = folder
    return repos


def _alienstay(args: list[str], hub: HubServer, home: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1",
                   "HF_HUB_DISABLE_TELEMETRY": "1", "COLUMNS": "250", **env}  # fmt: skip
    environment.pop(MODELS_DIR_ENV, None)
    environment.pop("HF_HUB_OFFLINE", None)
    environment.pop("HF_HUB_CACHE", None)
    return subprocess.run([sys.executable, "-m", "alienstay.cli.commands", *args], env=environment, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_download_fetches_exactly_the_loaded_files_resumably_and_the_folder_serves_without_a_hub(
    hub_repos, tmp_path, monkeypatch
):
    target = tmp_path / "carried"
    with HubServer(hub_repos) as hub:
        done = _alienstay(["models", "download", "--preset", "cpu", "--to", str(target)], hub, tmp_path / "hf")
        assert done.returncode == 0, done.stderr
        first = dict(hub.fetched)
        for model in hub_repos:
            folder = target / model
            assert (folder / ("model_index.json" if "stable-diffusion" in model or "pix2pix" in model else "config.json")).is_file()
            assert not any((folder / decoy).exists() for decoy in DECOYS), model
        assert (target / "openai/clip-vit-base-patch32/model.safetensors").is_file()
        assert (target / "timbrooks/instruct-pix2pix/unet/diffusion_pytorch_model.safetensors").is_file()
        assert not any(name in DECOYS for _, name in first)  # decoys never left the server

        # A rerun fetches nothing again; a lost file is fetched again, alone.
        (target / "openai/clip-vit-base-patch32/model.safetensors").unlink()
        again = _alienstay(["models", "download", "--preset", "cpu", "--to", str(target)], hub, tmp_path / "hf")
        assert again.returncode == 0, again.stderr
        refetched = {key: n - first.get(key, 0) for key, n in hub.fetched.items() if n != first.get(key, 0)}
        assert refetched == {("openai/clip-vit-base-patch32", "model.safetensors"): 1}

        listed = _alienstay(["--models-dir", str(target), "models", "list", "--preset", "cpu"], hub, tmp_path / "hf")
    assert listed.returncode == 0, listed.stderr
    for member in presets.members("cpu").values():
        line = next(line for line in listed.stdout.splitlines() if f" {member.role} " in line)
        if member.model in hub_repos:
            assert "models folder" in line and member.licence in line and " KB" in line, line
        else:  # text-to-image shares SD 1.5 with edit:controlnet; the guard's CLIP shares the tagger's
            assert "models folder" in line, line

    # On a machine with no hub: the resolver finds the copy, named by its content.
    monkeypatch.setenv(MODELS_DIR_ENV, str(target))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve("openai/clip-vit-base-patch32")
    assert resolved.path == (target / "openai/clip-vit-base-patch32").resolve()
    assert resolved.revision.startswith("local-")
    from alienstay.encoders import load_encoder

    encoder = load_encoder("openai/clip-vit-base-patch32", device="cpu", dtype="auto")
    assert encoder.model_id == "openai/clip-vit-base-patch32"


def test_list_finds_the_hub_cache_and_a_failed_model_is_a_recorded_reason(hub_repos, tmp_path):
    clip = {"openai/clip-vit-base-patch32": hub_repos["openai/clip-vit-base-patch32"]}
    with HubServer(clip) as hub:
        script = "from huggingface_hub import snapshot_download; snapshot_download('openai/clip-vit-base-patch32')"
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("HF_HUB_CACHE", None)
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=300)
        listed = _alienstay(["models", "list", "--preset", "cpu"], hub, tmp_path / "hf")
        failed = _alienstay(["models", "download", "--preset", "cpu", "--to", str(tmp_path / "d")], hub, tmp_path / "hf")
    tagger = next(line for line in listed.stdout.splitlines() if " tagger " in line)
    assert "hub cache" in tagger and "MIT" in tagger
    assert "missing" in next(line for line in listed.stdout.splitlines() if " captioner " in line)
    assert failed.returncode == 1
    assert "failed Salesforce/blip-image-captioning-base" in " ".join(failed.stderr.split())
    assert "rerun to resume" in failed.stderr
    assert (tmp_path / "d/openai/clip-vit-base-patch32/model.safetensors").is_file()  # the others still came


def test_models_list_works_with_nothing_anywhere(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    rows = model_store.inventory("cpu", root=tmp_path / "nothing")
    assert {row.where for row in rows} == {model_store.MISSING}
    assert {row.where for row in model_store.inventory("offline")} == {model_store.PACKAGED}


def test_the_hardware_page_preset_table_names_every_model_each_preset_loads():
    hardware = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text(encoding="utf-8")
    table = hardware.split("| role | `cpu`", 1)[1].split("\n\n", 1)[0]
    for preset in ("cpu", "gpu"):
        for role, member in presets.members(preset).items():
            assert not member.fetchable or member.model.split("/")[-1] in table, (preset, role, member.model)
