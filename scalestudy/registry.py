"""Name → builder registries with lazy imports.

Entries are ``"package.module:attribute"`` strings, so listing or validating names
(``scalestudy validate``) never imports torch; the module is imported only when a
builder is actually used.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


class UnknownNameError(ValueError):
    """A spec names something that no registry knows."""


class Registry:
    """A small registry: ``name -> "module:attribute"`` resolved on first use."""

    def __init__(self, kind: str, entries: Mapping[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, str | Callable[..., Any]] = dict(entries or {})

    def register(self, name: str, target: str | Callable[..., Any]) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = target

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def check(self, name: str) -> str:
        """Return ``name`` if known, else raise a one-line error listing the known names."""
        if name not in self._entries:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            )
        return name

    def get(self, name: str) -> Callable[..., Any]:
        target = self._entries[self.check(name)]
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module_name), attribute)
            self._entries[name] = target
        return target
