"""The text forms of graph params: one grammar for the CLI, sweep files, nested graphs and records.

- A *variant* is ``NAME`` or ``NAME[key=value,key=value]``: ``--graph``, ``--grid``, the sweep
  file's ``graphs`` and ``self_consistency.over``, and every run's variant label.
- *Nested params* are the params of a graph inside another (``self_consistency``'s
  ``inner_params``): a mapping ``{"k": 3}`` or, the older text form, ``"k=3;query=question"``.
  ``;`` separates the pairs so that a nested form fits inside a variant's brackets:
  ``self_consistency[inner=standard_rag,inner_params=k=3;query=question]``.

Values stay text here until :func:`parse_params` types them with a params dataclass (a graph's or a retriever's).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, Mapping

from ragsafe.config import ConfigError

NAME = r"[A-Za-z_][\w\-]*"
_VARIANT = re.compile(rf"\s*({NAME})\s*(?:\[(.*)\])?\s*", flags=re.S)
VARIANT_EXAMPLE = "standard_rag[k=5,query=question]"
NESTED_EXAMPLE = "k=3;query=question"
RESERVED = ",;[]="
"""Characters a value cannot hold in the text forms (they delimit pairs, variants and nesting)."""


class ParamSyntaxError(ConfigError):
    """Text that does not follow the grammar: ``problem`` says what is wrong, ``fix`` how to write it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem, self.fix = problem, fix


def parse_pairs(text: str, sep: str = ",", *, example: str = VARIANT_EXAMPLE) -> dict[str, str]:
    """``"k=5, query=question"`` -> ``{"k": "5", "query": "question"}``; empty parts are skipped.

    A value may itself hold ``=`` (only the first one splits), so nested params fit in a variant.
    """
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(sep))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ParamSyntaxError(f"{part!r} in {text!r} is not key=value", f"write e.g. {example}")
        out[key.strip()] = value.strip()
    return out


def split_variant(text: str) -> tuple[str, str]:
    """``"standard_rag[k=5]"`` -> ``("standard_rag", "k=5")``; the bracket text is "" without brackets."""
    m = _VARIANT.fullmatch(text)
    if not m:
        raise ParamSyntaxError(f"{text!r} is not NAME or NAME[key=value,...]", f"write e.g. {VARIANT_EXAMPLE}")
    return m.group(1), m.group(2) or ""


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``"standard_rag[k=5,query=question]"`` -> ``("standard_rag", {"k": "5", "query": "question"})``.

    Example:
        >>> parse_variant("self_consistency[inner=standard_rag,inner_params=k=3;query=question]")
        ('self_consistency', {'inner': 'standard_rag', 'inner_params': 'k=3;query=question'})
    """
    name, inline = split_variant(text)
    return name, parse_pairs(inline)


def variant_name(label: str) -> str:
    """The graph name of a variant label (``"standard_rag[k=5]"`` -> ``"standard_rag"``), without parsing the rest."""
    return label.partition("[")[0]


def format_variant(name: str, params: Mapping[str, Any]) -> str:
    """The variant text, pairs in the order given: ``name`` alone when there are none."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in params.items())}]" if params else name


def format_value(value: Any) -> str:
    """A config value (from YAML, TOML or Python) in its text form: ``true``, ``none``, ``0.7``, ``k``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise ParamSyntaxError(f"expected a string, number or boolean, got {type(value).__name__}", "write a single value")


def parse_nested(value: str | Mapping[str, Any] | None) -> dict[str, str]:
    """Nested params as a dict of text values, from a mapping or the ``"k=3;query=question"`` form."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): format_value(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise ParamSyntaxError(f"nested params {value!r} are neither text nor a mapping",
                               f"write {{k: 3}} or {NESTED_EXAMPLE!r}")
    return parse_pairs(value, ";", example=NESTED_EXAMPLE)


def format_nested(params: Mapping[str, Any]) -> str:
    """The text form of nested params: ``{"k": 3, "query": "question"}`` -> ``"k=3;query=question"``."""
    pairs = parse_nested(params)
    for k, v in pairs.items():
        if any(ch in RESERVED for ch in k + v):
            raise ParamSyntaxError(f"nested param {k}={v!r} holds one of {RESERVED}",
                                   "choose a value without them (they separate pairs and variants)")
    return ";".join(f"{k}={v}" for k, v in pairs.items())


def nested_text(value: str | Mapping[str, Any] | None) -> str:
    """The form a params dataclass stores (and a run's config hash covers): text kept as written
    once it parses, a mapping written out by :func:`format_nested`."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return format_nested(value)
    parse_nested(value)
    return value


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={value!r}: expected {typ}")
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r}: expected true/false")
    if typ in (int, float, str):
        if isinstance(value, (dict, list, tuple, set)):  # str({...}) would pass as a bogus string
            raise ConfigError(f"{key}={value!r}: expected {typ.__name__}")
        try:
            if typ is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r}: expected {typ.__name__}") from None
    return value


def parse_params(cls: type, overrides: dict[str, Any], where: str = "") -> Any:
    """Build ``cls`` from string/typed overrides; unknown keys and bad values name the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = set(overrides) - set(fields)
    if unknown:
        valid = ", ".join(sorted(fields)) or "(none)"
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)} for {where or cls.__name__}; valid: {valid}")
    kw = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in overrides.items()}
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
