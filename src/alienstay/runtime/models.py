"""One resolver for every model: a hub id or a local folder in the hub's layout.

A hub id is first looked for in the models folder (`--models-dir DIR` / ALIENSTAY_MODELS_DIR,
what `alienstay models download --to DIR` writes: DIR/<owner>/<name>), so weights fetched on
another machine and copied here are used without any hub. Otherwise hub ids go through ``huggingface_hub.snapshot_download``, so the hub cache, ``HF_HOME`` /
``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` are honoured exactly as transformers and diffusers
honour them. When weights cannot be had, the error names the id, where it looked and the
two ways to fix it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# What a folder's revision is computed from: the weights and the configs that shape them.
# Not README files or a `.cache/` left by `hf download --local-dir`: copies differ there.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".msgpack", ".h5", ".gguf")
CONFIG_SUFFIXES = (".json",)


MODELS_DIR_ENV = "ALIENSTAY_MODELS_DIR"


class ModelUnavailable(RuntimeError):
    """The model cannot be loaded (no weights, or not a model folder); the message says how to fix it."""


class WeightsUnavailable(ModelUnavailable):
    """A hub id whose weights are neither in the cache nor downloadable: the one failure a caller
    may answer with a fallback (the demo, the notebook). A path that is not a model folder is a
    plain ModelUnavailable: a typo, which must fail, not fall back."""


@dataclass(frozen=True)
class ResolvedModel:
    model_id: str  # what the user asked for: hub id or folder
    path: Path  # a local folder in the hub's layout
    revision: str  # hub commit hash, or "local-<hash of the weight files>" for a folder

    def record(self) -> dict[str, str]:
        """What every output stores about the model that made it."""
        return {"model_id": self.model_id, "model_revision": self.revision}


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve(model: str, allow_patterns: list[str] | None = None) -> ResolvedModel:
    """A local folder is used as it is; a hub id is looked up in the cache, then downloaded."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return ResolvedModel(model_id=str(model), path=folder.resolve(), revision=folder_revision(folder))
    if folder.exists() or model.startswith((".", "/", "~")):
        raise ModelUnavailable(
            f"{model} is not a folder. Pass a folder in the Hugging Face layout "
            "(config.json + weights, as written by save_pretrained) or a hub id."
        )
    copy = models_dir_copy(model)
    if copy is not None:
        return ResolvedModel(model_id=model, path=copy, revision=folder_revision(copy))
    return _resolve_hub_id(model, allow_patterns)


def models_dir() -> Path | None:
    """The models folder named by ALIENSTAY_MODELS_DIR (the CLI's --models-dir sets it), if any."""
    value = os.environ.get(MODELS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def models_dir_copy(repo_id: str, root: Path | None = None) -> Path | None:
    """root/<owner>/<name> when it holds a config or weights (an empty or stray folder is not a copy)."""
    root = root if root is not None else models_dir()
    if root is None or not repo_id or repo_id.startswith((".", "/", "~")):
        return None
    folder = (root / repo_id).resolve()
    if not folder.is_dir() or not any(
        p.suffix in WEIGHT_SUFFIXES + CONFIG_SUFFIXES for p in folder.rglob("*") if ".cache" not in p.parts
    ):
        return None
    return folder


_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime) of every file -> digest: each folder hashed once a process


def folder_revision(folder: Path) -> str:
    """`local-<sha256 prefix>` of a folder's weight and config files (names and bytes).

    A hub snapshot is named by its commit; a folder has no commit, so its content names it:
    two copies of the same weights share a revision (a Ray node's copy passes the driver's
    check), other weights at the same path do not.
    """
    folder = Path(folder).resolve()
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES + CONFIG_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            with open(path, "rb") as handle:
                content = hashlib.file_digest(handle, "sha256").hexdigest()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{content}\n".encode())
        _DIGESTS[stamp] = f"local-{digest.hexdigest()[:16]}"
    return _DIGESTS[stamp]


def _resolve_hub_id(repo_id: str, allow_patterns: list[str] | None) -> ResolvedModel:
    from huggingface_hub import snapshot_download

    try:
        # The cache first: no network call at all when the snapshot is already there.
        path = snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=True)
    except Exception:
        try:
            path = snapshot_download(repo_id, allow_patterns=allow_patterns)
        except Exception as error:
            raise WeightsUnavailable(missing_model_message(repo_id, error)) from error
    revision = Path(path).name  # snapshots/<commit hash>
    return ResolvedModel(model_id=repo_id, path=Path(path), revision=revision)


def missing_model_message(repo_id: str, error: BaseException | None = None) -> str:
    """Where the model was looked for, and the two fixes, naming the preset and option that need it."""
    from alienstay.runtime.presets import folder_hint, needing

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    why = "HF_HUB_OFFLINE is set, so the hub was not asked" if offline else "the hub could not be reached"
    detail = f" ({type(error).__name__}: {str(error).splitlines()[0][:200]})" if error else ""
    root = models_dir()
    folder = f" nor in the models folder {root}" if root else ""
    members = needing(repo_id)
    if members:  # the first preset that loads it (gpu inherits cpu's), so its download fetches it
        need = members[0]
        fetch = (f"`alienstay models download --preset {need.preset} --to DIR` (the {need.preset} preset's "
                 f"{need.role}; or `hf download {repo_id} --local-dir DIR/{repo_id}`)")
        local = f"`{folder_hint(need)}`"
    else:
        fetch = f"`hf download {repo_id} --local-dir DIR/{repo_id}`"
        local = f"`--model /path/to/{repo_id.split('/')[-1]}`"
    return (
        f"model '{repo_id}' is not available: it is not in the hub cache at {hub_cache_dir()}{folder} "
        f"and {why}{detail}.\n"
        f"Fix it either way:\n"
        f"  - on a machine with internet: {fetch}, copy DIR here and pass `--models-dir DIR` (or set {MODELS_DIR_ENV});\n"
        f"  - or pass a local folder in the hub's layout: {local}."
    )
