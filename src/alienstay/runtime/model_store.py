"""Where each preset's weights are (`models list`) and fetching them into a folder (`models download`).

A download writes DIR/<owner>/<name> through huggingface_hub's `snapshot_download(local_dir=...)`
with the member's allow-patterns: only the files the loaders read, complete files skipped and
partial ones resumed on a rerun. DIR can be copied to a machine with no hub and named there by
`--models-dir DIR` (see alienstay.runtime.models.resolve).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alienstay.runtime.models import WEIGHT_SUFFIXES, models_dir, models_dir_copy
from alienstay.runtime.presets import WEIGHTS_FALLBACK, Member, members, pick

MODELS_FOLDER, HUB_CACHE, MISSING, PACKAGED = "models folder", "hub cache", "missing", "packaged (pip)"


@dataclass(frozen=True)
class ModelRow:
    role: str
    model: str
    licence: str
    where: str  # MODELS_FOLDER | HUB_CACHE | MISSING | PACKAGED
    path: Path | None = None
    size_bytes: int = 0  # the files the loader reads, as found on disk
    note: str = ""


@dataclass(frozen=True)
class Fetched:
    model: str
    roles: tuple[str, ...]
    path: Path | None
    size_bytes: int = 0
    error: str = ""  # why it could not be fetched; empty when it was


def loaded_files(folder: Path, patterns: Iterable[str] | None) -> list[Path]:
    """The files under `folder` a loader with these allow-patterns reads (hidden folders aside)."""
    from huggingface_hub.utils import filter_repo_objects

    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    names = [n for n in names if not any(part.startswith(".") for part in n.split("/"))]
    allow = list(patterns) + list(WEIGHTS_FALLBACK) if patterns is not None else None
    return [folder / n for n in filter_repo_objects(names, allow_patterns=allow)]


def size_on_disk(files: Iterable[Path]) -> int:
    return sum(os.stat(f).st_size for f in files)  # follows the hub cache's symlinks to the blobs


def _in_hub_cache(member: Member) -> Path | None:
    from huggingface_hub import snapshot_download

    try:  # local_files_only: never a network call, whatever HF_HUB_OFFLINE says
        return Path(snapshot_download(member.model, allow_patterns=list(member.files or ()), local_files_only=True))
    except Exception:
        return None


def locate(member: Member, root: Path | None = None) -> ModelRow:
    """Where `member`'s weights are: the models folder first (as the resolver looks), then the hub cache."""
    base = ModelRow(member.role, member.model, member.licence, MISSING, note=member.note)
    if not member.fetchable:
        return ModelRow(**{**base.__dict__, "where": PACKAGED})
    for where, folder in ((MODELS_FOLDER, models_dir_copy(member.model, root or models_dir())),
                          (HUB_CACHE, _in_hub_cache(member))):  # fmt: skip
        if folder is None:
            continue
        files = loaded_files(folder, member.files)
        note = member.note if any(f.suffix in WEIGHT_SUFFIXES for f in files) else "no weight files: incomplete"
        return ModelRow(member.role, member.model, member.licence, where, folder, size_on_disk(files), note)
    return base


def inventory(preset: str = "auto", root: Path | None = None) -> list[ModelRow]:
    """One row a role of `preset` (auto: by this machine's hardware)."""
    return [locate(member, root) for member in members(pick(preset)).values()]


def plan_download(preset: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """model id -> (roles, allow-patterns): a repo serving two roles (SD 1.5) is fetched once."""
    plan: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for member in members(pick(preset)).values():
        if member.fetchable:
            roles, files = plan.get(member.model, ((), ()))
            plan[member.model] = (roles + (member.role,), tuple(dict.fromkeys(files + tuple(member.files))))
    return plan


class ChecksumMismatch(RuntimeError):
    """A fetched file is not the one the hub lists (size, sha256 or git blob id); it has been deleted."""


def fetch(model: str, patterns: tuple[str, ...], target: Path) -> Path:
    """snapshot_download into target/<owner>/<name>; repos without safetensors get their .bin instead.
    Every file is then checked against the hub's listing, on this run and every later one (a file
    already there is skipped by the download, not by the check)."""
    from huggingface_hub import snapshot_download

    folder = target / model
    snapshot_download(model, allow_patterns=list(patterns), local_dir=folder)
    if not any(f.suffix in WEIGHT_SUFFIXES for f in loaded_files(folder, patterns)):
        snapshot_download(model, allow_patterns=list(patterns) + list(WEIGHTS_FALLBACK), local_dir=folder)
    verify(model, folder, patterns)
    return folder


def hub_listing(model: str) -> dict[str, object]:
    """path -> the hub's RepoFile (size, blob id, LFS sha256) for every file of the repo."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    return {e.path: e for e in HfApi().list_repo_tree(model, recursive=True) if isinstance(e, RepoFile)}


def mismatch(path: Path, listed) -> str | None:
    """Why the file on disk is not the listed one (None: it is): size first, then the content's hash."""
    size = path.stat().st_size
    if size != listed.size:
        return f"{size} bytes, the hub lists {listed.size}"
    if listed.lfs is not None:
        found = file_digest(path, hashlib.sha256())
        return None if found == listed.lfs.sha256 else f"sha256 {found[:12]}..., the hub lists {listed.lfs.sha256[:12]}..."
    found = file_digest(path, hashlib.sha1(b"blob %d\0" % size))  # git's blob id of a small file
    return None if found == listed.blob_id else f"git blob {found[:12]}..., the hub lists {listed.blob_id[:12]}..."


def file_digest(path: Path, digest) -> str:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(model: str, folder: Path, patterns: tuple[str, ...]) -> None:
    """Each fetched file checked against the hub's listing; one that differs is deleted with its
    download record (so the next run fetches it again) and ChecksumMismatch says which and why."""
    listing = hub_listing(model)
    bad = []
    for path in loaded_files(folder, patterns):
        name = path.relative_to(folder).as_posix()
        reason = mismatch(path, listing[name]) if name in listing else None
        if reason is not None:
            path.unlink()
            (folder / ".cache" / "huggingface" / "download" / f"{name}.metadata").unlink(missing_ok=True)
            bad.append(f"{name} ({reason})")
    if bad:
        raise ChecksumMismatch(f"{'; '.join(bad)}: not the file the hub lists, deleted; rerun to fetch it again")


def download(preset: str, target: Path, on_model: Callable[[Fetched], None] = lambda fetched: None) -> list[Fetched]:
    """Fetch every hub model of `preset` into `target`; a model that fails is recorded, the others go on."""
    results = []
    for model, (roles, patterns) in plan_download(preset).items():
        try:
            folder = fetch(model, patterns, Path(target))
            fetched = Fetched(model, roles, folder, size_on_disk(loaded_files(folder, patterns)))
        except Exception as error:  # each failure is a recorded reason; the other models still download
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            fetched = Fetched(model, roles, None, error=f"{type(error).__name__}: {first}")
        on_model(fetched)
        results.append(fetched)
    return results


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
