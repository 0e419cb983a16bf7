"""YAML that remembers where each value came from, so a bad pattern file is reported by line.

`load_with_lines(text)` composes the document with PyYAML's *safe* loader (no arbitrary
objects), then builds plain Python data while recording the 1-based line of every mapping key
and sequence item under its path (`("steps", 2, "with", "fast")`). `LineMap.line_for(path)`
answers the nearest recorded line for any path, e.g. a pydantic error location.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 40

Path = tuple[Any, ...]


class YamlProblem(Exception):
    """The text is not acceptable YAML; `line` is 1-based (None when unknown)."""

    def __init__(self, reason: str, line: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass
class LineMap:
    lines: dict[Path, int] = field(default_factory=dict)

    def line_for(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def load_with_lines(text: str) -> tuple[Any, LineMap]:
    loader = yaml.SafeLoader(text)
    lines = LineMap()
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
            raise YamlProblem(reason or "invalid YAML", mark.line + 1 if mark else None) from None
        except yaml.YAMLError as exc:
            raise YamlProblem(str(exc), None) from None
        if node is None:
            return None, lines

        def convert(node: Node, path: Path, depth: int) -> Any:
            if depth > MAX_DEPTH:
                raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", _line(node))
            lines.lines.setdefault(path, _line(node))
            if isinstance(node, MappingNode):
                loader.flatten_mapping(node)  # resolves `<<` merge keys
                out: dict[Any, Any] = {}
                for key_node, value_node in node.value:
                    if not isinstance(key_node, ScalarNode):
                        raise YamlProblem("mapping keys must be plain values", _line(key_node))
                    key = loader.construct_object(key_node, deep=True)
                    if key in out:
                        raise YamlProblem(f"duplicate key {key!r}", _line(key_node))
                    lines.lines[(*path, key)] = _line(key_node)
                    out[key] = convert(value_node, (*path, key), depth + 1)
                return out
            if isinstance(node, SequenceNode):
                return [convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            try:
                return loader.construct_object(node, deep=True)
            except yaml.YAMLError as exc:
                raise YamlProblem(str(exc).splitlines()[0], _line(node)) from None

        return convert(node, (), 0), lines
    finally:
        loader.dispose()
