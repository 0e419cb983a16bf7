"""A pattern: a declarative pipeline of named analysis steps, read from one YAML file.

    name: trend_momentum
    description: Buy an uptrend unless RSI is stretched.
    parameters:
      overbought: {type: number, default: 70, min: 50, max: 100}
    steps:
      - id: trend
        uses: trend
        with: {fast: 50, slow: 200}
      - id: momentum
        uses: momentum
      - id: decision
        uses: rules
        with:
          rules:
            - when:
                - {left: "{{ steps.trend.fast_above_slow }}", op: "==", right: true}
                - {left: "{{ steps.momentum.rsi | default(50) }}", op: "<",
                   right: "{{ params.overbought }}"}
              signal: buy
              reason: uptrend, not overbought
    output:
      signal: "{{ steps.decision.signal }}"
      score: "{{ steps.decision.score | default(0) }}"

Loading checks everything that can be checked without market data, and reports the FIRST
problem with its line: YAML syntax, unknown fields, unknown step types, duplicate step ids,
arguments a step does not take, literal arguments of the wrong type, templates that refer to
a later (or unknown) step, to an output the step does not have, or to an undeclared parameter.
Values only known at run time (templated arguments) are checked per ticker.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.domain.analysis import TickerAnalysis
from app.domain.candles import Candles
from app.errors import ValidationFailed
from app.patterns.steps import STEP_TYPES, StepInput, StepType
from app.patterns.templates import Expr, TemplateError, compile_value, resolve
from app.patterns.yaml_lines import LineMap, YamlProblem, load_with_lines

MAX_FILE_BYTES = 256 * 1024
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
ID_PATTERN = r"^[a-z_][a-z0-9_]{0,39}$"
PARAM_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool}


class PatternInvalid(Exception):
    """A pattern file that cannot be used; `line` is 1-based when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


class PatternRunError(ValidationFailed):
    """A pattern that could not produce an answer for one ticker (a per-ticker error)."""

    code = "pattern_error"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParamSpec(_Spec):
    type: Literal["integer", "number", "string", "boolean"]
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: list[Any] | None = Field(None, min_length=1, max_length=50)
    description: str = Field("", max_length=500)

    @property
    def required(self) -> bool:
        return self.default is None

    def check(self, value: Any) -> Any:
        """The value as this parameter's type, or ValueError saying why not."""
        kind = PARAM_TYPES[self.type]
        if isinstance(value, bool) != (kind is bool) or not isinstance(
            value, (int, float) if kind is float else kind
        ):
            raise ValueError(f"must be a {self.type}")
        if kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
        if self.min is not None and value < self.min:
            raise ValueError(f"must be >= {self.min:g}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be <= {self.max:g}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {self.choices}")
        return value


class StepSpec(_Spec):
    id: str = Field(pattern=ID_PATTERN)
    uses: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    description: str = Field("", max_length=500)


class OutputSpec(_Spec):
    signal: str
    score: Any = None
    reasons: list[str] | None = Field(None, max_length=50)


class PatternSpec(_Spec):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    parameters: dict[str, ParamSpec] = Field(default_factory=dict, max_length=50)
    steps: list[StepSpec] = Field(min_length=1, max_length=50)
    output: OutputSpec | None = None


@dataclass(frozen=True)
class CompiledStep:
    id: str
    type: StepType
    args: Any  # the `with` mapping with templates compiled


