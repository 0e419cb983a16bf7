"""Strategy documents: the JSON a user writes, parsed by pydantic into plain models.

A document declares parameters, named expressions (indicators), entry/exit conditions and
exits (stop-loss, trailing stop, minimal ROI, maximum holding time). Nothing in it is ever
executed as code: `doc_compile` walks the parsed tree and calls our own functions.

Expressions are JSON values:

* a number (`30`), `{"const": 30}`, `{"param": "period"}` (a declared parameter);
* `{"series": "close"}` (open, high, low, close, volume);
* `{"ref": "name"}` (a named entry of `indicators`);
* `{"ta": "RSI", "inputs": {"real": ...}, "params": {"timeperiod": 14}, "output": "real"}`
  (any TA-Lib function; inputs default to the candles' prices);
* `{"op": "crosses_above", "args": [a, b], "n": 3, "tol": "price"}` (operators, see `OPS`);
* `{"informative": "1h", "expr": ...}` (the expression on higher-timeframe candles, seen by a
  candle only once the higher candle has closed).

Rejections are `ValidationFailed` whose details carry the JSON path of the offending node
(`$.entry.args[1].ta`) and what is allowed there; the pre-check bounds size and depth before
pydantic sees the document, so no input can exhaust the parser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from app.errors import ValidationFailed

__all__ = [
    "ARITHMETIC",
    "BOOLEAN",
    "COMPARISONS",
    "CROSSES",
    "DocumentLimits",
    "Exits",
    "Informative",
    "Node",
    "OPS",
    "Op",
    "Parameter",
    "StrategyDocument",
    "TIMEFRAME_SECONDS",
    "TaggedEntry",
    "TaCall",
    "Trailing",
    "document_error",
    "json_path",
    "parse_document",
    "parse_document_text",
]

TIMEFRAME_SECONDS: dict[str, int] = {
    "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200,
    "4h": 14400, "6h": 21600, "12h": 43200, "1d": 86400,
}  # fmt: skip

ARITHMETIC = {"add": 2, "sub": 2, "mul": 2, "div": 2, "neg": 1, "abs": 1, "max": 2, "min": 2}
COMPARISONS = {"gt": 2, "ge": 2, "lt": 2, "le": 2}
CROSSES = {"crosses_above": 2, "crosses_below": 2}
BOOLEAN = {"and": None, "or": None, "not": 1}
WINDOWED = {"shift": 1, "rolling_max": 1, "rolling_min": 1, "rolling_mean": 1}
OPS: dict[str, int | None] = {**ARITHMETIC, **COMPARISONS, **CROSSES, **BOOLEAN, **WINDOWED}

NAME_PATTERN = r"^[a-z_][a-z0-9_]{0,39}$"
_TAG_PREFIX = "node:"


@dataclass(frozen=True)
class DocumentLimits:
    """What one document may cost; the services build it from the settings."""

    max_bytes: int = 64_000
    max_depth: int = 40
    max_nodes: int = 400
    max_indicators: int = 40
    max_lookback: int = 5_000
    max_eval_ms: int = 2_000


class _Strict(BaseModel):
    # validators are built on first use (the recursive node types resolve then): a process
    # that never reads a document, such as a backtest of a built-in, does not pay for them
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


Number = Annotated[float, Field(allow_inf_nan=False)]


class Const(_Strict):
    const: Number


class ParamRef(_Strict):
    param: str = Field(pattern=NAME_PATTERN)


class SeriesRef(_Strict):
    series: Literal["open", "high", "low", "close", "volume"]


class Ref(_Strict):
    ref: str = Field(pattern=NAME_PATTERN)


def _tagged(kind: Any, key: str) -> Any:
    return Annotated[kind, Tag(f"{_TAG_PREFIX}{key}")]


Scalar = Annotated[
    _tagged(Number, "number") | _tagged(Const, "const") | _tagged(ParamRef, "param"),
    Discriminator(lambda v: _tag_of(v, ("const", "param"))),
]


class TaCall(_Strict):
    ta: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,19}$", description="TA-Lib function name")
    inputs: dict[str, Node] = Field(default_factory=dict, max_length=4)
    params: dict[str, Scalar] = Field(default_factory=dict, max_length=8)
    output: str | None = Field(None, max_length=40)


class Op(_Strict):
    op: Literal[tuple(OPS)]  # type: ignore[valid-type]
    args: list[Node] = Field(min_length=1, max_length=16)
    n: Scalar | None = Field(None, description="shift: candles back; rolling_*: window")
    tol: Literal["price"] | Scalar | None = Field(
        None, description="crosses/comparisons: band within which both sides count as equal"
    )

    @model_validator(mode="after")
    def _shape(self) -> Op:
        want = OPS[self.op]
        if want is not None and len(self.args) != want:
            raise ValueError(f"{self.op} takes {want} argument(s), got {len(self.args)}")
        if want is None and len(self.args) < 2:
            raise ValueError(f"{self.op} takes at least 2 arguments")
        if (self.op in WINDOWED) != (self.n is not None):
            raise ValueError(
                f"{self.op}: 'n' is required for shift and rolling_* and allowed nowhere else"
            )
        if self.tol is not None and self.op not in CROSSES and self.op not in COMPARISONS:
            raise ValueError(f"{self.op}: 'tol' is allowed on comparisons and crosses only")
        return self


class Informative(_Strict):
    informative: str = Field(description="higher timeframe, e.g. 1h")
    expr: Node

    @field_validator("informative")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TIMEFRAME_SECONDS:
            raise ValueError(
                f"unknown timeframe {value!r}; allowed: {', '.join(TIMEFRAME_SECONDS)}"
            )
        return value


_NODE_KEYS = ("const", "param", "series", "ref", "ta", "op", "informative")


def _tag_of(value: Any, keys: Iterable[str]) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return f"{_TAG_PREFIX}number"
    if isinstance(value, Mapping):
        for key in keys:
            if key in value:
                return f"{_TAG_PREFIX}{key}"
    if isinstance(value, BaseModel):
        for key in keys:
            if key in type(value).model_fields:
                return f"{_TAG_PREFIX}{key}"
    return None


Node = Annotated[
    _tagged(Number, "number")
    | _tagged(Const, "const")
    | _tagged(ParamRef, "param")
    | _tagged(SeriesRef, "series")
    | _tagged(Ref, "ref")
    | _tagged(TaCall, "ta")
    | _tagged(Op, "op")
    | _tagged(Informative, "informative"),
    Discriminator(
        lambda v: _tag_of(v, _NODE_KEYS),
        custom_error_type="invalid_node",
        custom_error_message=(
            "expected a number or an object with one of: " + ", ".join(_NODE_KEYS)
        ),
    ),
]


class Parameter(_Strict):
    """A value a bot or backtest may set: int/float within [min, max], or one of `choices`."""

    type: Literal["int", "float", "choice"]
    default: int | float | str
    min: Number | None = None
    max: Number | None = None
    choices: list[int | float | str] | None = Field(None, min_length=1, max_length=50)
    description: str = Field("", max_length=500)

    @model_validator(mode="after")
    def _consistent(self) -> Parameter:
        if self.type == "choice":
            if not self.choices or self.min is not None or self.max is not None:
                raise ValueError("a choice parameter has 'choices' and no min/max")
            if self.default not in self.choices:
                raise ValueError("default must be one of the choices")
            return self
        if self.choices is not None:
            raise ValueError(f"an {self.type} parameter has min/max, not choices")
        if self.min is None or self.max is None:
            raise ValueError(f"an {self.type} parameter needs both min and max")
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        if self.type == "int":
            for label, v in (("default", self.default), ("min", self.min), ("max", self.max)):
                if isinstance(v, str) or float(v) != int(v):
                    raise ValueError(f"{label} of an int parameter must be a whole number")
        elif isinstance(self.default, str):
            raise ValueError("default of a float parameter must be a number")
        if not self.min <= float(self.default) <= self.max:  # type: ignore[arg-type]
            raise ValueError("default must lie within [min, max]")
        return self


class Constraint(_Strict):
    """A rule between parameter values (`fast < slow`) checked when values are chosen."""

    rule: Node
    message: str = Field(min_length=1, max_length=200)


class Trailing(_Strict):
    """freqtrade's trailing stop: once the profit passes `offset`, the stop trails the highest
    price by `positive`; before that (unless `only_offset_is_reached`) it trails by the
    stop-loss distance."""

    positive: Scalar | None = None
    offset: Scalar = 0.0
    only_offset_is_reached: bool = False


class Exits(_Strict):
    stoploss: Scalar | None = Field(None, description="ratio below entry, e.g. -0.05")
    trailing: Trailing | None = None
    minimal_roi: dict[str, Number] = Field(
        default_factory=dict, max_length=50, description="minutes since entry -> profit ratio"
    )
    max_hold_minutes: Scalar | None = None
    use_exit_signal: bool = True

    @field_validator("minimal_roi")
    @classmethod
    def _minutes(cls, value: dict[str, float]) -> dict[str, float]:
        for key, ratio in value.items():
            if not key.isdigit() or len(key) > 7:
                raise ValueError(f'minimal_roi key {key!r} must be whole minutes (e.g. "30")')
            if ratio < -1:
                raise ValueError("a minimal_roi ratio must be at least -1")
        return value


TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,63}$"
MAX_TAGGED_ENTRIES = 20


class TaggedEntry(_Strict):
    """One named way in: `when` is the condition, `tag` what its trades are reported under."""

    tag: str = Field(pattern=TAG_PATTERN, description="letters, digits, _ . : / - and spaces")
    when: Node


Entry = Annotated[
    _tagged(Node, "condition")
    | _tagged(list[TaggedEntry], "tagged"),
    Discriminator(lambda v: f"{_TAG_PREFIX}tagged" if isinstance(v, list | tuple)
                  else f"{_TAG_PREFIX}condition"),  # fmt: skip
]


class StrategyDocument(_Strict):
    """A whole strategy; see the module docstring for the expression language."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=2000)
    timeframe: str | None = Field(None, description="the timeframe it was written for")
    parameters: dict[str, Parameter] = Field(default_factory=dict, max_length=30)
    constraints: list[Constraint] = Field(default_factory=list, max_length=20)
    indicators: dict[str, Node] = Field(default_factory=dict, max_length=100)
    entry: Entry = Field(description="a condition, or a list of {tag, when}: the first true "
                         "one in list order enters and names the trade")
    exit: Node | None = None
    exits: Exits = Field(default_factory=Exits)

    @field_validator("parameters", "indicators")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not _valid_name(key):
                raise ValueError(f"name {key!r} must match {NAME_PATTERN}")
        return value

    @field_validator("timeframe")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in TIMEFRAME_SECONDS:
            raise ValueError(
                f"unknown timeframe {value!r}; allowed: {', '.join(TIMEFRAME_SECONDS)}"
            )
        return value

    @field_validator("entry")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not 1 <= len(value) <= MAX_TAGGED_ENTRIES:
                raise ValueError(f"a list of entries holds 1 to {MAX_TAGGED_ENTRIES} "
                                 "{tag, when} objects")  # fmt: skip
            tags = [e.tag for e in value]
            repeated = sorted({t for t in tags if tags.count(t) > 1})
            if repeated:
                raise ValueError(f"entry tags must differ; repeated: {', '.join(repeated)}")
        return value

    def entries(self) -> list[tuple[str | None, Any, tuple[Any, ...]]]:
        """(tag, condition, location) of each entry, in order; one untagged for a plain
        condition."""
        if isinstance(self.entry, list):
            return [(e.tag, e.when, ("entry", k, "when")) for k, e in enumerate(self.entry)]
        return [(None, self.entry, ("entry",))]

    @property
    def tagged(self) -> bool:
        return isinstance(self.entry, list)


