"""Templates in pattern steps: `{{ steps.trend.signal }}`, `{{ params.buy_above }}`, with an
explicit default for a value that may be missing: `{{ steps.momentum.rsi | default(50) }}`.

A string that is exactly one template yields the referenced value with its type (a number
stays a number); a template inside longer text is interpolated as text. A value is *missing*
when a key does not exist, or is null or NaN (an indicator still warming up); a missing value
without a default is an error of that ticker's analysis, never a silent zero.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}")
_EXPR = re.compile(
    r"^\s*(?P<ref>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+)\s*"
    r"(?:\|\s*default\s*\((?P<default>.*)\)\s*)?$"
)
ROOTS = ("steps", "params")
_NO_DEFAULT = object()


class TemplateError(ValueError):
    """A template that cannot be parsed (at load time) or resolved (at run time); `path` is
    where in the document it sits, when known."""

    path: tuple[Any, ...] | None = None


class MissingValue(TemplateError):
    pass


@dataclass(frozen=True)
class Ref:
    text: str
    path: tuple[str, ...]  # ("steps", "trend", "signal")
    default: Any = _NO_DEFAULT

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def resolve(self, scope: dict[str, Any]) -> Any:
        value: Any = scope
        for key in self.path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                value = None
                break
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if self.has_default:
                return self.default
            raise MissingValue(
                f"{'.'.join(self.path)} is missing and {{{{ {self.text} }}}} has no default"
            )
        return value


@dataclass(frozen=True)
class Expr:
    """A compiled template string: one whole reference, or text with references in it."""

    source: str
    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    def resolve(self, scope: dict[str, Any]) -> Any:
        if len(self.parts) == 1 and isinstance(self.parts[0], Ref):
            return self.parts[0].resolve(scope)
        out = []
        for part in self.parts:
            value = part.resolve(scope) if isinstance(part, Ref) else part
            out.append(_text(value))
        return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_ref(expr: str) -> Ref:
    match = _EXPR.match(expr)
    if not match:
        raise TemplateError(
            f"cannot read template {{{{{expr}}}}}: expected steps.<id>.<output> or "
            "params.<name>, optionally followed by | default(<value>)"
        )
    path = tuple(match.group("ref").split("."))
    if path[0] not in ROOTS:
        raise TemplateError(f"template {{{{{expr}}}}} must start with steps. or params.")
    raw_default = match.group("default")
    if raw_default is None:
        return Ref(match.group("ref"), path)
    try:
        default = yaml.safe_load(raw_default) if raw_default.strip() else None
    except yaml.YAMLError:
        raise TemplateError(f"default({raw_default}) is not a plain value") from None
    if isinstance(default, (dict, list)) and default:
        raise TemplateError(f"default({raw_default}) must be a plain value")
    return Ref(expr.strip(), path, default)


def compile_string(text: str) -> str | Expr:
    """A plain string stays as is; a string with templates becomes an `Expr`."""
    if "{{" not in text and "}}" not in text:
        return text
    parts: list[str | Ref] = []
    pos = 0
    for match in _TEMPLATE.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        parts.append(parse_ref(match.group(1)))
        pos = match.end()
    rest = text[pos:]
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"unbalanced braces in {text!r}")
    if rest:
        parts.append(rest)
    stripped = [p for p in parts if not (isinstance(p, str) and not p.strip())]
    if len(stripped) == 1 and isinstance(stripped[0], Ref):
        parts = stripped
    return Expr(text, tuple(parts))


def compile_value(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, list[tuple[tuple, Ref]]]:
    """Compile every string in a nested structure; returns it and its refs with their paths."""
    refs: list[tuple[tuple, Ref]] = []

    def walk(v: Any, p: tuple[Any, ...]) -> Any:
        if isinstance(v, str):
            try:
                compiled = compile_string(v)
            except TemplateError as exc:
                exc.path = p
                raise
            if isinstance(compiled, Expr):
                refs.extend((p, r) for r in compiled.refs)
            return compiled
        if isinstance(v, dict):
            return {k: walk(x, (*p, k)) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x, (*p, i)) for i, x in enumerate(v)]
        return v

    return walk(value, path), refs


def resolve(value: Any, scope: dict[str, Any]) -> Any:
    """Replace every compiled template in a nested structure by its value in `scope`."""
    if isinstance(value, Expr):
        return value.resolve(scope)
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value
