"""Patterns: validation names the line and the reason, templates resolve with explicit
defaults, the shipped examples work, and the folder hot-reloads keeping the last good file."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app.domain.analysis import InsufficientHistory, analyze
from app.domain.candles import Candles
from app.patterns import PatternInvalid, PatternRegistry, PatternRunError, parse_pattern
from app.patterns.templates import MissingValue, compile_string

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: simple
description: buy when RSI is low
parameters:
  low: {type: number, default: 30, min: 1, max: 99}
steps:
  - id: momentum
    uses: momentum
    with:
      rsi_period: 14
  - id: decision
    uses: rules
    with:
      rules:
        - when:
            - {left: "{{ steps.momentum.rsi }}", op: "<", right: "{{ params.low }}"}
          signal: buy
          reason: "RSI {{ steps.momentum.rsi }} below {{ params.low }}"
output:
  signal: "{{ steps.decision.signal }}"
  score: "{{ steps.decision.score | default(0) }}"
"""


def candles_from_closes(closes: list[float]) -> Candles:
    c = np.asarray(closes, dtype=np.float64)
    ts = np.arange(c.shape[0], dtype=np.int64) * 3_600_000
    return Candles(ts, c, c * 1.01, c * 0.99, c, np.ones_like(c))


def zigzag(n: int = 260, drift: float = 0.0) -> Candles:
    i = np.arange(n)
    return candles_from_closes(list(100 + drift * i + 3 * np.sin(i / 3.0)))


def _problem(text: str) -> PatternInvalid:
    with pytest.raises(PatternInvalid) as info:
        parse_pattern(textwrap.dedent(text), "x.yaml", "x")
    return info.value


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (
            "name: a\nsteps:\n  - id: t\n    uses: trend\n    with: {fast: 5, slow: [1\n",
            6,
            "invalid YAML",
        ),
        (
            "name: a\nsteps:\n  - id: t\n    uses: trend\n  - id: t\n    uses: momentum\n",
            5,
            "duplicate step id",
        ),
        ("name: a\nsteps:\n  - id: t\n    uses: telepathy\n", 4, "unknown step type"),
        (
            "name: a\nsteps:\n  - id: t\n    uses: trend\n    with:\n      fats: 5\n",
            6,
            "takes no argument 'fats'",
        ),
        ("name: a\nsteps:\n  - id: t\n    uses: trend\n    with:\n      fast: many\n", 6, "fast"),
        (
            "name: a\nsteps:\n  - id: d\n    uses: rules\n    with:\n      rules:\n"
            "        - when: [{left: '{{ steps.later.rsi }}', op: '<', right: 3}]\n"
            "          signal: buy\n  - id: later\n    uses: momentum\n",
            7,
            "refers to a later step 'later'",
        ),
        (
            "name: a\nsteps:\n  - id: m\n    uses: momentum\n  - id: d\n    uses: rules\n"
            "    with:\n      rules:\n        - when:\n"
            "            - {left: '{{ steps.m.rsx }}', op: '<', right: 3}\n"
            "          signal: buy\n",
            10,
            "has no output 'rsx'",
        ),
        (
            "name: a\nsteps:\n  - id: m\n    uses: momentum\n    with:\n"
            "      rsi_period: '{{ params.period }}'\n",
            6,
            "no parameter 'period'",
        ),
        (
            "name: a\nsteps:\n  - id: m\n    uses: momentum\n    with:\n"
            "      rsi_period: '{{ steps.m.rsi | default( }}'\n",
            6,
            "cannot read template",
        ),
        (
            "name: a\nparameters:\n  p: {type: integer, default: 500, max: 100}\n"
            "steps:\n  - id: m\n    uses: momentum\n",
            3,
            "default must be <= 100",
        ),
        ("name: a\nsteps:\n  - id: m\n    uses: momentum\n", 3, "must produce a signal"),
        ("name: a\nsteps:\n  - id: m\n    uses: momentum\n    colour: red\n", 5, "colour"),
        ("name: Bad Name!\nsteps:\n  - id: m\n    uses: momentum\n", 1, "name"),
        ("name: a\nname: b\nsteps: []\n", 2, "duplicate key 'name'"),
        ("- just\n- a list\n", 1, "must be a mapping"),
    ],
)
def test_invalid_files_report_the_line_and_the_reason(text: str, line: int, words: str) -> None:
    problem = _problem(text)
    assert problem.line == line, problem
    assert words in problem.reason, problem


def test_templates_keep_types_and_use_explicit_defaults() -> None:
    scope = {"steps": {"m": {"rsi": 42.5, "warm": float("nan")}}, "params": {"p": 3}}
    assert compile_string("{{ steps.m.rsi }}").resolve(scope) == 42.5
    assert compile_string("  {{ params.p }}  ").resolve(scope) == 3
    assert compile_string("RSI {{ steps.m.rsi }}!").resolve(scope) == "RSI 42.5!"
    assert compile_string("{{ steps.m.warm | default(50) }}").resolve(scope) == 50
    assert compile_string("{{ steps.m.gone | default('n/a') }}").resolve(scope) == "n/a"
    assert compile_string("{{ steps.x.y | default(null) }}").resolve(scope) is None
    with pytest.raises(MissingValue, match="steps.m.warm is missing"):
        compile_string("{{ steps.m.warm }}").resolve(scope)
    assert compile_string("no templates here") == "no templates here"


