"""Every error path a newcomer can hit names a fix that works: the hint's command is run, or
parsed by the CLI itself (issue 22 part 3, issue 23 item 8).

No weights are here (HF_HUB_OFFLINE, an empty hub cache), as on a fresh machine without internet.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
import huggingface_hub.constants
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from alienstay.cli import common as cli_common
from alienstay.cli import models as cli_models
from alienstay.cli.commands import app
from alienstay.runtime.models import missing_model_message
from alienstay.runtime.presets import MEMBERS, folder_hint, needing
from alienstay.testing.tiny_models import prepared_workspace

runner = CliRunner()
# The command whose option takes each role's model (the folder hint is checked on it).
ROLE_COMMANDS = {
    "tagger": "tag", "captioner": "tag --caption", "masker": "edit", "masker:segmenter": "edit", "guard:clip": "edit",
    "guard:dino": "edit", "control:mlsd": "edit --method controlnet", "control:canny": "edit --method controlnet",
    "text-to-image": "persona",
}  # fmt: skip


def parse(command: str) -> None:
    """`alienstay ...` parsed by the CLI down to its sub-command, options and types checked, nothing run."""
    for one in command.split(" && "):
        args = shlex.split(one)
        assert args[0] == "alienstay", one
        cmd: click.Command = get_command(app)
        ctx = cmd.make_context("alienstay", args[1:])
        while isinstance(cmd, click.Group):
            rest = [*getattr(ctx, "_protected_args", ctx.protected_args), *ctx.args]
            name, cmd, rest = cmd.resolve_command(ctx, rest)
            ctx = cmd.make_context(name, rest, parent=ctx)


def hinted(text: str) -> list[str]:
    """The `alienstay ...` commands a message names (in backticks), placeholders as written."""
    return [c.strip() for c in re.findall(r"`(alienstay [^`]+)`", " ".join(text.split()))]


@pytest.fixture(autouse=True)
def no_weights(tmp_path: Path, monkeypatch) -> None:
    """A machine with no hub: nothing cached, the hub not asked; consoles wide so hints stay on one line."""
    cache = tmp_path / "empty-hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("ALIENSTAY_MODELS_DIR", raising=False)
    for console in (cli_common.console, cli_models.console):
        monkeypatch.setattr(console, "width", 1000)


@pytest.fixture(scope="module")
def template(tmp_path_factory, samples_dir: Path) -> Path:
    return prepared_workspace(tmp_path_factory.mktemp("hints") / "ws", samples_dir).root


@pytest.fixture
def ws(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    return root


def failed_with_hints(result, *expected: str) -> list[str]:
    """The command failed with a message (exit 2, no traceback) holding `expected`; its hinted commands parse."""
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    for part in expected:
        assert part in text, (part, text)
    commands = hinted(result.output)
    for command in commands:
        parse(command)
    return commands


@pytest.mark.parametrize("member", [m for m in MEMBERS if m.fetchable], ids=lambda m: m.name)
def test_each_missing_model_names_the_preset_that_fetches_it_and_the_option_that_takes_a_folder(member) -> None:
    text = " ".join(missing_model_message(member.model).split())
    first = needing(member.model)[0]
    assert f"alienstay models download --preset {first.preset} --to DIR" in text
    assert first.preset == member.preset or member.preset == "gpu"  # gpu inherits cpu's: cpu's download has it
    for command in hinted(text):
        parse(command)
    option = folder_hint(first)
    assert f"`{option}`" in text
    command = ROLE_COMMANDS.get(first.role, "edit --method " + first.role.split(":")[-1])
    parse(f"alienstay {command} {option}")


def test_tag_with_the_gpu_preset_names_the_gpu_download(ws: Path) -> None:
    result = runner.invoke(app, ["tag", "--preset", "gpu", "--workspace", str(ws)])
    failed_with_hints(result, "google/siglip2-so400m-patch14-384", "models download --preset gpu", "(the gpu preset's tagger")
    assert "--preset cpu" not in result.output


def test_persona_with_the_gpu_preset_names_flux_as_the_command_takes_it(tmp_path: Path) -> None:
    result = runner.invoke(app, ["persona", "--preset", "gpu", "--workspace", str(tmp_path / "ws")])
    failed_with_hints(result, "models download --preset gpu", "--model flux-schnell:/path/to/FLUX.1-schnell")
    parse("alienstay persona --model flux-schnell:/path/to/FLUX.1-schnell")


def test_tag_caption_checks_the_captioner_before_tagging_and_names_its_option(ws: Path) -> None:
    result = runner.invoke(app, ["tag", "--model", "offline", "--caption", "--workspace", str(ws)])
    failed_with_hints(result, "Salesforce/blip-image-captioning-base", "--caption-model /path/to/blip-image-captioning-base")
    assert not (ws / "tags.parquet").exists()  # stopped before an hour of tagging


def test_an_edit_without_diffusion_weights_names_the_classical_grade_and_that_command_runs(ws: Path) -> None:
    result = runner.invoke(app, ["edit", "--recipe", "lights", "--images", "5", "--workspace", str(ws)])
    commands = failed_with_hints(result, "timbrooks/instruct-pix2pix", "--method classical")
    classical = next(c for c in commands if "--method classical" in c)
    ran = runner.invoke(app, [*shlex.split(classical)[1:], "--images", "5"])
    assert ran.exit_code == 0, ran.output
    assert "NOT diffusion" in ran.output and (ws / "edits.parquet").exists()


def test_ingesting_an_empty_folder_fails_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("no photo here")
    result = runner.invoke(app, ["ingest", "folder", str(tmp_path / "photos"), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2, result.output
    assert "no photo files under" in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("stage", ["report", "analyse", "cluster", "stats", "index", "retrieval", "preprocess"])
def test_a_mistyped_workspace_is_not_created_and_the_existing_one_is_named(ws: Path, stage: str) -> None:
    typo = ws.parent / "wss"
    result = runner.invoke(app, [stage, "--workspace", str(typo)])
    commands = failed_with_hints(result, f"no workspace at {typo}", f"Did you mean `--workspace {ws}`?")
    assert not typo.exists()
    assert any(c.startswith("alienstay ingest folder") for c in commands)
    if stage == "report":  # the workspace it names is the one that works
        assert runner.invoke(app, ["report", "--workspace", str(ws)]).exit_code == 0


def test_serve_on_a_missing_workspace_names_the_one_that_exists(ws: Path) -> None:
    result = runner.invoke(app, ["serve", "--workspace", str(ws.parent / "demo")])
    failed_with_hints(result, f"Did you mean `--workspace {ws}`?")


def test_the_report_of_a_workspace_not_yet_tagged_names_commands_that_parse(ws: Path) -> None:
    result = runner.invoke(app, ["report", "--workspace", str(ws)])
    assert result.exit_code == 0, result.output
    report = (ws / "report" / "REPORT.md").read_text()
    commands = hinted(report)
    assert f"alienstay tag --workspace {ws} && alienstay analyse --workspace {ws}" in commands
    for command in commands:
        parse(command)


def test_models_list_names_the_offline_tagger_that_runs_when_clip_is_missing() -> None:
    from alienstay.encoders.offline import IMAGE_MODEL

    result = runner.invoke(app, ["models", "list", "--preset", "cpu"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    lite = IMAGE_MODEL.replace("efficientnet-lite", "EfficientNet-Lite")  # the image model the offline tagger loads
    assert f"runs the OFFLINE tagger instead: {lite} + all-MiniLM-L6-v2" in text
    for command in hinted(text):
        parse(command)
    offline = " ".join(runner.invoke(app, ["models", "list", "--preset", "offline"]).output.split())
    assert lite in offline and "Lite0" not in offline


def test_the_demo_without_the_presets_weights_is_a_message_not_a_traceback(tmp_path: Path, samples_dir: Path) -> None:
    result = runner.invoke(app, ["demo", "--input", str(samples_dir), "--preset", "cpu", "--workspace", str(tmp_path / "demo")])
    failed_with_hints(result, "openai/clip-vit-base-patch32", "models download --preset cpu")


def test_the_demo_with_the_offline_preset_tries_no_hub_model(tmp_path: Path, monkeypatch) -> None:
    """`demo --preset offline`: the guard uses the offline tagger, recipes without a classical grade and
    the portrait are skipped with the reason, and no CLIP, diffusion or text-to-image load is attempted."""
    from rich.console import Console

    from alienstay.stages import demo, edit, persona
    from alienstay.stages.tag import tagger_model
    from alienstay.tagging.settings import TagSettings
    from alienstay.workspace.layout import Workspace

    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(edit, "run_or_fallback", lambda ws, s: asked.append((s.recipe, s.clip)) or edit.EditSummary(skipped="recorded"))
    monkeypatch.setattr(persona, "run", lambda *a, **k: pytest.fail("the offline preset has no text-to-image model to load"))
    ws, log, console = Workspace(tmp_path / "ws").ensure(), demo.DemoLog(), Console(file=open(tmp_path / "out.txt", "w"))
    guard = tagger_model(TagSettings(model="auto", preset="offline"))
    demo.run_edits(ws, guard, 5, console, log, preset="offline")
    demo.run_persona(ws, console, log, preset="offline")
    assert guard == "offline" and asked == [("time_of_day", "offline"), ("lights", "offline")]
    assert log.skipped == ["recorded", "recorded", "edit bed_decoration: the offline preset edits with classical, which this recipe does not allow",
                           "edit alien_style: the offline preset edits with classical, which this recipe does not allow",
                           "persona: the offline preset has no text-to-image model"]


LOAD_TEXT_MODEL = """
import sys, warnings
if sys.argv[1] == "quiet":
    from alienstay.cli.common import quiet_third_parties
    quiet_third_parties()
