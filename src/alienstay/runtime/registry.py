"""Named registries: every extension point (encoders, captioners, editors...) is one entry.

A stage looks a name up here instead of branching on a model-id string, so adding an
encoder or a captioner is one ``register`` call beside its loader, and a wrong name is
refused with the names that exist.

Outside packages add entries without touching this one: a registry created with an
entry-point ``group`` (``alienstay.encoders``, ``alienstay.editors``...) loads, on its first
lookup or listing, every entry point of that group in the installed distributions; each
names an entry object, or a function returning one or several. Every registry is listed in
:data:`REGISTRIES` when created; :func:`all_registries` imports the modules that create the
built-in ones (:data:`HOMES`), so a contract test and docs/models.md see every entry, and
:func:`registry_of` finds one by its kind (what a preset member names).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)

# Each built-in registry's kind -> the module that creates it (imported only when asked for, so
# naming a registry does not import every model library; a test checks none is missing).
HOMES = {
    "encoder": "alienstay.encoders", "captioner": "alienstay.captioning.captioners",
    "edit method": "alienstay.editing.methods", "masker": "alienstay.editing.masks",
    "control map": "alienstay.editing.controls", "structure model": "alienstay.editing.structure",
    "text-to-image model": "alienstay.persona.text_to_image", "clustering method": "alienstay.clustering.methods",
    "feature kind": "alienstay.clustering.features", "tag engine": "alienstay.tagging.engines",
    "probability rule": "alienstay.tagging.scoring", "index backend": "alienstay.similarity.index",
    "selection rule": "alienstay.labelled.calibration",
    "preset": "alienstay.runtime.presets",
    "preset member": "alienstay.runtime.presets",
}  # fmt: skip


class EntryPointError(RuntimeError):
    """An outside package's entry point could not be loaded or is not an entry; the message names it."""


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group  # the entry-point group outside packages register through
        self._entries: dict[str, T] = {}
        self.outside: dict[str, str] = {}  # entry name -> the distribution whose entry point added it
        self._outside_loaded = group is None
        self._loading = False
        self._points_done: set[str] = set()  # entry points already registered (a retry skips them)
        self.home = sys._getframe(1).f_globals.get("__name__", "")  # the module that created it
        REGISTRIES.append(self)

    def register(self, entry: T) -> T:
        if not hasattr(entry, "name"):
            raise TypeError(f"a {self.kind} entry needs a `name`; got {entry!r}.")
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice: pick another name.")
        self._entries[entry.name] = entry
        return entry

    def _entries_now(self) -> dict[str, T]:
        if not self._outside_loaded and not self._loading:
            self._loading = True  # an entry point whose module looks a name up must not recurse
            try:
                self.load_entry_points()
                self._outside_loaded = True  # only once all loaded: a failing one fails every lookup, not the first
            finally:
                self._loading = False
        return self._entries

    def load_entry_points(self) -> list[str]:
        """Register the entries of this registry's entry-point group; returns their names."""
        added = []
        for point in metadata.entry_points(group=self.group) if self.group else ():
            if point.value in self._points_done:
                continue
            where = f"entry point {point.name!r} ({point.value}) of the distribution {_distribution(point)}"
            before = set(self._entries)
            try:
                loaded = point.load()
                found = loaded() if callable(loaded) and not hasattr(loaded, "name") else loaded
            except Exception as error:
                raise EntryPointError(
                    f"{where} in group {self.group!r} failed to load ({type(error).__name__}: {error}): "
                    f"fix or uninstall that distribution."
                ) from error
            for entry in found if isinstance(found, Iterable) and not hasattr(found, "name") else (found,):
                if self._entries.get(getattr(entry, "name", None)) is entry:
                    continue  # the module registered it itself on import
                try:
                    self.register(entry)
                except (TypeError, ValueError) as error:
                    raise EntryPointError(f"{where}: {error}") from error
            new = [name for name in self._entries if name not in before]  # its module may register them itself
            self.outside.update(dict.fromkeys(new, _distribution(point)))
            self._points_done.add(point.value)
            added += new
        return added

    def builtin(self) -> list[T]:
        """The entries this package registers itself (outside packages' left out)."""
        return [entry for entry in self if entry.name not in self.outside]

    def get(self, name: str) -> T:
        entries = self._entries_now()
        try:
            return entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}: use one of {', '.join(entries)}.") from None

    def lookup(self, model: str, default: str) -> tuple[T, str | None]:
        """What a `--model` value means: `NAME` -> (that entry, its default model); `NAME:MODEL`
        -> (that entry, MODEL); anything else (a hub id, a folder) -> (the `default` entry, model)."""
        entries = self._entries_now()
        if model in entries:
            entry = entries[model]
            return entry, getattr(entry, "default_model", None)
        name, colon, rest = model.partition(":")
        if colon and name in entries and not Path(model).expanduser().exists():
            entry = entries[name]
            return entry, rest or getattr(entry, "default_model", None)
        return self.get(default), model

    def names(self) -> list[str]:
        return list(self._entries_now())

    def choices(self, remark: Callable[[T], str] = lambda entry: "") -> str:
        """`name | name (remark) | ...`: an option's help, written from the entries themselves."""
        return " | ".join(f"{e.name} ({said})" if (said := remark(e)) else e.name for e in self)

    def __contains__(self, name: object) -> bool:
        return name in self._entries_now()

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries_now().values()))


REGISTRIES: list[Registry] = []  # every registry created, in creation order


def _distribution(point: metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "(unknown distribution)"


def all_registries() -> list[Registry]:
    """Every registry the package creates, its modules imported first (so none is missed for being
    unimported); registries a test or a script makes for itself are left out."""
    for home in dict.fromkeys(HOMES.values()):
        importlib.import_module(home)
    order = {kind: number for number, kind in enumerate(HOMES)}  # HOMES' order, whatever was imported first
    ours = [registry for registry in REGISTRIES if registry.home.startswith("alienstay.")]
    return sorted(ours, key=lambda registry: order.get(registry.kind, len(order)))


def registry_of(kind: str) -> Registry:
    """The registry whose entries are of `kind` ("encoder", "edit method"...)."""
    if kind in HOMES:
        importlib.import_module(HOMES[kind])
    found = {registry.kind: registry for registry in REGISTRIES if registry.home.startswith("alienstay.")}
    found = found if kind in found else {registry.kind: registry for registry in all_registries()}
    if kind not in found:
        raise ValueError(f"no registry of {kind!r}: use one of {', '.join(found)}.")
    return found[kind]
