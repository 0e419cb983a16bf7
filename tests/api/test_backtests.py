"""Backtests over HTTP: validated up front (422), queued as a job (202), run by the job
runner with the live bot's code, read back with trades, metrics and the equity curve."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain.times import iso_ms
from app.jobs.job_runner import run_once
from app.services.backtests import BacktestSpec
from tests.engine.helpers import (
    FIXTURE_CLOSE,
    FIXTURE_OPEN,
    HOUR_MS,
    T0,
    Clock,
    install_replay,
    rows_from,
    uninstall_replay,
    write_candles,
)

REQUEST = {
    "strategy": "sma_crossover",
    "strategy_params": {"fast": 2, "slow": 3},
    "symbol": "AAA/BBB",
    "timeframe": "1h",
    "capital": "1000",
    "sizing": {"mode": "fixed", "stake": "100"},
}


@pytest.fixture
def fixture_data(app: Any, settings: Any, tmp_path: Path) -> Iterator[Path]:
    """Recorded candles = the hand-computed fixture (tests/engine/test_backtest.py)."""
    from config import use_settings

    directory = tmp_path / "candles"
    write_candles(directory, "TEST_AAA-BBB_1h.csv", rows_from(FIXTURE_OPEN, FIXTURE_CLOSE))
    dirs = {"candles_dir": str(directory), "candles_import_dir": str(tmp_path / "none")}
    use_settings(settings.model_copy(update=dirs))
    uninstall_replay()  # a replay feed built before would not see these candles
    yield directory
    use_settings(settings)
    uninstall_replay()  # nor should the next test's feed see only them


@pytest.fixture
def owner(make_user: Any, auth_headers: Any) -> dict[str, str]:
    return auth_headers(make_user())


def test_a_backtest_job_gives_the_hand_computed_trades(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/backtests", json=REQUEST, headers=owner)
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["state"] == "queued" and r.headers["Location"] == f"/api/backtests/{job['id']}"
    assert job["payload"]["strategy_params"] == {"fast": 2, "slow": 3}

    run_once()
    done = client.get(f"/api/backtests/{job['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert [t["pnl"] for t in result["trades"]] == ["-15.568608", "21.204598"]
    assert [t["entry_price"] for t in result["trades"]] == ["13", "14"]
    assert result["summary"]["final_equity"] == "1005.63599"
    assert result["summary"]["candles"] == 15 and result["summary"]["trades"] == 2
    assert result["metrics"]["win_rate"] == 0.5
    assert result["metrics"]["total_return"] == pytest.approx(0.00563599)
    curve = result["equity_curve"]
    assert len(curve["ts"]) == 15 and curve["ts"][0] == iso_ms(T0)
    assert curve["equity"][-1] == pytest.approx(1005.63599)
    report = result["report"]  # stored with the job, computed by app/domain/report.py
    totals = report["totals"]
    assert (totals["trades"], totals["wins"], totals["losses"]) == (2, 1, 1)
    assert totals["profit_total_abs"] == "5.63599"  # -15.568608 + 21.204598
    assert totals["profit_factor"] == pytest.approx(21.204598 / 15.568608)
    assert [t["profit_abs"] for t in report["round_trips"]] == ["-15.568608", "21.204598"]
    assert [r["key"] for r in report["tables"]["exit_reason"]] == ["exit_signal"]


def test_range_and_listing(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    ranged = {**REQUEST, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T10:00:00Z"}
    job_id = client.post("/api/backtests", json=ranged, headers=owner).get_json()["id"]
    run_once()
    result = client.get(f"/api/backtests/{job_id}", headers=owner).get_json()["result"]
    assert result["summary"]["candles"] == 10
    assert [t["exit_reason"] for t in result["trades"]] == ["exit_signal"]  # 2nd entry at 10
    page = client.get("/api/backtests", headers=owner).get_json()
    assert page["total"] == 1 and page["items"][0]["id"] == job_id
    assert "result" not in page["items"][0]


def test_idempotency_key_returns_the_same_job(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    headers = {**owner, "Idempotency-Key": "bt-1"}
    first = client.post("/api/backtests", json=REQUEST, headers=headers)
    again = client.post("/api/backtests", json=REQUEST, headers=headers)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = client.post("/api/backtests", json={**REQUEST, "capital": "500"}, headers=headers)
    assert other.status_code == 409


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"strategy": "moon"}, "unknown_strategy"),
        ({"strategy_params": {"fast": 3, "slow": 2}}, "invalid_strategy_params"),
        ({"symbol": "ZZZ/BBB"}, "unknown_symbol"),
        ({"timeframe": "1m"}, "unknown_timeframe"),
        ({"timeframe": "2x"}, "unknown_timeframe"),
        ({"capital": "-1"}, "validation_error"),
        ({"sizing": {"mode": "percent"}}, "invalid_sizing"),
        ({"capital": "99"}, "stake_above_capital"),  # the fixed stake is 100
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "validation_error"),
    ],
)
def test_invalid_requests_answer_422(client, owner, fixture_data, changes, code) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/backtests", json={**REQUEST, **changes}, headers=owner)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"]["code"] == code


def test_another_users_backtest_is_not_found(client, owner, fixture_data, make_user,
                                              auth_headers) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    job_id = client.post("/api/backtests", json=REQUEST, headers=owner).get_json()["id"]
    intruder = auth_headers(make_user())
    r = client.get(f"/api/backtests/{job_id}", headers=intruder)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "backtest_not_found"
    assert client.get("/api/backtests", headers=intruder).get_json()["total"] == 0


def test_a_coarser_timeframe_is_aggregated_from_the_recorded_one(client, owner,
                                                                  fixture_data) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    r = client.post("/api/backtests", json={**REQUEST, "timeframe": "2h",
                                            "strategy_params": {"fast": 2, "slow": 3}},
                    headers=owner)  # fmt: skip
    assert r.status_code == 202
    run_once()
    result = client.get(f"/api/backtests/{r.get_json()['id']}", headers=owner).get_json()["result"]
    assert result["summary"]["candles"] == 8 and result["summary"]["timeframe"] == "2h"
    assert Decimal(result["summary"]["capital"]) == Decimal("1000")


ANCHOR = T0 + 100 * 24 * HOUR_MS  # the replay shows the recording 100 days after its dates


@pytest.fixture
def replay_later(fixture_data: Path) -> Iterator[int]:
    """The replay feed over the fixture, anchored 100 days after it and 20 candles in."""
    install_replay(fixture_data, Clock(ANCHOR + 20 * HOUR_MS), anchor_ms=ANCHOR)
    yield ANCHOR
    uninstall_replay()


def test_a_range_in_the_replay_calendar_reads_the_replay_feed(client, owner, replay_later) -> None:  # type: ignore[no-untyped-def]
    anchor = replay_later
    ranged = {**REQUEST, "start": iso_ms(anchor), "end": iso_ms(anchor + 10 * HOUR_MS)}
    r = client.post("/api/backtests", json=ranged, headers=owner)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["payload"]["calendar"] == "replay"
    run_once()
    result = client.get(f"/api/backtests/{r.get_json()['id']}", headers=owner).get_json()["result"]
    assert result["summary"]["candles"] == 10 and result["summary"]["start"] == iso_ms(anchor)
    # the same prices as the recorded range of test_range_and_listing: the same trade
    assert [t["exit_reason"] for t in result["trades"]] == ["exit_signal"]
    assert result["trades"][0]["entry_time"].startswith(iso_ms(anchor)[:8])


def test_a_range_without_candles_answers_422_at_submission(client, owner, replay_later) -> None:  # type: ignore[no-untyped-def]
    anchor = replay_later
    future = {**REQUEST, "start": iso_ms(anchor + 30 * 24 * HOUR_MS)}
    r = client.post("/api/backtests", json=future, headers=owner)
    assert r.status_code == 422, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "no_candles" and error["details"][0]["loc"] == ["body", "start"]
    covered = "the recorded data covers 2026-01-01T00:00:00Z .. 2026-01-01T15:00:00Z"
    assert covered in error["message"]
    assert client.get("/api/backtests", headers=owner).get_json()["total"] == 0


def test_the_payload_range_is_iso_and_old_payloads_load(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    ranged = {**REQUEST, "start": "2026-01-01T02:00:00+02:00", "end": "2026-01-01T10:00:00Z"}
    payload = client.post("/api/backtests", json=ranged, headers=owner).get_json()["payload"]
    assert (payload["start"], payload["end"]) == ("2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z")
    assert "start_ms" not in payload
    spec = BacktestSpec.from_payload(payload)
    assert (spec.start_ms, spec.end_ms) == (T0, T0 + 10 * HOUR_MS)
    legacy = {**payload, "start": None, "end": None, "start_ms": T0, "end_ms": T0 + HOUR_MS}
    assert BacktestSpec.from_payload(legacy).end_ms == T0 + HOUR_MS