from alienstay.encoders.offline import load_text_model
load_text_model()
warnings.warn_explicit("a third-party notice", UserWarning, "x.py", 1, module="sentence_transformers.x")
warnings.warn_explicit("our own warning", UserWarning, "y.py", 1, module="alienstay.y")
"""


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_weight_loading_bars_and_third_party_warnings_show_only_when_verbose(mode: str) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in cli_common.QUIET_ENVIRONMENT}
    said = subprocess.run([sys.executable, "-c", LOAD_TEXT_MODEL, mode], capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert said.returncode == 0, said.stderr
    assert "our own warning" in said.stderr  # this project's warnings always show
    noisy = "Loading weights" in said.stderr and "a third-party notice" in said.stderr
    assert noisy == (mode == "verbose"), said.stderr


def test_the_cli_is_quiet_unless_verbose(monkeypatch) -> None:
    import alienstay.cli.commands

    calls: list[str] = []
    monkeypatch.setattr(alienstay.cli.commands, "quiet_third_parties", lambda: calls.append("quiet"))
    assert runner.invoke(app, ["models", "list", "--preset", "offline"]).exit_code == 0
    assert runner.invoke(app, ["--verbose", "models", "list", "--preset", "offline"]).exit_code == 0
    assert calls == ["quiet"]


def test_the_auto_fallback_paragraph_is_said_once_a_process(monkeypatch, caplog) -> None:
    """The demo loads `auto` for the tagger and for each edit's guard: the 'could not be had' paragraph once."""
    import logging
    import types

    import alienstay.encoders as encoders
    from alienstay.runtime.devices import probe
    from alienstay.runtime.models import WeightsUnavailable

    def load_entry(entry, model, device, dtype, machine=None):
        if entry.name == "hf":
            raise WeightsUnavailable(missing_model_message(model))
        return types.SimpleNamespace(model_id="offline:efficientnet-lite1+all-MiniLM-L6-v2")

    monkeypatch.setattr(encoders, "load_entry", load_entry)
    monkeypatch.setattr(encoders, "_FALLBACKS_SAID", set())
    with caplog.at_level(logging.WARNING, logger="alienstay"):
        for _ in range(4):
            assert encoders._load_auto("cpu", "float32", probe()).model_id.startswith("offline:")
    assert [r.getMessage().count("could not be had") for r in caplog.records] == [1]