@dataclass(frozen=True)
class PatternOutcome:
    signal: str
    score: float | None
    reasons: list[str]
    steps: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Pattern:
    name: str
    description: str
    parameters: dict[str, ParamSpec]
    steps: tuple[CompiledStep, ...]
    output: Any  # compiled OutputSpec as a dict
    source: str
    digest: str = ""
    spec: dict[str, Any] = field(default_factory=dict, compare=False)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "version": self.digest[:12],
            "file": self.source,
            "parameters": {
                name: {k: v for k, v in p.model_dump().items() if v not in (None, "")}
                | {"required": p.required}
                for name, p in self.parameters.items()
            },
            "steps": [{"id": s.id, "uses": s.type.name} for s in self.steps],
        }

    def validate_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """User parameters checked against the declaration, defaults filled in."""
        given = dict(given or {})
        problems = [
            {"loc": ["pattern_params", k], "msg": "not a parameter of this pattern"}
            for k in given
            if k not in self.parameters
        ]
        values: dict[str, Any] = {}
        for name, spec in self.parameters.items():
            if name not in given:
                if spec.required:
                    problems.append({"loc": ["pattern_params", name], "msg": "required"})
                else:
                    values[name] = spec.default
                continue
            try:
                values[name] = spec.check(given[name])
            except ValueError as exc:
                problems.append({"loc": ["pattern_params", name], "msg": str(exc)})
        if problems:
            first = problems[0]
            raise ValidationFailed(
                f"pattern {self.name}: {'.'.join(first['loc'][1:])} {first['msg']}",
                details=problems,
            )
        return values

    def evaluate(
        self,
        ticker: str,
        candles: Candles,
        params: dict[str, Any],
        analysis: TickerAnalysis | None = None,
    ) -> PatternOutcome:
        """Run the steps in order on one ticker's candles; PatternRunError when it cannot."""
        data = StepInput(ticker, candles, analysis)
        scope: dict[str, Any] = {"params": params, "steps": {}}
        reasons: list[str] = []
        for step in self.steps:
            try:
                raw = resolve(step.args, scope)
                args = step.type.args.model_validate(raw)
                out = step.type.run(data, args)
            except TemplateError as exc:
                raise PatternRunError(f"{ticker}: step {step.id}: {exc}") from None
            except ValidationError as exc:
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                raise PatternRunError(
                    f"{ticker}: step {step.id}: {where + ': ' if where else ''}{first['msg']}"
                ) from None
            except (ValueError, TypeError) as exc:  # e.g. comparing a number with a word
                raise PatternRunError(f"{ticker}: step {step.id}: {exc}") from None
            scope["steps"][step.id] = out
            if isinstance(out.get("reason"), str) and out["reason"]:
                reasons.append(f"{step.id}: {out['reason']}")
        return self._outcome(ticker, scope, reasons)

    def _outcome(self, ticker: str, scope: dict[str, Any], reasons: list[str]) -> PatternOutcome:
        last = self.steps[-1].id
        output = self.output or {"signal": Expr("", ()), "score": None, "reasons": None}
        try:
            if self.output is None:
                signal = scope["steps"][last].get("signal")
                score = scope["steps"][last].get("score")
            else:
                signal = resolve(output["signal"], scope)
                score = resolve(output["score"], scope)
            if output.get("reasons") is not None:
                reasons = [str(r) for r in resolve(output["reasons"], scope)]
        except TemplateError as exc:
            raise PatternRunError(f"{ticker}: output: {exc}") from None
        if signal not in ("buy", "sell", "hold"):
            raise PatternRunError(f"{ticker}: output signal must be buy, sell or hold: {signal!r}")
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, (int, float)):
                raise PatternRunError(f"{ticker}: output score must be a number: {score!r}")
            score = float(max(-1.0, min(1.0, score))) if math.isfinite(score) else None
        return PatternOutcome(str(signal), score, reasons, scope["steps"])


def _pydantic_problem(exc: ValidationError, lines: LineMap, prefix: tuple = ()) -> PatternInvalid:
    err = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    loc = (*prefix, *err["loc"])
    where = ".".join(str(p) for p in loc)
    return PatternInvalid(f"{where}: {err['msg']}" if where else err["msg"], lines.line_for(loc))


def _check_literal_args(step: StepSpec, index: int, lines: LineMap) -> None:
    """Arguments the step does not take, and literal (non-template) values of the wrong type."""
    fields = STEP_TYPES[step.uses].args.model_fields
    base = ("steps", index, "with")
    for name, value in step.with_.items():
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise PatternInvalid(
                f"step {step.id}: {step.uses} takes no argument {name!r} (arguments: {known})",
                lines.line_for((*base, name)),
            )
        compiled, refs = compile_value(value)
        if refs:
            continue  # known at run time only
        try:
            TypeAdapter(fields[name].annotation).validate_python(value)
        except ValidationError as exc:
            raise _pydantic_problem(exc, lines, (*base, name)) from None


