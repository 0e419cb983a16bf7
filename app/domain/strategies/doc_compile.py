"""Checking a strategy document and compiling it, with parameter values, into signal arrays.

Two steps, both pure:

* `analyse(doc)` checks what does not depend on parameter values: every reference resolves,
  no cycles, TA-Lib functions, inputs, parameters and outputs exist, numbers and conditions
  are where each belongs, informative timeframes are not nested, and the size limits hold.
* `compile_document(doc, values, timeframe)` resolves parameter values and checks what does:
  TA-Lib accepts the values (its lookback is not -1), shifts are >= 0, the informative
  timeframe is a multiple of the base one, the warm-up is within the limit. The `Program`
  evaluates the conditions over candles with numpy, one array per node.

Conditions are float arrays (1.0 true, 0.0 false, NaN unknown): an unknown value stays
unknown through `not`, `and` and `or`, so an indicator still warming up never turns into a
signal. Value i of every node depends on candles 0..i only (TA-Lib computes forward; shifts
look back; a higher-timeframe candle becomes visible once it has closed), which is what
makes a signal on any prefix equal to the one on the whole series.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.domain.candles import Candles
from app.domain.strategies import talib_catalog as ta
from app.domain.strategies.base import price_tolerance
from app.domain.strategies.doc_model import (
    ARITHMETIC,
    BOOLEAN,
    COMPARISONS,
    CROSSES,
    TIMEFRAME_SECONDS,
    Const,
    DocumentLimits,
    Informative,
    Op,
    ParamRef,
    Ref,
    SeriesRef,
    StrategyDocument,
    TaCall,
    document_error,
)
from app.domain.strategies.exits import ExitRules
from app.errors import ValidationFailed

__all__ = ["Analysis", "Program", "analyse", "compile_document"]

NUM, BOOL = "number", "condition"
Loc = tuple[Any, ...]
# Recursive smoothing forgets its seed by ~(1 - 1/period) per candle: 10 periods leave < 0.01 %.
CONVERGENCE_PERIODS = 10


# -- static analysis ------------------------------------------------------------------------


@dataclass
class Analysis:
    """What `analyse` learned: the type of each named indicator, and the counts."""

    ref_types: dict[str, str] = field(default_factory=dict)
    ref_informative: dict[str, bool] = field(default_factory=dict)
    nodes: int = 0
    ta_calls: int = 0


class _Checker:
    def __init__(self, doc: StrategyDocument, limits: DocumentLimits) -> None:
        self.doc = doc
        self.limits = limits
        self.errors: list[tuple[Loc, str]] = []
        self.out = Analysis()
        self.visiting: list[str] = []

    def fail(self, loc: Loc, msg: str) -> None:
        self.errors.append((loc, msg))

    # scalars: numbers fixed once parameter values are chosen
    def scalar(self, node: Any, loc: Loc, *, integer: bool) -> None:
        if isinstance(node, float | int):
            value = float(node)
        elif isinstance(node, Const):
            value = node.const
        elif isinstance(node, ParamRef):
            spec = self.doc.parameters.get(node.param)
            if spec is None:
                self.fail((*loc, "param"), self._unknown_param(node.param))
            elif spec.type == "choice" and any(isinstance(c, str) for c in spec.choices or ()):
                self.fail((*loc, "param"), f"parameter {node.param!r} has text choices; "
                                           "a number is needed here")  # fmt: skip
            elif integer and (
                spec.type == "float"
                or (spec.type == "choice" and any(float(c) != int(c) for c in spec.choices or ()))
            ):
                self.fail((*loc, "param"), f"parameter {node.param!r} is not an int; "
                                           "a whole number is needed here")  # fmt: skip
            return
        else:
            self.fail(loc, 'a number, {"const": ...} or {"param": ...} is needed here')
            return
        if integer and value != int(value):
            self.fail(loc, "a whole number is needed here")

    def _unknown_param(self, name: str) -> str:
        known = ", ".join(sorted(self.doc.parameters)) or "none declared"
        return f"unknown parameter {name!r}; declared: {known}"

    def node(self, node: Any, loc: Loc, *, informative: bool, scalar_only: bool = False) -> str:
        self.out.nodes += 1
        if self.out.nodes == self.limits.max_nodes + 1:
            self.fail(loc, f"more than {self.limits.max_nodes} expression nodes")
        if isinstance(node, float | int | Const):
            return NUM
        if isinstance(node, ParamRef):
            self.scalar(node, loc, integer=False)
            return NUM
        if scalar_only and not isinstance(node, Op):
            self.fail(loc, "only numbers, parameters and operators on them are allowed here")
            return NUM
        if isinstance(node, SeriesRef):
            return NUM
        if isinstance(node, Ref):
            return self.ref(node.ref, loc, informative=informative)
        if isinstance(node, TaCall):
            return self.ta_call(node, loc, informative=informative)
        if isinstance(node, Informative):
            if informative:
                self.fail((*loc, "informative"), "informative timeframes cannot be nested")
            return self.node(node.expr, (*loc, "expr"), informative=True)
        assert isinstance(node, Op)
        return self.op(node, loc, informative=informative, scalar_only=scalar_only)

    def ref(self, name: str, loc: Loc, *, informative: bool) -> str:
        if name not in self.doc.indicators:
            known = ", ".join(sorted(self.doc.indicators)) or "none declared"
            self.fail((*loc, "ref"), f"unknown indicator {name!r}; declared: {known}")
            return NUM
        if name in self.visiting:
            cycle = " -> ".join([*self.visiting[self.visiting.index(name) :], name])
            self.fail((*loc, "ref"), f"indicators refer to each other in a cycle: {cycle}")
            return NUM
        if name not in self.out.ref_types:
            self.definition(name)
        if informative and self.out.ref_informative.get(name):
            self.fail((*loc, "ref"), f"indicator {name!r} uses an informative timeframe; "
                                     "informative timeframes cannot be nested")  # fmt: skip
        return self.out.ref_types.get(name, NUM)

    def definition(self, name: str) -> None:
        self.visiting.append(name)
        before = len(self.errors)
        has_informative = _contains_informative(self.doc.indicators[name], self.doc, set())
        self.out.ref_informative[name] = has_informative
        kind = self.node(self.doc.indicators[name], ("indicators", name), informative=False)
        self.visiting.pop()
        self.out.ref_types[name] = kind if len(self.errors) == before else NUM

    def ta_call(self, node: TaCall, loc: Loc, *, informative: bool) -> str:
        self.out.ta_calls += 1
        if self.out.ta_calls == self.limits.max_indicators + 1:
            self.fail(loc, f"more than {self.limits.max_indicators} TA-Lib calls")
        info = ta.function_info(node.ta)
        if info is None:
            why = ta.EXCLUDED.get(node.ta)
            self.fail((*loc, "ta"), f"{node.ta} is not allowed: {why}" if why else
                      f"unknown TA-Lib function {node.ta!r}; allowed: the TA-Lib function "
                      "names (GET /api/strategies/functions lists them)")  # fmt: skip
            return NUM
        free = [n for n, _, overridable in info.inputs if overridable]
        for key, child in node.inputs.items():
            if key not in free:
                allowed = ", ".join(free) or "none (it reads the candles' prices)"
                self.fail((*loc, "inputs", key), f"{info.name} has no input {key!r} that takes "
                                                 f"an expression; allowed: {allowed}")  # fmt: skip
                continue
            if self.node(child, (*loc, "inputs", key), informative=informative) != NUM:
                self.fail((*loc, "inputs", key), "a TA-Lib input must be a number series, "
                                                 "not a condition")  # fmt: skip
        defaults = info.param_defaults
        for key, value in node.params.items():
            if key not in defaults:
                allowed = ", ".join(defaults) or "none"
                self.fail((*loc, "params", key), f"{info.name} has no parameter {key!r}; "
                                                 f"allowed: {allowed}")  # fmt: skip
                continue
            self.scalar(value, (*loc, "params", key), integer=isinstance(defaults[key], int))
        if node.output is None and len(info.outputs) > 1:
            self.fail((*loc, "output"), f"{info.name} has several outputs; choose one of: "
                                        f"{', '.join(info.outputs)}")  # fmt: skip
        elif node.output is not None and node.output not in info.outputs:
            self.fail((*loc, "output"), f"{info.name} has no output {node.output!r}; allowed: "
                                        f"{', '.join(info.outputs)}")  # fmt: skip
        return NUM

    def op(self, node: Op, loc: Loc, *, informative: bool, scalar_only: bool) -> str:
        kinds = [
            self.node(a, (*loc, "args", i), informative=informative, scalar_only=scalar_only)
            for i, a in enumerate(node.args)
        ]
        name = node.op
        if (
            scalar_only
            and name not in ARITHMETIC
            and name not in COMPARISONS
            and (name not in BOOLEAN)
        ):
            self.fail((*loc, "op"), f"{name} is not allowed in a parameter constraint")
        if node.n is not None:
            self.scalar(node.n, (*loc, "n"), integer=True)
        if node.tol is not None and node.tol != "price":
            self.scalar(node.tol, (*loc, "tol"), integer=False)
        want = BOOL if name in BOOLEAN else NUM
        if name in ("shift", "rolling_max", "rolling_min"):
            return kinds[0]
        for i, kind in enumerate(kinds):
            if kind != want:
                noun = "a condition" if want == BOOL else "a number series"
                self.fail(
                    (*loc, "args", i),
                    f"{name} takes {noun} here, not a {'condition' if kind == BOOL else 'number'}",
                )
        if name in ARITHMETIC or name == "rolling_mean":
            return NUM
        return BOOL


def _contains_informative(node: Any, doc: StrategyDocument, seen: set[str]) -> bool:
    """Whether evaluating `node` would enter an informative timeframe (through refs too)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Informative):
            return True
        if isinstance(item, Ref) and item.ref in doc.indicators and item.ref not in seen:
            seen.add(item.ref)
            stack.append(doc.indicators[item.ref])
        elif isinstance(item, TaCall):
            stack.extend(item.inputs.values())
        elif isinstance(item, Op):
            stack.extend(item.args)
    return False


