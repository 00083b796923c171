"""Named registries: every extension point (encoders, captioners, editors...) is one entry.

A stage looks a name up here instead of branching on a model-id string, so adding an
encoder or a captioner is one ``register`` call beside its loader, and a wrong name is
refused with the names that exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


class Registry(Generic[T]):
    """Entries of one kind by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice: pick another name.")
        self._entries[entry.name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}: use one of {', '.join(self._entries)}.") from None

    def lookup(self, model: str, default: str) -> tuple[T, str | None]:
        """What a `--model` value means: `NAME` -> (that entry, its default model); `NAME:MODEL`
        -> (that entry, MODEL); anything else (a hub id, a folder) -> (the `default` entry, model)."""
        if model in self._entries:
            entry = self._entries[model]
            return entry, getattr(entry, "default_model", None)
        name, colon, rest = model.partition(":")
        if colon and name in self._entries and not Path(model).expanduser().exists():
            entry = self._entries[name]
            return entry, rest or getattr(entry, "default_model", None)
        return self.get(default), model

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))
