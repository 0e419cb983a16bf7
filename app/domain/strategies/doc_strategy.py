"""A strategy document as a `Strategy`: the engine runs it like a hand-written one.

The parameters become a pydantic model built from their declarations (strict types, ranges,
choices, and the document's constraints), so a bot's or a backtest's values are validated
the same way as the built-in strategies' are. Compiling with values is cached per instance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from app.domain.candles import Candles
from app.domain.strategies.base import Strategy
from app.domain.strategies.doc_compile import Program, analyse, compile_document
from app.domain.strategies.doc_model import (
    Const,
    DocumentLimits,
    Op,
    Parameter,
    ParamRef,
    StrategyDocument,
)
from app.domain.strategies.exits import ExitRules

__all__ = ["DocumentStrategy", "document_key"]

_MAX_PROGRAMS = 64


def document_key(doc: StrategyDocument) -> str:
    """A short content hash: two documents with the same text share cached signals."""
    text = json.dumps(doc.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _field(spec: Parameter) -> tuple[Any, Any]:
    if spec.type == "choice":
        choices = tuple(spec.choices or ())
        return Literal[choices], Field(spec.default, description=spec.description)  # type: ignore[valid-type]
    kind: type = int if spec.type == "int" else float
    default = int(spec.default) if spec.type == "int" else float(spec.default)  # type: ignore[arg-type]
    low = int(spec.min) if spec.type == "int" else spec.min  # type: ignore[arg-type]
    high = int(spec.max) if spec.type == "int" else spec.max  # type: ignore[arg-type]
    return Annotated[kind, Field(ge=low, le=high)], Field(default, description=spec.description)


def _scalar(node: Any, values: Mapping[str, Any]) -> Any:
    """Value of a constraint rule over parameter values (operators on numbers only)."""
    if isinstance(node, float | int):
        return float(node)
    if isinstance(node, Const):
        return node.const
    if isinstance(node, ParamRef):
        return values[node.param]
    assert isinstance(node, Op)
    a = [_scalar(x, values) for x in node.args]
    ops = {
        "add": lambda: a[0] + a[1], "sub": lambda: a[0] - a[1], "mul": lambda: a[0] * a[1],
        "div": lambda: a[0] / a[1] if a[1] else float("nan"), "neg": lambda: -a[0],
        "abs": lambda: abs(a[0]), "max": lambda: max(a[0], a[1]), "min": lambda: min(a[0], a[1]),
        "gt": lambda: a[0] > a[1], "ge": lambda: a[0] >= a[1], "lt": lambda: a[0] < a[1],
        "le": lambda: a[0] <= a[1], "and": lambda: all(a), "or": lambda: any(a),
        "not": lambda: not a[0],
    }  # fmt: skip
    return ops[node.op]()


def _params_model(doc: StrategyDocument) -> type[BaseModel]:
    """The parameter model, shared by documents declaring the same parameters and constraints
    (building a pydantic model costs about a millisecond)."""
    declared = {
        "parameters": {k: v.model_dump(mode="json") for k, v in doc.parameters.items()},
        "constraints": [c.model_dump(mode="json") for c in doc.constraints],
    }
    return _cached_params_model(json.dumps(declared, sort_keys=True))


@lru_cache(maxsize=256)
def _cached_params_model(declared: str) -> type[BaseModel]:
    doc = StrategyDocument.model_validate(
        {"name": "params", "entry": {"op": "gt", "args": [1, 0]}, **json.loads(declared)}
    )
    constraints = doc.constraints

    def check(self: BaseModel) -> BaseModel:
        values = self.model_dump()
        for rule in constraints:
            if not _scalar(rule.rule, values):
                raise ValueError(rule.message)
        return self

    fields = {name: _field(spec) for name, spec in doc.parameters.items()}
    return create_model(  # type: ignore[call-overload, no-any-return]
        "DocumentParams",
        __config__=ConfigDict(extra="forbid", strict=True, frozen=True),
        __validators__={"_constraints": model_validator(mode="after")(check)},
        **fields,
    )


def _named_params(nodes: list[Any]) -> set[str]:
    """Every `{"param": name}` inside JSON-like nodes."""
    names: set[str] = set()
    while nodes:
        node = nodes.pop()
        if isinstance(node, dict):
            if isinstance(node.get("param"), str):
                names.add(node["param"])
            nodes.extend(node.values())
        elif isinstance(node, list):
            nodes.extend(node)
    return names


class DocumentStrategy(Strategy[BaseModel]):
    """A checked document bound to a base timeframe (needed by informative timeframes)."""

    def __init__(
        self,
        doc: StrategyDocument,
        *,
        timeframe: str | None = None,
        limits: DocumentLimits | None = None,
        name: str | None = None,
    ) -> None:
        self.limits = limits or DocumentLimits()
        analyse(doc, self.limits)
        self.doc = doc
        self.name = name or doc.name  # type: ignore[misc]
        self.description = doc.description  # type: ignore[misc]
        self.params_model = _params_model(doc)  # type: ignore[misc]
        self.timeframe = timeframe
        self._cache_key = f"doc:{document_key(doc)}:{timeframe or doc.timeframe or ''}"
        self._programs: dict[Any, Program] = {}
        self._signal_params = frozenset(_named_params(
            [doc.model_dump(mode="json", include={"indicators", "entry", "exit"})]
        ))  # fmt: skip
        self.program(self.default_params())  # the defaults must compile

    @property
    def cache_key(self) -> str:
        return self._cache_key

    def validate_params(self, data: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        params = super().validate_params(data)
        self.program(params)  # values TA-Lib refuses, or a lookback over the limit
        return params

    def program(self, params: BaseModel) -> Program:
        key = tuple(sorted(params.model_dump().items()))
        program = self._programs.get(key)
        if program is None:
            program = compile_document(
                self.doc, params.model_dump(), timeframe=self.timeframe, limits=self.limits
            )
            if len(self._programs) >= _MAX_PROGRAMS:
                self._programs.clear()
            self._programs[key] = program
        return program

    def signal_params(self) -> frozenset[str]:
        """Parameters named anywhere in the indicators, the entry or the exit condition;
        those named only by `exits` (stop-loss, trailing, holding time) leave signals alone."""
        return self._signal_params

    def warmup(self, params: BaseModel) -> int:
        return self.program(params).warmup

    def lookback(self, params: BaseModel) -> int:
        return self.program(params).lookback

    def exit_rules(self, params: BaseModel) -> ExitRules:
        return self.program(params).exits

    def entry_tags(self, candles: Candles, params: BaseModel) -> list[str | None] | None:
        return self.program(params).entry_tags(candles)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["document"] = self.doc.model_dump(mode="json", exclude_none=True)
        return out

    def _conditions(self, candles: Candles, params: BaseModel) -> tuple[np.ndarray, np.ndarray]:
        return self.program(params).conditions(candles)