def analyse(doc: StrategyDocument, limits: DocumentLimits | None = None) -> Analysis:
    """Static checks (see the module docstring); ValidationFailed naming each path."""
    checker = _Checker(doc, limits or DocumentLimits())
    for name in doc.indicators:
        if name not in checker.out.ref_types:
            checker.definition(name)
    for _, when, loc in doc.entries():
        if checker.node(when, loc, informative=False) != BOOL:
            checker.fail(loc, "the entry must be a condition (a comparison, cross, and/or/not)")
    if doc.exit is not None and checker.node(doc.exit, ("exit",), informative=False) != BOOL:
        checker.fail(("exit",), "the exit must be a condition (a comparison, cross, and/or/not)")
    for i, constraint in enumerate(doc.constraints):
        loc = ("constraints", i, "rule")
        if checker.node(constraint.rule, loc, informative=False, scalar_only=True) != BOOL:
            checker.fail(loc, "a constraint must be a condition on parameters")
    exits = doc.exits
    for key in ("stoploss", "max_hold_minutes"):
        value = getattr(exits, key)
        if value is not None:
            checker.scalar(value, ("exits", key), integer=key == "max_hold_minutes")
    if exits.trailing is not None:
        if exits.trailing.positive is not None:
            checker.scalar(exits.trailing.positive, ("exits", "trailing", "positive"),
                           integer=False)  # fmt: skip
        checker.scalar(exits.trailing.offset, ("exits", "trailing", "offset"), integer=False)
    if checker.errors:
        raise document_error(checker.errors[:50])
    return checker.out


