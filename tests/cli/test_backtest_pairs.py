"""`flask backtest --symbols`: several pairs of the replay data from one wallet, with the
table by pair (figures hand-computed in tests/engine/test_pairs.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    rows_from,
    uninstall_replay,
    write_candles,
)

ARGS = ("--timeframe", "1h", "--params", '{"fast": 2, "slow": 3}', "--capital", "1000",
        "--stake", "100")  # fmt: skip


@pytest.fixture
def recorded(settings: Any, tmp_path: Path) -> Iterator[Path]:
    from config import use_settings

    directory = tmp_path / "candles"
    rows = rows_from(FIXTURE_OPEN, FIXTURE_CLOSE)
    for name in ("AAA-BBB", "CCC-BBB", "AAA-EUR"):
        write_candles(directory, f"TEST_{name}_1h.csv", rows)
    dirs = {"candles_dir": str(directory), "candles_import_dir": str(tmp_path / "none")}
    use_settings(settings.model_copy(update=dirs))
    uninstall_replay()
    yield directory
    use_settings(settings)
    uninstall_replay()


def invoke(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["backtest", *args])


def test_json_has_every_pairs_trades_and_the_table_by_pair(app: Any, recorded: Path) -> None:
    r = invoke(app, "--symbols", "CCC/BBB,AAA/BBB", "--max-open-trades", "1", *ARGS, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [(t["symbol"], t["pnl"]) for t in out["trades"]] == [
        ("CCC/BBB", "-15.568608"), ("CCC/BBB", "21.204598")]  # fmt: skip
    assert out["summary"]["symbols"] == ["CCC/BBB", "AAA/BBB"]
    assert out["summary"]["max_open_trades"] == 1
    table = out["report"]["tables"]["symbol"]
    assert [(row["key"], row["trades"]) for row in table] == [("CCC/BBB", 2), ("AAA/BBB", 0)]


def test_the_summary_prints_the_table_by_pair(app: Any, recorded: Path) -> None:
    r = invoke(app, "--symbols", "AAA/BBB,CCC/BBB", *ARGS)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "by pair" in lines
    assert any(line.startswith("market") and "AAA/BBB, CCC/BBB 1h (max 2 open)" in line
               for line in lines)  # fmt: skip
    rows = [line.split() for line in lines if line.startswith(("AAA/BBB", "CCC/BBB"))]
    assert [(row[0], row[1], row[2], row[4], row[5]) for row in rows] == [
        ("AAA/BBB", "2", "1/0/1", "5.63599", "03:00"),
        ("CCC/BBB", "2", "1/0/1", "5.63599", "03:00"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--symbols", "AAA/BBB,AAA/EUR"), "share their quote currency"),
        (("--symbols", "AAA/BBB,ZZZ/BBB"), "unknown symbol 'ZZZ/BBB'"),
        (("--symbols", "AAA/BBB,CCC/BBB", "--symbol", "AAA/BBB"), "one of --file, --symbol"),
        (("--symbols", "AAA/BBB,CCC/BBB", "--max-open-trades", "0"), "max-open-trades"),
    ],
)
def test_bad_pairs_are_a_clear_error(app: Any, recorded: Path, args: tuple[str, ...],
                                     message: str) -> None:  # fmt: skip
    r = invoke(app, *args, *ARGS)
    assert r.exit_code != 0 and message in r.output, r.output
