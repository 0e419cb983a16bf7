"""`flask search`: the trials are backtests of the same parameters; bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import test_backtest as shared
from tests.cli import test_backtest_pairs as pairs_shared

fixture_file = shared.fixture_file

RANGES = '{"fast": {"low": 2, "high": 3}, "slow": {"low": 3, "high": 5}}'
ARGS = ("--capital", "1000", "--stake", "100", "--objective", "profit", "--seed", "3")


def search(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["search", *args])


def backtest_return(app: Any, path: Path, params: dict[str, Any]) -> float:
    r = shared.invoke(app, "--file", str(path), "--params", json.dumps(params), "--capital",
                      "1000", "--stake", "100", "--json")  # fmt: skip
    return json.loads(r.stdout)["metrics"]["total_return"]


def test_the_best_trial_is_the_backtest_of_its_parameters(app: Any, fixture_file: Path) -> None:
    r = search(app, "--file", str(fixture_file), "--ranges", RANGES, "--trials", "6", *ARGS,
               "--json")  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert out["trials_done"] == 6 and out["summary"]["candles"] == 15
    best = out["best"]
    assert best["value"] == pytest.approx(backtest_return(app, fixture_file, best["params"]),
                                          abs=1e-15)  # fmt: skip
    plain = search(app, "--file", str(fixture_file), "--ranges", RANGES, "--trials", "6", *ARGS)
    assert "best " in plain.stdout and json.dumps(best["params"]) in plain.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--ranges", '{"fast": {"low": 1, "high": 3}}'), "outside the declared range"),
        (("--ranges", '{"nope": {"low": 1, "high": 3}}'), "unknown parameter"),
        (("--ranges", RANGES, "--trials", "0"), "trials"),
        (("--ranges", RANGES, "--timeout", "0"), "timeout_seconds"),
        (("--ranges", "{"), "not valid JSON"),
    ],
)
def test_bad_input_is_a_clear_error(app: Any, fixture_file: Path, args: tuple[str, ...],
                                    said: str) -> None:  # fmt: skip
    r = search(app, "--file", str(fixture_file), *args)
    assert r.exit_code != 0 and said in r.output + r.stderr


recorded = pairs_shared.recorded


def test_several_pairs_search_from_one_wallet(app: Any, recorded: Path) -> None:
    pairs = ("--symbols", "CCC/BBB,AAA/BBB", "--max-open-trades", "1", "--timeframe", "1h")
    r = search(app, *pairs, "--ranges", RANGES, "--trials", "6", *ARGS, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert out["summary"]["symbols"] == ["CCC/BBB", "AAA/BBB"]
    assert out["summary"]["max_open_trades"] == 1
    best = out["best"]
    run = pairs_shared.invoke(app, *pairs, "--params", json.dumps(best["params"]), "--capital",
                              "1000", "--stake", "100", "--json")  # fmt: skip
    assert best["value"] == pytest.approx(json.loads(run.stdout)["metrics"]["total_return"],
                                          abs=1e-15)  # fmt: skip
    mixed = search(app, "--symbols", "AAA/BBB,AAA/EUR", "--timeframe", "1h", "--ranges", RANGES)
    assert mixed.exit_code != 0 and "share their quote currency" in mixed.output + mixed.stderr