# -- compiling with values -------------------------------------------------------------------


@dataclass
class _Ctx:
    candles: Candles
    tf_seconds: int | None
    memo: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Program:
    """A document with values: evaluates (enter, exit) and knows its warm-up and lookback."""

    doc: StrategyDocument
    values: dict[str, Any]
    timeframe_seconds: int | None
    warmup: int
    lookback: int
    exits: ExitRules
    series: dict[str, int]  # named indicator -> warm-up, what `validate` reports
    max_eval_ms: int

    def conditions(self, candles: Candles) -> tuple[np.ndarray, np.ndarray]:
        """Boolean (enter, exit) arrays as long as the candles (unknown counts as false)."""
        started = time.perf_counter()
        deadline = started + self.max_eval_ms / 1000.0
        ev = _Evaluator(self, deadline)
        ctx = _Ctx(candles, self.timeframe_seconds)
        enter = np.zeros(len(candles), dtype=bool)
        for _, when, _ in self.doc.entries():
            enter |= ev.eval(when, ctx) == 1.0
        if self.doc.exit is None:
            return enter, np.zeros(len(candles), dtype=bool)
        return enter, ev.eval(self.doc.exit, ctx) == 1.0

    def entry_tags(self, candles: Candles) -> list[str | None] | None:
        """Per candle, the tag of the first entry (in list order) whose condition is true
        there, None where none is; None for a document whose entry is not a tagged list."""
        if not self.doc.tagged:
            return None
        ev = _Evaluator(self, time.perf_counter() + self.max_eval_ms / 1000.0)
        ctx = _Ctx(candles, self.timeframe_seconds)
        tags: list[str | None] = [None] * len(candles)
        for tag, when, _ in reversed(self.doc.entries()):  # earlier entries overwrite later
            for i in np.flatnonzero(ev.eval(when, ctx) == 1.0).tolist():
                tags[i] = tag
        return tags

    def indicator(self, name: str, candles: Candles) -> np.ndarray:
        """One named indicator's values (for charts and the validate endpoint)."""
        ev = _Evaluator(self, time.perf_counter() + self.max_eval_ms / 1000.0)
        return ev.eval(Ref(ref=name), _Ctx(candles, self.timeframe_seconds))


