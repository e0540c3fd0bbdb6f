"""A table of specs by name, filled by decorators at import: the architectures' (`model.registry`) and the
backbones' (`model.backbone_registry`). One lookup, one error that lists the choices, one description rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

Spec = TypeVar("Spec")


class Named(Generic[Spec]):
    """Name → spec; `kind` names the table in the one-line error for an unknown name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._specs: dict[str, Spec] = {}

    def filing(self, name: str | None, make: Callable[[str, Callable], Spec]) -> Callable:
        """A decorator filing `make(name, fn)` under `name` (None: the function's own name)."""

        def deco(fn: Callable) -> Callable:
            key = name or fn.__name__
            self._specs[key] = make(key, fn)
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> Spec:
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None


def description(fn: Callable) -> str:
    """What a table says of a constructor: the first line of its docstring."""
    doc = (fn.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
