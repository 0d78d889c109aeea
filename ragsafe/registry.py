"""One registry type for graphs, metrics, retrievers, benchmark formats, benchmarks and corpora.

A registry knows the modules that fill it (``modules``) and imports them on its first lookup, then
loads the installed plugins (the ``ragsafe.plugins`` entry-point group, once per process), so a
registry holds the same names whatever module was imported first.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, Sequence, TypeVar

from ragsafe import plugins

T = TypeVar("T")

_ALL: list["Registry"] = []  # every registry made, for :func:`snapshot` and :func:`restore`


class UnknownName(KeyError):
    """A name that is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def _import_all(spec: str) -> None:
    """Import ``pkg.module``, or every submodule of ``pkg`` for ``pkg.*``."""
    if not spec.endswith(".*"):
        importlib.import_module(spec)
        return
    pkg = importlib.import_module(spec[:-2])
    for m in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{m.name}")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what an entry is, for messages ("graph", "metric", ...).
        modules: the modules that register the built-in entries, imported on the first lookup;
            ``"pkg.*"`` means every submodule of ``pkg``.

    Example:
        >>> graphs = Registry[object]("graph")
        >>> @graphs.register("closed_book")
        ... def build(): ...
        >>> graphs.names()
        ['closed_book']
    """

    def __init__(self, kind: str, *, modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self.modules = tuple(modules)
        self._items: dict[str, T] = {}
        self._populated = False
        _ALL.append(self)

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def _populate(self) -> None:
        if self._populated:
            return
        self._populated = True  # first: a populating module may look names up while it loads
        for spec in self.modules:
            _import_all(spec)
        plugins.load_installed()

    def get(self, name: str) -> T:
        self._populate()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownName(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def __contains__(self, name: object) -> bool:
        self._populate()
        return name in self._items

    def names(self) -> list[str]:
        self._populate()
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """The names in registration order (metrics: the order of table columns)."""
        self._populate()
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def snapshot() -> list[tuple["Registry", dict]]:
    """Every registry's entries now (each one populated first), for :func:`restore`.

    Tests use the pair so that what one test registers (a plugin's metric, a graph) never leaks
    into the next.
    """
    for r in list(_ALL):
        r._populate()
    return [(r, dict(r._items)) for r in _ALL]


def restore(snap: list[tuple["Registry", dict]]) -> None:
    """Put back the entries of :func:`snapshot` (a registry made since keeps its own)."""
    for r, items in snap:
        r._items.clear()
        r._items.update(items)