def _resolve(node: Any, values: dict[str, Any]) -> float:
    if isinstance(node, float | int):
        return float(node)
    if isinstance(node, Const):
        return node.const
    assert isinstance(node, ParamRef)
    return float(values[node.param])


def _int(node: Any, values: dict[str, Any]) -> int:
    return int(_resolve(node, values))


class _Sizer:
    """Warm-up (first index that can be valid) and settle (extra candles for recursive
    smoothing to forget where the series started) of each node, with values."""

    def __init__(self, doc: StrategyDocument, values: dict[str, Any], tf: int | None,
                 limits: DocumentLimits) -> None:  # fmt: skip
        self.doc, self.values, self.tf, self.limits = doc, values, tf, limits
        self.errors: list[tuple[Loc, str]] = []
        self.refs: dict[tuple[str, int], tuple[int, int]] = {}

    def size(self, node: Any, loc: Loc, ratio: int = 1) -> tuple[int, int]:
        if isinstance(node, float | int | Const | ParamRef | SeriesRef):
            return 0, 0
        if isinstance(node, Ref):
            key = (node.ref, ratio)
            if key not in self.refs:
                self.refs[key] = self.size(self.doc.indicators[node.ref],
                                           ("indicators", node.ref), ratio)  # fmt: skip
            return self.refs[key]
        if isinstance(node, TaCall):
            return self.ta_call(node, loc, ratio)
        if isinstance(node, Informative):
            return self.informative(node, loc)
        assert isinstance(node, Op)
        sizes = [self.size(a, (*loc, "args", i), ratio) for i, a in enumerate(node.args)]
        warm = max(w for w, _ in sizes)
        settle = max(s for _, s in sizes)
        if node.op in CROSSES:
            return warm + 1, settle
        if node.n is not None:
            n = _int(node.n, self.values)
            if node.op == "shift" and n < 0:
                self.errors.append(((*loc, "n"), f"shift takes a non-negative number of "
                                                 f"candles (no look-ahead), got {n}"))  # fmt: skip
            elif node.op != "shift" and n < 1:
                self.errors.append(((*loc, "n"), f"{node.op} needs a window of at least 1, "
                                                 f"got {n}"))  # fmt: skip
            elif n > self.limits.max_lookback:
                self.errors.append(((*loc, "n"), f"{n} candles is beyond the lookback limit "
                                                 f"{self.limits.max_lookback}"))  # fmt: skip
            return warm + (n if node.op == "shift" else n - 1), settle
        return warm, settle

    def ta_call(self, node: TaCall, loc: Loc, ratio: int) -> tuple[int, int]:
        info = ta.function_info(node.ta)
        assert info is not None
        params = _ta_params(node, info, self.values)
        back = ta.lookback(node.ta, params)
        if back < 0:
            shown = ", ".join(f"{k}={v:g}" for k, v in params.items())
            self.errors.append(((*loc, "params"), f"TA-Lib refuses {node.ta} with {shown}"))
            back = 0
        sizes = [self.size(node.inputs[n], (*loc, "inputs", n), ratio)
                 for n, _, free in info.inputs if free and n in node.inputs]  # fmt: skip
        warm = max((w for w, _ in sizes), default=0) + back
        settle = max((s for _, s in sizes), default=0)
        if info.unstable:
            periods = [int(v) for k, v in params.items() if "period" in k]
            settle += CONVERGENCE_PERIODS * max(periods, default=back)
        return warm, settle

    def informative(self, node: Informative, loc: Loc) -> tuple[int, int]:
        hi = TIMEFRAME_SECONDS[node.informative]
        if self.tf is None:
            self.errors.append(((*loc, "informative"), "an informative timeframe needs the "
                                "base timeframe: give the document a timeframe"))  # fmt: skip
            return 0, 0
        if hi <= self.tf or hi % self.tf:
            self.errors.append(((*loc, "informative"), f"{node.informative} must be a whole "
                                "multiple of, and longer than, the base timeframe"))  # fmt: skip
            return 0, 0
        ratio = hi // self.tf
        warm, settle = self.size(node.expr, (*loc, "expr"), ratio)
        return (warm + 2) * ratio - 2, settle * ratio


