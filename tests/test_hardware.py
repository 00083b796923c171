"""Where models run: dtype, offload and batch size as pure functions of the machine's answer, and
every model-loading stage run with `--device cpu --dtype auto` on tiny models, recording both."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from alienstay.cli.commands import app
from alienstay.runtime import placement
from alienstay.runtime.devices import (
    PIPELINE_DTYPES,
    Machine,
    batch_size_for,
    describe_device,
    needs_offload,
    probe,
    select_dtype,
)  # fmt: skip
from alienstay.testing import tiny_pipelines
from alienstay.testing.tiny_models import (
    build_tiny_blip,
    build_tiny_clip,
    prepared_workspace,
)
from alienstay.workspace.layout import Workspace

runner = CliRunner()
GIB = 2**30
H100 = Machine(cuda_devices=1, cuda_bf16=True, cuda_build="12.4", cuda_names=("NVIDIA H100 80GB HBM3",),
               cuda_free_bytes=(79 * GIB,), cuda_total_bytes=(80 * GIB,))  # fmt: skip
T4 = Machine(cuda_devices=1, cuda_bf16=False, cuda_build="12.4", cuda_names=("Tesla T4",),
             cuda_free_bytes=(3 * GIB,), cuda_total_bytes=(15 * GIB,))  # fmt: skip
MAC = Machine(mps=True)
HERE = probe()


def test_pipelines_run_in_bf16_or_fp16_on_accelerators_and_fp32_on_the_cpu():
    assert select_dtype("auto", "cuda", H100, PIPELINE_DTYPES) == "bfloat16"
    assert select_dtype("auto", "cuda", T4, PIPELINE_DTYPES) == "float16"  # no bf16 before Ampere
    assert select_dtype("auto", "mps", MAC, PIPELINE_DTYPES) == "float16"
    assert select_dtype("auto", "cpu", H100, PIPELINE_DTYPES) == "float32"
    assert select_dtype("auto", "cpu", HERE, PIPELINE_DTYPES) == "float32"  # this machine's answer
    assert placement.edit_placement("cpu", "auto", HERE) == ("cpu", "float32")
    assert placement.edit_placement("auto", "auto", T4) == ("cuda", "float16")
    with pytest.raises(ValueError, match="float16 only|runs in float32, float16, bfloat16 only"):
        select_dtype("int8", "cpu", HERE, PIPELINE_DTYPES, "a diffusion pipeline")
    with pytest.raises(ValueError, match="runs in float32, bfloat16, int8 only"):
        select_dtype("float16", "cpu", HERE)  # an encoder entry does not list float16


def test_offload_only_where_free_gpu_memory_is_below_the_need():
    assert needs_offload("cuda", T4, 5 * GIB) and not needs_offload("cuda:0", H100, 5 * GIB)
    assert not needs_offload("cpu", T4, 10**15) and not needs_offload("mps", MAC, 10**15)
    assert not needs_offload("cuda:1", H100, 5 * GIB)  # no memory probed for it: nothing to decide on


def test_tag_batch_size_adapts_to_the_device():
    assert batch_size_for("cpu", HERE) == 32 and batch_size_for("mps", MAC) == 64
    assert batch_size_for("cuda", H100) == 256 and batch_size_for("cuda", T4) == 128
    assert "H100" in describe_device("cuda:0", H100) and "79.0 of 80.0 GiB free" in describe_device("cuda", H100)
    assert describe_device("cpu", HERE).startswith("cpu (torch ")


def test_a_pipelines_need_is_its_weights_with_headroom(tmp_path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_pipelines.build_tiny_sd(tmp_path / "sd"))
    weights = placement.weight_bytes(pipe)
    assert weights == sum(p.numel() * 4 for m in (pipe.unet, pipe.vae, pipe.text_encoder) for p in m.parameters())
    assert placement.needed_bytes(pipe) > weights
    placed = placement.place_pipeline(pipe, "cpu", "float32", machine=HERE)
    assert placed.record() == {"device": "cpu", "dtype": "float32"} and not placed.offload
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
@pytest.mark.parametrize("command", [["tag"], ["edit", "--recipe", "night"], ["persona"], ["demo"]])
def test_device_cuda_here_is_refused_with_what_was_found_and_the_fix(command, tmp_path):
    result = runner.invoke(app, [*command, "--device", "cuda", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--device cuda" in text and "CPU-only torch build" in text and "--device cpu" in text


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardware_models")
    return {"clip": build_tiny_clip(root / "clip"), "blip": build_tiny_blip(root / "blip"),
            "ip2p": tiny_pipelines.build_tiny_instruct_pix2pix(root / "ip2p"),
            "sd": tiny_pipelines.build_tiny_sd(root / "sd"), "dino": tiny_pipelines.build_tiny_dino(root / "dino")}  # fmt: skip


def test_every_stage_runs_with_device_cpu_dtype_auto_and_records_both(models, samples_dir, tmp_path):
    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    on_cpu = ["--device", "cpu", "--dtype", "auto", "--workspace", str(ws.root)]
    tagged = runner.invoke(app, ["tag", "--model", str(models["clip"]), "--caption", "--caption-model", str(models["blip"]), *on_cpu])
    assert tagged.exit_code == 0, tagged.output
    assert tagged.output.count("runs on cpu") == 1  # said once
    tags = ws.read_tags()
    assert set(tags["device"]) == {"cpu"} and set(tags["dtype"]) == {"float32"}
    captions = pd.read_parquet(ws.captions_path)
    assert len(captions) and set(captions["device"]) == {"cpu"} and set(captions["dtype"]) == {"float32"}

    edited = runner.invoke(app, ["edit", "--recipe", "night", "--method", "instruct-pix2pix", "--model", str(models["ip2p"]),
                                 "--dino", str(models["dino"]), "--steps", "2", "--size", "64", "--images", "5", *on_cpu])  # fmt: skip
    assert edited.exit_code == 0, edited.output
    assert edited.output.count("runs on cpu") == 1
    edits = pd.read_parquet(ws.edits_path)
    assert set(edits["device"]) == {"cpu"} and set(edits["dtype"]) == {"float32"}
    assert edits["dino_distance"].notna().all()  # the guard's DINO ran on the same device

    portrait = runner.invoke(app, ["persona", "--model", str(models["sd"]), "--steps", "2", "--size", "64", *on_cpu])
    assert portrait.exit_code == 0, portrait.output
    assert portrait.output.count("runs on cpu") == 1
    assert next(Workspace(ws.root).persona_dir.glob("*.png")).is_file()


def test_a_preset_fills_the_tagger_and_the_batch_size_follows_the_device(models, samples_dir, tmp_path, monkeypatch):
    from alienstay.runtime.models import MODELS_DIR_ENV
    from alienstay.runtime.presets import members

    # The `cpu` preset's tagger, carried in a models folder (what `models download` writes).
    carried = tmp_path / "carried" / members("cpu")["tagger"].model
    build_tiny_clip(carried)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "carried"))
    ws = prepared_workspace(tmp_path / "ws", samples_dir)
    result = runner.invoke(app, ["tag", "--preset", "cpu", "--device", "cpu", "--workspace", str(ws.root)])
    assert result.exit_code == 0, result.output
    assert set(ws.read_tags()["model_id"]) == {members("cpu")["tagger"].model}
    runs = [json.loads(line) for line in ws.runs_log_path.read_text().splitlines()]
    last = [r for r in runs if r["stage"] == "tag"][-1]  # the run log records what the device chose
    assert last["batch_size"] == 32 and last["device"] == "cpu" and last["dtype"] == "float32"
