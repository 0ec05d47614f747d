"""A small registry of plug-ins keyed by id, filled by a decorator where the unit is defined."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from envsynth.errors import ConfigError, UnknownIdError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps ids to plug-ins; unknown ids raise `UnknownIdError` with close-match suggestions."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items and self._items[name] is not item:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownIdError(self.kind, name, self._items) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())