def _ta_params(node: TaCall, info: ta.FunctionInfo, values: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    defaults = info.param_defaults
    for key, default in defaults.items():
        raw = node.params.get(key)
        value = default if raw is None else _resolve(raw, values)
        params[key] = int(value) if isinstance(default, int) else float(value)
    return params


def compile_document(
    doc: StrategyDocument,
    values: dict[str, Any],
    *,
    timeframe: str | None = None,
    limits: DocumentLimits | None = None,
) -> Program:
    """The document with these (already validated) parameter values, ready to evaluate.
    `timeframe` is the candles' timeframe (the document's own when None)."""
    limits = limits or DocumentLimits()
    tf_name = timeframe or doc.timeframe
    tf = TIMEFRAME_SECONDS.get(tf_name) if tf_name else None
    sizer = _Sizer(doc, values, tf, limits)
    warm = 0
    settle = 0
    conditions = [(loc, when) for _, when, loc in doc.entries()] + [(("exit",), doc.exit)]
    for loc, node in conditions:
        if node is not None:
            w, s = sizer.size(node, loc)
            warm, settle = max(warm, w), max(settle, s)
    series = {}
    for name in doc.indicators:
        series[name] = sizer.size(Ref(ref=name), ("indicators", name))[0]
    exits = _exit_rules(doc, values, sizer.errors)
    lookback = warm + settle + 1
    if lookback > limits.max_lookback and not sizer.errors:
        sizer.errors.append(((), f"with these values the strategy needs {lookback} candles of "
                                 f"history; the limit is {limits.max_lookback}"))  # fmt: skip
    if sizer.errors:
        raise document_error(sizer.errors[:50])
    return Program(doc, dict(values), tf, warm, lookback, exits, series, limits.max_eval_ms)


def _exit_rules(doc: StrategyDocument, values: dict[str, Any], errors: list[tuple[Loc, str]]
                ) -> ExitRules:  # fmt: skip
    e = doc.exits
    stoploss = None if e.stoploss is None else _resolve(e.stoploss, values)
    if stoploss is not None and not -1.0 < stoploss < 0.0:
        errors.append(
            (
                ("exits", "stoploss"),
                f"stoploss is a ratio below the entry price, "
                f"between -1 and 0 (e.g. -0.05); got {stoploss:g}",
            )
        )
    positive = offset = None
    if e.trailing is not None:
        positive = None if e.trailing.positive is None else _resolve(e.trailing.positive, values)
        offset = _resolve(e.trailing.offset, values)
        if positive is not None and not 0.0 < positive < 1.0:
            errors.append(
                (
                    ("exits", "trailing", "positive"),
                    f"positive is a ratio between 0 and 1; got {positive:g}",
                )
            )
        if not 0.0 <= offset < 10.0:
            errors.append((("exits", "trailing", "offset"), f"offset is a profit ratio >= 0; "
                                                            f"got {offset:g}"))  # fmt: skip
        if stoploss is None:
            errors.append((("exits", "trailing"), "a trailing stop starts from the stoploss: "
                                                  "give exits.stoploss too"))  # fmt: skip
    hold = None if e.max_hold_minutes is None else _int(e.max_hold_minutes, values)
    if hold is not None and hold < 1:
        errors.append((("exits", "max_hold_minutes"), f"must be at least 1, got {hold}"))
    roi = tuple(sorted((int(k), float(v)) for k, v in e.minimal_roi.items()))
    return ExitRules(
        stoploss=stoploss,
        trailing=e.trailing is not None,
        trailing_positive=positive,
        trailing_offset=offset or 0.0,
        trailing_only_offset_is_reached=bool(e.trailing and e.trailing.only_offset_is_reached),
        minimal_roi=roi,
        max_hold_minutes=hold,
        use_exit_signal=e.use_exit_signal,
    )


# -- evaluation -------------------------------------------------------------------------------


def _nan_where(mask: np.ndarray, value: np.ndarray) -> np.ndarray:
    value[mask] = np.nan
    return value


def _shift(x: np.ndarray, n: int) -> np.ndarray:
    if n == 0:
        return x
    out = np.full(x.shape[0], np.nan)
    if n < x.shape[0]:
        out[n:] = x[:-n]
    return out


def _cmp(fn: Callable[..., np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        out = fn(a, b).astype(np.float64)
    return _nan_where(np.isnan(a) | np.isnan(b), out)


def _cross(a: np.ndarray, b: np.ndarray, tol: np.ndarray | float, above: bool) -> np.ndarray:
    diff = a - b
    with np.errstate(invalid="ignore"):
        over = diff > tol if above else diff < -tol
    out = np.zeros(diff.shape[0], dtype=np.float64)
    if diff.shape[0] > 1:
        out[1:] = over[1:] & ~over[:-1] & np.isfinite(diff[:-1])
    return _nan_where(np.isnan(diff), out)


class _Evaluator:
    def __init__(self, program: Program, deadline: float) -> None:
        self.p = program
        self.values = program.values
        self.deadline = deadline

    def _tick(self) -> None:
        if time.perf_counter() > self.deadline:
            raise ValidationFailed(
                f"the strategy took longer than {self.p.max_eval_ms} ms to evaluate",
                code="strategy_too_slow",
            )

    def eval(self, node: Any, ctx: _Ctx) -> np.ndarray:
        n = len(ctx.candles)
        if isinstance(node, float | int | Const | ParamRef):
            return np.full(n, _resolve(node, self.values))
        if isinstance(node, SeriesRef):
            return np.asarray(getattr(ctx.candles, node.series), dtype=np.float64)
        if isinstance(node, Ref):
            hit = ctx.memo.get(node.ref)
            if hit is None:
                hit = ctx.memo[node.ref] = self.eval(self.p.doc.indicators[node.ref], ctx)
            return hit
        if isinstance(node, TaCall):
            return self.ta_call(node, ctx)
        if isinstance(node, Informative):
            return self.informative(node, ctx)
        return self.op(node, ctx)

    def ta_call(self, node: TaCall, ctx: _Ctx) -> np.ndarray:
        self._tick()
        info = ta.function_info(node.ta)
        assert info is not None
        inputs: list[np.ndarray] = []
        for name, series, free in info.inputs:
            if free and name in node.inputs:
                arr = self.eval(node.inputs[name], ctx)
                inputs.append(np.ascontiguousarray(arr, dtype=np.float64))
            else:
                inputs.extend(np.ascontiguousarray(getattr(ctx.candles, s), dtype=np.float64)
                              for s in series)  # fmt: skip
        outputs = ta.call(node.ta, inputs, _ta_params(node, info, self.values))
        index = info.outputs.index(node.output) if node.output else 0
        out = outputs[index]
        return _nan_where(~np.isfinite(out), out)

    def informative(self, node: Informative, ctx: _Ctx) -> np.ndarray:
        base_tf = ctx.tf_seconds
        assert base_tf is not None
        hi_ms = TIMEFRAME_SECONDS[node.informative] * 1000
        hi, ends = _resample(ctx.candles, hi_ms)
        values = self.eval(node.expr, _Ctx(hi, TIMEFRAME_SECONDS[node.informative]))
        visible = np.searchsorted(ends, ctx.candles.ts + base_tf * 1000, side="right") - 1
        out = np.full(len(ctx.candles), np.nan)
        seen = visible >= 0
        out[seen] = values[visible[seen]]
        return out

    def op(self, node: Op, ctx: _Ctx) -> np.ndarray:
        name = node.op
        args = [self.eval(a, ctx) for a in node.args]
        if name in ("add", "sub", "mul", "div", "max", "min"):
            fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                  "max": np.maximum, "min": np.minimum}[name]  # fmt: skip
            with np.errstate(all="ignore"):
                out = fn(args[0], args[1])
            return _nan_where(~np.isfinite(out), out)
        if name == "neg":
            return -args[0]
        if name == "abs":
            return np.abs(args[0])
        if name in COMPARISONS or name in CROSSES:
            tol = self._tol(node, ctx)
            a, b = args
            if name in CROSSES:
                return _cross(a, b, tol, name == "crosses_above")
            fns = {"gt": lambda x, y: x > y + tol, "ge": lambda x, y: x >= y - tol,
                   "lt": lambda x, y: x < y - tol, "le": lambda x, y: x <= y + tol}  # fmt: skip
            return _cmp(fns[name], a, b)
        if name == "not":
            return 1.0 - args[0]
        if name in ("and", "or"):
            out = args[0]
            for other in args[1:]:
                out = (np.minimum if name == "and" else np.maximum)(out, other)
            return out
        n = _int(node.n, self.values)
        x = args[0]
        if name == "shift":
            return _shift(x, n)
        if n == 1:
            return x
        self._tick()
        fn_name = {"rolling_max": "MAX", "rolling_min": "MIN", "rolling_mean": "SMA"}[name]
        return ta.call(fn_name, [np.ascontiguousarray(x)], {"timeperiod": n})[0]

    def _tol(self, node: Op, ctx: _Ctx) -> np.ndarray | float:
        if node.tol is None:
            return 0.0
        if node.tol == "price":
            return price_tolerance(ctx.candles.close)
        return _resolve(node.tol, self.values) or 0.0


def _resample(c: Candles, hi_ms: int) -> tuple[Candles, np.ndarray]:
    """Higher-timeframe candles from the base ones (epoch-aligned buckets; a first bucket
    that starts before the data is dropped) and each one's close time."""
    if len(c) == 0:
        return c, np.empty(0, dtype=np.int64)
    ts = np.asarray(c.ts, dtype=np.int64)
    bucket = ts - np.mod(ts, hi_ms)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    if ts[0] != bucket[0]:
        starts = starts[1:]
    if starts.size == 0:
        return Candles.empty(), np.empty(0, dtype=np.int64)
    last = np.r_[starts[1:] - 1, ts.size - 1]
    hi = Candles(
        bucket[starts],
        np.asarray(c.open, dtype=np.float64)[starts],
        np.maximum.reduceat(np.asarray(c.high, dtype=np.float64), starts),
        np.minimum.reduceat(np.asarray(c.low, dtype=np.float64), starts),
        np.asarray(c.close, dtype=np.float64)[last],
        np.add.reduceat(np.asarray(c.volume, dtype=np.float64), starts),
    )
    return hi, bucket[starts] + hi_ms
