"""`flask backtest`: the hand-computed fixture from the terminal (table and JSON), bad input
as a clear error, and the real command on a recorded file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import FIXTURE_CLOSE, FIXTURE_OPEN, rows_from, write_candles
from tests.support.processes import ROOT, flask_command, service_env
from tests.support.recorded import largest_recorded_file


@pytest.fixture
def fixture_file(tmp_path: Path) -> Path:
    return write_candles(tmp_path, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))


def invoke(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["backtest", *args])


FIXTURE_ARGS = ("--params", '{"fast": 2, "slow": 3}', "--capital", "1000", "--stake", "100")


def test_json_output_has_the_hand_computed_trades(app: Any, fixture_file: Path) -> None:
    r = invoke(app, "--file", str(fixture_file), *FIXTURE_ARGS, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert [t["pnl"] for t in out["trades"]] == ["-15.568608", "21.204598"]
    assert out["summary"]["final_equity"] == "1005.63599"
    assert out["summary"]["symbol"] == "AAA/BBB" and out["summary"]["timeframe"] == "1h"
    assert out["report"]["totals"]["profit_total_abs"] == "5.63599"


def test_summary_table_and_trade_list(app: Any, fixture_file: Path) -> None:
    r = invoke(app, "--file", str(fixture_file), *FIXTURE_ARGS, "--trades")
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.splitlines()
    table = dict(line.split(None, 1) for line in lines if line.startswith(("candles", "capital")))
    assert table == {"candles": "15", "capital": "1000"}
    assert any(line.startswith("trades ") and "2 (0 bootstrap" in line for line in lines)
    assert any("total return" in line and "0.56 %" in line for line in lines)
    assert any("-15.554%" in line and "exit_signal" in line for line in lines)  # trade 1
    assert "backtest" in r.stderr  # the progress bar goes to stderr
    assert any(line.startswith("wins / draws / losses") and "1 / 0 / 1" in line for line in lines)
    assert "by exit reason" in lines and "by month" in lines


def test_range_options_cut_the_candles(app: Any, fixture_file: Path) -> None:
    r = invoke(app, "--file", str(fixture_file), *FIXTURE_ARGS, "--json",
               "--start", "2026-01-01T02:00:00Z", "--end", "2026-01-01T12:00:00Z")  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    assert json.loads(r.stdout)["summary"]["candles"] == 10


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (("--params", "{fast: 2}"), 2, "not valid JSON"),
        (("--strategy", "moon"), 1, "unknown strategy"),
        (("--params", '{"fast": 5, "slow": 3}'), 1, "fast must be smaller than slow"),
        (("--sizing", '{"mode": "fixed"}'), 1, "needs stake"),
        (("--timeframe", "45m"), 1, "cannot be built"),
        (("--start", "yesterday"), 2, "not an ISO-8601 time"),
    ],
)
def test_bad_input_is_a_clear_error(app: Any, fixture_file: Path, args: tuple[str, ...],
                                    exit_code: int, message: str) -> None:  # fmt: skip
    r = invoke(app, "--file", str(fixture_file), *args)
    assert r.exit_code == exit_code, r.output + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_needs_a_file_or_a_symbol(app: Any) -> None:
    r = invoke(app)
    assert r.exit_code == 2 and "exactly one of --file or --symbol" in r.stderr


def test_the_real_command_on_a_recorded_file(settings: Any) -> None:
    largest = largest_recorded_file()
    rows = sum(1 for _ in largest.open()) - 1
    proc = subprocess.run(
        flask_command("backtest", "--file", str(largest), "--stake", "0.1", "--json"),
        cwd=ROOT, env=service_env(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"]["candles"] == rows and out["summary"]["trades"] > 10
    assert out["summary"]["symbol"] == largest.name.split("_")[1].replace("-", "/")


def test_a_strategy_document_file_runs_with_its_exits(app: Any, fixture_file: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    import yaml

    from tests.engine.test_tick import EXIT_DOC

    doc = tmp_path / "mine.yaml"
    doc.write_text(yaml.safe_dump(EXIT_DOC))
    r = invoke(app, "--file", str(fixture_file), "--strategy-file", str(doc), "--capital",
               "1000", "--stake", "100", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output + r.stderr
    out = json.loads(r.stdout)
    assert [(t["exit_reason"], t["exit_price"]) for t in out["trades"]] == [
        ("stop_loss", "11.1"), ("roi", "18.3")]  # fmt: skip
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**EXIT_DOC, "entry": {"op": "shift", "args": [1], "n": 1}}))
    r = invoke(app, "--file", str(fixture_file), "--strategy-file", str(bad))
    assert r.exit_code != 0 and "$.entry" in r.output
