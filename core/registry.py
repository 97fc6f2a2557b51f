"""A registry keyed by name: one per axis (exporter, runtime, server, launcher, load mode, stage).

Implementations register themselves with a decorator (`@REGISTRY.add` on a class registers it under
its own `name`, so the name is written once); callers look them up by name instead of writing
`if name == ...` chains. Lookup errors list what is registered.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, axis: str) -> None:
        self.axis = axis
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def add(self, item: T) -> T:
        """Class decorator: register a plugin under its own `name` attribute (written once, on the class)."""
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.axis} {item!r} has no `name` to register under")
        return self.register(name)(item)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.axis} {name!r}; registered: {known}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
