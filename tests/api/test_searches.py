"""Parameter searches over HTTP: checked before anything runs (422), run as a job whose
trials are backtests of the same parameters, progress as events, cancellable."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from app.domain.times import iso_ms
from app.jobs.job_runner import run_once
from app.services import backtests
from app.store.db import session_scope
from app.store.models.events import Event
from tests.api import test_backtests as shared
from tests.engine.helpers import HOUR_MS

fixture_data = shared.fixture_data  # the hand-computed candles as the replay's recording
owner = shared.owner
replay_later = shared.replay_later

SEARCH = {
    "strategy": "sma_crossover",
    "symbol": "AAA/BBB",
    "timeframe": "1h",
    "capital": "1000",
    "sizing": {"mode": "fixed", "stake": "100"},
    "ranges": {"fast": {"low": 2, "high": 3}, "slow": {"low": 3, "high": 5}},
    "objective": "profit",
    "trials": 8,
    "timeout_seconds": 60,
    "seed": 7,
}


def _direct_return(params: dict[str, Any]) -> float:
    """A single backtest of `params`, outside the search."""
    spec = backtests.BacktestSpec.from_payload({
        "strategy": "sma_crossover", "strategy_params": params, "symbol": "AAA/BBB",
        "timeframe": "1h", "capital": "1000", "sizing": {"mode": "fixed", "stake": "100"},
    })  # fmt: skip
    spec = replace(spec, sizing={"mode": "fixed", "stake": Decimal(100)})
    result = backtests.execute(spec, backtests.load_candles(spec))
    return result.metrics.total_return


def test_a_search_runs_its_trials_as_backtests(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/api/searches", json=SEARCH, headers=owner)
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert r.headers["Location"] == f"/api/searches/{job['id']}"
    assert job["payload"]["ranges"] == SEARCH["ranges"]
    run_once()
    done = client.get(f"/api/searches/{job['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert result["trials_done"] == 8 and len(result["trials"]) == 8
    assert result["stopped_by"] == "trials" and result["summary"]["candles"] == 15
    for t in result["trials"]:
        assert 2 <= t["params"]["fast"] <= 3 and 3 <= t["params"]["slow"] <= 5
        if t["params"]["fast"] >= t["params"]["slow"]:
            assert t["state"] == "invalid" and t["value"] is None  # the strategy refuses it
        else:
            assert t["value"] == pytest.approx(_direct_return(t["params"]), abs=1e-15)
    best = result["best"]
    scored = [t["value"] for t in result["trials"] if t["value"] is not None]
    assert best["value"] == max(scored)
    assert best["value"] == pytest.approx(_direct_return(best["params"]), abs=1e-15)
    with session_scope() as session:
        events = session.scalars(select(Event).where(Event.type == "job_progress")).all()
    trial_events = [e.data for e in events if e.data.get("kind") == "search"
                    and "trials_done" in e.data]  # fmt: skip
    assert trial_events and trial_events[-1]["trials_done"] == 8
    assert trial_events[-1]["best_value"] == best["value"]
    listed = client.get("/api/searches", headers=owner).get_json()
    assert [s["id"] for s in listed["items"]] == [job["id"]]


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"ranges": {"fast": {"low": 1, "high": 5}}}, "ranges.fast", "invalid_range"),
        ({"ranges": {"fast": {"low": 5, "high": 501}}}, "ranges.fast", "invalid_range"),
        ({"ranges": {"fast": {"low": 6, "high": 5}}}, "ranges.fast", "invalid_range"),
        ({"ranges": {"fast": {"low": 2.5, "high": 5}}}, "ranges.fast", "invalid_range"),
        ({"ranges": {"speed": {"low": 2, "high": 5}}}, "ranges.speed", "invalid_range"),
        ({"ranges": {}}, "ranges", "invalid_range"),
        ({"trials": 0}, "trials", "validation_error"),
        ({"timeout_seconds": 0}, "timeout_seconds", "validation_error"),
        ({"objective": "luck"}, "objective", "unknown_objective"),
        ({"walk_forward": {"folds": 1}}, "walk_forward.folds", "validation_error"),
        ({"walk_forward": {"folds": 3, "in_sample": 0.99}}, "walk_forward.in_sample",
         "validation_error"),
        ({"strategy": "moon"}, "strategy", "unknown_strategy"),
        ({"symbols": ["AAA/BBB", "CCC/BBB"]}, "symbols", "validation_error"),  # and symbol
    ],
)
def test_bad_input_answers_422_before_anything_runs(client, owner, fixture_data, changes, field,
                                                    code) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    r = client.post("/api/searches", json={**SEARCH, **changes}, headers=owner)
    assert r.status_code == 422, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == code
    assert error["details"][0]["loc"][-1] == field or field in str(error["details"])
    assert client.get("/api/searches", headers=owner).get_json()["total"] == 0


def test_a_range_without_candles_answers_422(client, owner, replay_later) -> None:  # type: ignore[no-untyped-def]
    future = {**SEARCH, "start": iso_ms(replay_later + 30 * 24 * HOUR_MS)}
    r = client.post("/api/searches", json=future, headers=owner)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "no_candles"


def test_a_queued_search_is_cancelled_and_never_runs(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job = client.post("/api/searches", json=SEARCH, headers=owner).get_json()
    r = client.delete(f"/api/searches/{job['id']}", headers=owner)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    run_once()
    after = client.get(f"/api/searches/{job['id']}", headers=owner).get_json()
    assert after["state"] == "cancelled" and after["result"] is None
    again = client.delete(f"/api/searches/{job['id']}", headers=owner)
    assert again.status_code == 409


def test_a_finished_search_becomes_a_paper_bot(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job = client.post("/api/searches", json=SEARCH, headers=owner).get_json()
    early = client.post(f"/api/searches/{job['id']}/bot", json={}, headers=owner)
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "search_not_done"
    run_once()
    best = client.get(f"/api/searches/{job['id']}", headers=owner).get_json()["result"]["best"]
    r = client.post(f"/api/searches/{job['id']}/bot", json={"name": "found"}, headers=owner)
    assert r.status_code == 201, r.get_json()
    bot = r.get_json()
    assert bot["name"] == "found" and bot["status"] == "created" and bot["mode"] == "paper"
    assert bot["strategy"] == "sma_crossover" and bot["strategy_params"] == best["params"]
    assert (bot["symbol"], bot["timeframe"]) == ("AAA/BBB", "1h")
    assert Decimal(bot["capital"]) == 1000 and bot["sizing"]["mode"] == "fixed"
    listed = client.get("/api/bots", headers=owner).get_json()
    assert [b["id"] for b in listed["items"]] == [bot["id"]]


DOC = {
    "name": "rsi dip",
    "parameters": {"period": {"type": "int", "default": 14, "min": 2, "max": 50}},
    "indicators": {"rsi": {"ta": "RSI", "params": {"timeperiod": {"param": "period"}}}},
    "entry": {"op": "crosses_above", "args": [{"ref": "rsi"}, 30]},
    "exit": {"op": "crosses_above", "args": [{"ref": "rsi"}, 70]},
}


def test_a_document_is_searched_within_its_declared_ranges(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    doc = client.post("/api/strategies", json={"document": DOC}, headers=owner).get_json()
    request = {k: v for k, v in SEARCH.items() if k not in ("strategy", "ranges")}
    wide = {**request, "strategy_document_id": doc["id"],
            "ranges": {"period": {"low": 2, "high": 51}}}  # fmt: skip
    r = client.post("/api/searches", json=wide, headers=owner)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid_range"
    assert "[2, 50]" in r.get_json()["error"]["message"]
    ok = {**wide, "ranges": {"period": {"low": 2, "high": 4}}, "trials": 3}
    r = client.post("/api/searches", json=ok, headers=owner)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["payload"]["backtest"]["strategy_version"] == 1
    run_once()
    done = client.get(f"/api/searches/{r.get_json()['id']}", headers=owner).get_json()
    assert done["state"] == "succeeded" and done["result"]["trials_done"] == 3
    assert all(2 <= t["params"]["period"] <= 4 for t in done["result"]["trials"])


def test_a_walk_forward_search_runs_as_a_job(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    wf = {**SEARCH, "trials": 2, "walk_forward": {"folds": 2, "in_sample": 0.5}}
    r = client.post("/api/searches", json=wf, headers=owner)
    assert r.status_code == 202, r.get_json()
    run_once()
    done = client.get(f"/api/searches/{r.get_json()['id']}", headers=owner).get_json()
    # 15 candles: two folds of 7 and 8 are shorter than the 10 a window needs
    assert done["state"] == "failed" and "too few" in done["error"]