def _check_refs(
    refs: list[tuple[tuple, Any]],
    lines: LineMap,
    earlier: dict[str, StepType],
    params: dict[str, ParamSpec],
    all_ids: set[str],
) -> None:
    for path, ref in refs:
        line = lines.line_for(path)
        root, *rest = ref.path
        if root == "params":
            if rest[0] not in params or len(rest) > 1:
                raise PatternInvalid(
                    f"template {{{{ {ref.text} }}}}: no parameter {'.'.join(rest)!r} declared",
                    line,
                )
            continue
        if len(rest) < 2:
            raise PatternInvalid(f"template {{{{ {ref.text} }}}}: use steps.<id>.<output>", line)
        step_id, output = rest[0], rest[1]
        if step_id not in earlier:
            why = "a later step" if step_id in all_ids else "an unknown step"
            raise PatternInvalid(
                f"template {{{{ {ref.text} }}}} refers to {why} {step_id!r}; "
                "a step can only use the outputs of steps before it",
                line,
            )
        if output not in earlier[step_id].outputs:
            raise PatternInvalid(
                f"template {{{{ {ref.text} }}}}: step {step_id!r} ({earlier[step_id].name}) has "
                f"no output {output!r}; outputs: {', '.join(earlier[step_id].outputs)}",
                line,
            )


def parse_pattern(text: str, source: str, default_name: str) -> Pattern:
    """Build a pattern from YAML text, or raise PatternInvalid with the line at fault."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise PatternInvalid(f"file larger than {MAX_FILE_BYTES} bytes")
    try:
        data, lines = load_with_lines(text)
    except YamlProblem as exc:
        raise PatternInvalid(f"invalid YAML: {exc.reason}", exc.line) from None
    if not isinstance(data, dict):
        raise PatternInvalid("a pattern file must be a mapping (name, steps, ...)", 1)
    data.setdefault("name", default_name)
    try:
        spec = PatternSpec.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_problem(exc, lines) from None

    for name, param in spec.parameters.items():
        if param.default is not None:
            try:
                param.check(param.default)
            except ValueError as exc:
                raise PatternInvalid(
                    f"parameters.{name}.default {exc}",
                    lines.line_for(("parameters", name, "default")),
                ) from None

    all_ids = {s.id for s in spec.steps}
    earlier: dict[str, StepType] = {}
    compiled_steps: list[CompiledStep] = []
    for i, step in enumerate(spec.steps):
        if step.id in earlier:
            raise PatternInvalid(
                f"duplicate step id {step.id!r}", lines.line_for(("steps", i, "id"))
            )
        if step.uses not in STEP_TYPES:
            raise PatternInvalid(
                f"step {step.id}: unknown step type {step.uses!r}; known: {', '.join(STEP_TYPES)}",
                lines.line_for(("steps", i, "uses")),
            )
        try:
            compiled, refs = compile_value(step.with_, ("steps", i, "with"))
        except TemplateError as exc:
            raise PatternInvalid(str(exc), lines.line_for(exc.path or ("steps", i))) from None
        _check_literal_args(step, i, lines)
        _check_refs(refs, lines, earlier, spec.parameters, all_ids)
        earlier[step.id] = STEP_TYPES[step.uses]
        compiled_steps.append(CompiledStep(step.id, STEP_TYPES[step.uses], compiled))

    output: dict[str, Any] | None = None
    if spec.output is not None:
        try:
            output, refs = compile_value(spec.output.model_dump(), ("output",))
        except TemplateError as exc:
            raise PatternInvalid(str(exc), lines.line_for(exc.path or ("output",))) from None
        _check_refs(refs, lines, earlier, spec.parameters, all_ids)
    elif "signal" not in compiled_steps[-1].type.outputs:
        raise PatternInvalid(
            "without an output section the last step must produce a signal "
            f"({compiled_steps[-1].type.name} does not)",
            lines.line_for(("steps", len(spec.steps) - 1)),
        )
    return Pattern(
        name=spec.name,
        description=spec.description,
        parameters=spec.parameters,
        steps=tuple(compiled_steps),
        output=output,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest(),
        spec=data,
    )
