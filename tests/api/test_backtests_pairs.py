"""Several pairs over HTTP: `symbols` and `max_open_trades` validated before anything is
queued, stored with the job, and run from one wallet with a table by pair in the report
(the figures are those hand-computed in tests/engine/test_pairs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.jobs.job_runner import run_once
from tests.domain.test_entry_tags import TAGGED
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    rows_from,
    uninstall_replay,
    write_candles,
)

REQUEST = {
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 2, "slow": 3},
    "symbols": ["AAA/BBB", "CCC/BBB"],
    "timeframe": "1h",
    "capital": "1000",
    "sizing": {"mode": "fixed", "stake": "100"},
}


@pytest.fixture
def pairs_data(app: Any, settings: Any, tmp_path: Path) -> Iterator[Path]:
    from config import use_settings

    directory = tmp_path / "candles"
    rows = rows_from(FIXTURE_OPEN, FIXTURE_CLOSE)
    shifted = rows_from([10.0] * 3 + FIXTURE_OPEN[:-4], [10.0] * 3 + FIXTURE_CLOSE[:-4])
    for name, data in (("AAA-BBB", rows), ("CCC-BBB", rows), ("SSS-BBB", shifted),
                       ("AAA-EUR", rows)):  # fmt: skip
        write_candles(directory, f"TEST_{name}_1h.csv", data)
    dirs = {"candles_dir": str(directory), "candles_import_dir": str(tmp_path / "none")}
    use_settings(settings.model_copy(update=dirs))
    uninstall_replay()
    yield directory
    use_settings(settings)
    uninstall_replay()


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


def _run(client: Any, owner: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/backtests", json=body, headers=owner)
    assert r.status_code == 202, r.get_json()
    run_once()
    done = client.get(f"/api/backtests/{r.get_json()['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    return done


def test_two_pairs_share_one_wallet_with_a_table_by_pair(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    done = _run(client, owner, {**REQUEST, "max_open_trades": 2})
    assert done["payload"]["symbols"] == ["AAA/BBB", "CCC/BBB"]
    assert done["payload"]["max_open_trades"] == 2 and done["payload"]["symbol"] == "AAA/BBB"
    result = done["result"]
    assert [(t["symbol"], t["pnl"]) for t in result["trades"]] == [
        ("AAA/BBB", "-15.568608"), ("CCC/BBB", "-15.568608"),
        ("AAA/BBB", "21.204598"), ("CCC/BBB", "21.204598"),
    ]  # fmt: skip
    summary = result["summary"]
    assert summary["final_equity"] == "1011.27198" and summary["trades"] == 4
    assert [p["symbol"] for p in summary["pairs"]] == ["AAA/BBB", "CCC/BBB"]
    table = result["report"]["tables"]["symbol"]
    assert [r["key"] for r in table] == ["AAA/BBB", "CCC/BBB"]
    for row in table:  # per pair: 1 loss then 1 win of 3 h each
        assert (row["trades"], row["wins"], row["draws"], row["losses"]) == (2, 1, 0, 1)
        assert row["profit_abs"] == "5.63599" and row["duration_mean_s"] == 3 * 3600
        assert row["profit_total"] == pytest.approx(5.63599 / 1000)
    totals = result["report"]["totals"]
    assert totals["trades"] == 4 and totals["profit_total_abs"] == "11.27198"
    assert result["report"]["round_trips"][0]["symbol"] == "AAA/BBB"


def test_max_open_trades_defaults_to_one_per_pair_and_refuses_beyond(client, owner,
                                                                    pairs_data) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    default = _run(client, owner, REQUEST)
    assert default["payload"]["max_open_trades"] == 2
    one = _run(client, owner, {**REQUEST, "symbols": ["CCC/BBB", "AAA/BBB"],
                               "max_open_trades": 1})  # fmt: skip
    result = one["result"]
    assert {t["symbol"] for t in result["trades"]} == {"CCC/BBB"}
    assert [(s["symbol"], s["reason"]) for s in result["skipped_entries"]] == [
        ("AAA/BBB", "max_open_trades (1) reached")] * 2  # fmt: skip
    table = result["report"]["tables"]["symbol"]  # the pair that never traded is listed
    assert [(r["key"], r["trades"]) for r in table] == [("CCC/BBB", 2), ("AAA/BBB", 0)]


def test_a_one_element_list_is_the_single_pair_backtest(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    listed = _run(client, owner, {**REQUEST, "symbols": ["AAA/BBB"]})
    single = _run(client, owner, {**{k: v for k, v in REQUEST.items() if k != "symbols"},
                                  "symbol": "AAA/BBB"})  # fmt: skip
    assert listed["payload"] == single["payload"] and "symbols" not in single["payload"]
    assert listed["result"]["trades"] == single["result"]["trades"]
    assert listed["result"]["summary"]["final_equity"] == "1005.63599"


@pytest.mark.parametrize(
    ("changes", "code", "loc"),
    [
        ({"symbols": ["AAA/BBB", "AAA/EUR"]}, "mixed_quote_currencies", ["body", "symbols"]),
        ({"symbols": ["AAA/BBB", "ZZZ/BBB"]}, "unknown_symbol", ["body", "symbols", 1]),
        ({"symbols": ["AAA/BBB", "AAA/BBB"]}, "validation_error", ["body", "symbols", 1]),
        ({"symbols": []}, "validation_error", ["body", "symbols"]),
        ({"symbol": "AAA/BBB"}, "validation_error", ["body", "symbols"]),
        ({"max_open_trades": 0}, "validation_error", ["body", "max_open_trades"]),
        ({"symbols": "AAA/BBB"}, "validation_error", ["body", "symbols"]),
        # SSS/BBB's 14 candles end an hour before AAA's 15th
        ({"symbols": ["AAA/BBB", "SSS/BBB"], "start": "2026-01-01T14:00:00Z"}, "no_candles",
         ["body", "symbols", 1]),
    ],
)
def test_bad_pairs_answer_422_before_anything_is_queued(client, owner, pairs_data, changes,
                                                        code, loc) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    r = client.post("/api/backtests", json={**REQUEST, **changes}, headers=owner)
    assert r.status_code == 422, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == code and error["details"][0]["loc"] == loc, error
    assert client.get("/api/backtests", headers=owner).get_json()["total"] == 0


def test_neither_symbol_nor_symbols_is_refused(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    body = {k: v for k, v in REQUEST.items() if k != "symbols"}
    r = client.post("/api/backtests", json=body, headers=owner)
    assert r.status_code == 422 and "exactly one of symbol" in r.get_json()["error"]["message"]


def test_a_tagged_document_fills_the_table_by_entry_tag(client, owner, pairs_data) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/strategies", json={"document": TAGGED}, headers=owner)
    assert r.status_code == 201, r.get_json()
    doc_id = r.get_json()["id"]
    body = {k: v for k, v in REQUEST.items() if k not in ("strategy", "strategy_params")}
    body |= {"strategy_document_id": doc_id, "max_open_trades": 2}
    r = client.post("/api/backtests", json=body, headers=owner)
    assert r.status_code == 202, r.get_json()
    run_once()
    done = client.get(f"/api/backtests/{r.get_json()['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert [(t["symbol"], t["entry_tag"]) for t in result["trades"]] == [
        ("AAA/BBB", "cheap_cross"), ("CCC/BBB", "cheap_cross"),
        ("AAA/BBB", "cross"), ("CCC/BBB", "cross"),
    ]  # fmt: skip
    rows = {row["key"]: row for row in result["report"]["tables"]["entry_tag"]}
    assert (rows["cheap_cross"]["trades"], rows["cheap_cross"]["losses"]) == (2, 2)
    assert (rows["cross"]["trades"], rows["cross"]["wins"]) == (2, 2)
    assert rows["cross"]["profit_abs"] == "42.409196"
