"""One plugin path for every registry: a plugin is Python code that registers entries when imported.

A plugin may register graphs (``@graph``), metrics (``@metric``), retrievers (``@retriever``),
benchmark formats, benchmarks and corpora. Two ways in:

* ``--plugin FILE_OR_MODULE`` (repeatable) on ``run``, ``sweep``, ``score``, ``report``,
  ``validate`` and ``graphs``: a path ending in ``.py`` is imported from that file, anything else
  as a module name from ``sys.path``. :func:`load_plugin` does it from Python.
* Installed packages declare an entry point in the group ``ragsafe.plugins``; every registry loads
  them once, on its first lookup. An entry point names a module (importing it registers) or a
  function of no arguments (called once)::

      [project.entry-points."ragsafe.plugins"]
      my_graphs = "my_package.graphs"

Errors name the plugin and what failed (:class:`PluginError`, a :class:`~ragsafe.config.ConfigError`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
import types
from pathlib import Path
from typing import Iterable

from ragsafe.config import ConfigError

GROUP = "ragsafe.plugins"


class PluginError(ConfigError):
    """A plugin could not be found or failed while loading; the message names it and the cause."""


def _where(exc: BaseException, file: str | None) -> str:
    """``file:line`` of the deepest frame of ``exc`` inside the plugin's own file, if any."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if file and Path(f.filename).resolve() == Path(file).resolve()]
    f = (mine or frames or [None])[-1]
    return f" at {f.filename}:{f.lineno}" if f else ""


def _file_module(path: Path) -> types.ModuleType:
    name = "ragsafe_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:  # loaded already: its entries are registered
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin {path}: not importable as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)  # a fixed file loads again in the same process
        raise
    return module


def load_plugin(spec: str, *, flag: str = "--plugin") -> types.ModuleType:
    """Import one plugin: a ``.py`` file by path, otherwise a module by name. Loading twice is a no-op.

    Raises:
        PluginError: no such file or module, or the plugin raised while loading (the message
            names the plugin, the exception and the line).

    Example:
        >>> load_plugin("examples/plugins/my_graph.py")   # doctest: +SKIP
    """
    text = str(spec).strip()
    path = Path(text)
    is_file = text.endswith(".py") or path.is_file() or "/" in text or "\\" in text
    try:
        if is_file:
            if not path.is_file():
                raise PluginError(f"{flag} {text}: no such file (give a path to a .py file, or a module name)")
            return _file_module(path)
        return importlib.import_module(text)
    except PluginError:
        raise
    except ModuleNotFoundError as e:
        if not is_file and (e.name == text or text.startswith(f"{e.name}.")):
            raise PluginError(f"{flag} {text}: no module named {e.name!r} on sys.path "
                              f"(give a path to a .py file, or install the package)") from None
        raise PluginError(f"{flag} {text}: failed while loading: {type(e).__name__}: {e}"
                          f"{_where(e, text if is_file else None)}") from None
    except Exception as e:
        raise PluginError(f"{flag} {text}: failed while loading: {type(e).__name__}: {e}"
                          f"{_where(e, text if is_file else None)}") from None


def load_plugins(specs: Iterable[str], *, flag: str = "--plugin") -> None:
    """:func:`load_plugin` for each of ``specs``, in order."""
    for s in specs or ():
        load_plugin(s, flag=flag)


_installed: dict[str, object] = {"state": "unloaded", "error": None}


def load_installed() -> None:
    """Load the ``ragsafe.plugins`` entry points of installed packages (once per process).

    A failing entry point raises :class:`PluginError` naming the package and the entry point; it is
    raised again on every later call, so a broken plugin is never half-ignored.
    """
    if _installed["state"] == "failed":
        raise _installed["error"]  # type: ignore[misc]
    if _installed["state"] != "unloaded":
        return
    _installed["state"] = "loading"  # a plugin that looks names up while it loads does not recurse
    for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        try:
            obj = ep.load()
            if callable(obj) and not inspect.isclass(obj) and not isinstance(obj, types.ModuleType):
                obj()
        except Exception as e:
            err = PluginError(f"installed plugin {ep.name} = {ep.value!r} (package {dist}, entry-point group "
                              f"{GROUP}) failed while loading: {type(e).__name__}: {e}; fix or uninstall it")
            _installed.update(state="failed", error=err)
            raise err from None
    _installed["state"] = "loaded"


def installed() -> list[str]:
    """``name = value`` of every entry point in the ``ragsafe.plugins`` group (for messages and tests)."""
    return sorted(f"{ep.name} = {ep.value}" for ep in importlib.metadata.entry_points(group=GROUP))