def test_a_pattern_runs_steps_in_order_and_decides() -> None:
    pattern = parse_pattern(GOOD, "simple.yaml", "simple")
    falling = candles_from_closes([200 - i for i in range(60)])  # RSI 0: oversold
    outcome = pattern.evaluate("T/X", falling, pattern.validate_params({}))
    assert outcome.signal == "buy" and outcome.score == 1.0
    assert outcome.steps["momentum"]["rsi"] == 0.0
    assert outcome.reasons[-1] == "decision: RSI 0 below 30"
    rising = candles_from_closes([100 + i for i in range(60)])
    outcome = pattern.evaluate("T/X", rising, pattern.validate_params({"low": 20}))
    assert (outcome.signal, outcome.score) == ("hold", 0.0)
    assert outcome.reasons[-1] == "decision: no rule matched"


def test_missing_values_without_default_are_per_ticker_errors() -> None:
    text = GOOD.replace("rsi_period: 14", "rsi_period: 30")
    pattern = parse_pattern(text, "simple.yaml", "simple")
    with pytest.raises(InsufficientHistory, match="step momentum needs at least 34 candles"):
        pattern.evaluate("T/X", zigzag(20), pattern.validate_params({}))
    text = GOOD.replace(
        'score: "{{ steps.decision.score | default(0) }}"', 'score: "{{ steps.decision.nope }}"'
    )
    with pytest.raises(PatternInvalid, match="no output 'nope'"):
        parse_pattern(text, "simple.yaml", "simple")


def test_templated_arguments_are_checked_per_run() -> None:
    text = GOOD.replace("rsi_period: 14", 'rsi_period: "{{ params.low }}"').replace(
        "max: 99", "max: 1000"
    )
    pattern = parse_pattern(text, "simple.yaml", "simple")
    with pytest.raises(PatternRunError, match="rsi_period"):
        pattern.evaluate("T/X", zigzag(), pattern.validate_params({"low": 999}))


def test_parameters_are_validated() -> None:
    pattern = parse_pattern(GOOD, "simple.yaml", "simple")
    assert pattern.validate_params(None) == {"low": 30.0}
    for bad in ({"low": "x"}, {"low": 0}, {"low": True}, {"other": 1}):
        with pytest.raises(Exception, match="pattern simple"):
            pattern.validate_params(bad)


def test_shipped_patterns_load_and_run() -> None:
    registry = PatternRegistry(ROOT / "patterns")
    assert registry.problems() == []
    names = {p.name for p in registry.patterns()}
    assert {"trend_momentum", "mean_reversion", "blended_score"} <= names
    candles = zigzag(400, drift=0.05)
    base = analyze("T/X", candles)
    for pattern in registry.patterns():
        outcome = pattern.evaluate("T/X", candles, pattern.validate_params({}), base)
        assert outcome.signal in ("buy", "sell", "hold")
        assert outcome.reasons
    blend = registry.get("blended_score").evaluate(
        "T/X", candles, registry.get("blended_score").validate_params({}), base
    )
    assert blend.steps["base"]["score"] == base.score
    expected = (0.7 * base.score + 0.3 * blend.steps["vote"]["score"]) / 1.0
    assert blend.score == pytest.approx(expected)


def _write(path: Path, text: str) -> None:
    """Write through a temporary file and rename, like editors and deploy tools do."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_hot_reload_keeps_the_last_good_version(tmp_path: Path) -> None:
    registry = PatternRegistry(tmp_path)
    assert registry.patterns() == []
    _write(tmp_path / "simple.yaml", GOOD)
    first = registry.get("simple")
    assert first.parameters["low"].default == 30

    _write(tmp_path / "simple.yaml", GOOD.replace("default: 30", "default: 25"))
    assert registry.get("simple").parameters["low"].default == 25  # no restart needed

    broken = GOOD.replace("uses: rules", "uses: crystal_ball")
    _write(tmp_path / "simple.yaml", broken)
    still = registry.get("simple")
    assert still.parameters["low"].default == 25  # the last good version stays active
    [problem] = registry.problems()
    assert problem.file == "simple.yaml" and problem.line == 11
    assert "unknown step type 'crystal_ball'" in problem.reason

    _write(tmp_path / "simple.yaml", GOOD)
    assert registry.problems() == []
    assert registry.get("simple").parameters["low"].default == 30

    _write(tmp_path / "twin.yml", GOOD)  # same name in a second file: reported, first wins
    assert [p.source for p in registry.patterns()] == ["simple.yaml"]
    assert "already defined by simple.yaml" in registry.problems()[0].reason

    (tmp_path / "twin.yml").unlink()
    (tmp_path / "simple.yaml").unlink()
    assert registry.patterns() == [] and registry.problems() == []


def test_a_new_broken_file_is_reported_without_a_pattern(tmp_path: Path) -> None:
    _write(tmp_path / "bad.yaml", "name: bad\nsteps:\n  - id: x\n    uses: [\n")
    registry = PatternRegistry(tmp_path)
    assert registry.patterns() == []
    [problem] = registry.problems()
    assert problem.file == "bad.yaml" and problem.line is not None
    assert problem.to_dict()["reason"].startswith("invalid YAML")