def _valid_name(key: str) -> bool:
    return (
        0 < len(key) <= 40
        and (key[0].isascii() and (key[0].islower() or key[0] == "_"))
        and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in key)
    )




# -- errors and parsing ----------------------------------------------------------------------


def json_path(loc: Iterable[Any]) -> str:
    """`$.entry.args[1].ta` for ("entry", "args", 1, "ta")."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def document_error(
    errors: list[tuple[tuple[Any, ...], str]], *, prefix: tuple[Any, ...] = ()
) -> ValidationFailed:
    """One 422 naming every offending node by its JSON path (inside the document)."""
    details = [{"loc": [*prefix, *loc], "path": json_path(loc), "msg": msg} for loc, msg in errors]
    first_loc, first_msg = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(
        f"invalid strategy document at {json_path(first_loc)}: {first_msg}{more}",
        code="invalid_strategy_document",
        details=details,
    )


def _pre_check(data: Any, limits: DocumentLimits) -> list[tuple[tuple[Any, ...], str]]:
    """Size and depth before pydantic: deep nesting must be refused, never recursed into."""
    if not isinstance(data, Mapping):
        return [((), "a strategy document is a JSON object")]
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    count = 0
    while stack:
        value, loc = stack.pop()
        count += 1
        if len(loc) > limits.max_depth:
            return [(loc, f"nested deeper than {limits.max_depth} levels")]
        if count > limits.max_nodes * 8:
            return [(loc, f"too many values (limit {limits.max_nodes * 8})")]
        if isinstance(value, Mapping):
            for key, child in value.items():
                if not isinstance(key, str):
                    return [(loc, "object keys must be strings")]
                stack.append((child, (*loc, key)))
        elif isinstance(value, list | tuple):
            stack.extend((child, (*loc, i)) for i, child in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            return [(loc, "numbers must be finite")]
        elif value is not None and not isinstance(value, str | int | float | bool):
            return [(loc, f"{type(value).__name__} is not a JSON value")]
    return []


def _clean_loc(loc: Iterable[Any]) -> tuple[Any, ...]:
    """A pydantic location without its union tags (`node:op`, `str`, ...)."""
    out: list[Any] = []
    for part in loc:
        if isinstance(part, str) and (
            part.startswith(_TAG_PREFIX)
            or part in {"str", "int", "float", "literal['price']", "function-after[_shape()]"}
            or part.startswith(("function-", "literal["))
        ):
            continue
        out.append(part)
    return tuple(out)


def parse_document(data: Any, limits: DocumentLimits | None = None) -> StrategyDocument:
    """The parsed document, or ValidationFailed naming each offending JSON path."""
    limits = limits or DocumentLimits()
    if isinstance(data, StrategyDocument):
        return data
    problems = _pre_check(data, limits)
    if not problems:
        size = len(json.dumps(data, separators=(",", ":"), default=str))
        if size > limits.max_bytes:
            problems = [((), f"document is {size} bytes; the limit is {limits.max_bytes}")]
    if problems:
        raise document_error(problems)
    try:
        return StrategyDocument.model_validate(data)
    except ValidationError as exc:
        errors: list[tuple[tuple[Any, ...], str]] = []
        seen: set[tuple[Any, ...]] = set()
        for err in exc.errors(include_url=False):
            loc = _clean_loc(err["loc"])
            if loc in seen:
                continue
            seen.add(loc)
            errors.append((loc, err["msg"]))
        raise document_error(errors[:50]) from None


def parse_document_text(
    text: str | bytes, limits: DocumentLimits | None = None, *, yaml_ok: bool = True
) -> StrategyDocument:
    """A document from JSON text, or YAML text (safe loader: plain data only)."""
    limits = limits or DocumentLimits()
    if len(text) > limits.max_bytes:
        raise document_error([((), f"document is {len(text)} bytes; the limit is "
                                    f"{limits.max_bytes}")])  # fmt: skip
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as json_exc:
        if not yaml_ok:
            raise document_error([((), f"not JSON: {json_exc}")]) from None
        data = _yaml(text)
    return parse_document(data, limits)


def _yaml(text: str | bytes) -> Any:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise document_error([((), f"neither JSON nor YAML: {exc}")]) from None
