"""A background search's trials as claimed rows: each recorded once and fenced on its lease,
a lost trial replaced, signals reused by trials that differ only in exits, the time budget
and cancellation honoured (in this process; tests/jobs/test_search_trial_processes.py runs
the same on three worker processes)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.jobs.job_runner import run_once
from app.services import backtests, search_workers, searches, trial_leases
from app.services.jobs import cancel_job
from app.services.searches import submit_search
from app.store import search_trials as store
from app.store.base import utcnow
from app.store.db import session_scope
from app.store.models import Job
from app.store.models.searches import SearchTrial
from config import use_settings
from tests.api import test_backtests as shared
from tests.engine.helpers import uninstall_replay

fixture_data = shared.fixture_data
owner = shared.owner

SEARCH = {
    "strategy": "sma_crossover", "symbol": "AAA/BBB", "timeframe": "1h", "capital": "1000",
    "sizing": {"mode": "fixed", "stake": "100"}, "objective": "profit", "trials": 6,
    "timeout_seconds": 60, "seed": 7,
    "ranges": {"fast": {"low": 2, "high": 3}, "slow": {"low": 3, "high": 5}},
}  # fmt: skip

P = {"fast": 2, "slow": 5}
DOC = {
    "name": "rsi dip with exits",
    "parameters": {
        "period": {"type": "int", "default": 3, "min": 2, "max": 6},
        "sl": {"type": "float", "default": -0.05, "min": -0.5, "max": -0.001},
        "hold": {"type": "int", "default": 600, "min": 60, "max": 6000},
    },
    "indicators": {"rsi": {"ta": "RSI", "params": {"timeperiod": {"param": "period"}}}},
    "entry": {"op": "lt", "args": [{"ref": "rsi"}, 50]},
    "exit": {"op": "gt", "args": [{"ref": "rsi"}, 80]},
    "exits": {"stoploss": {"param": "sl"}, "max_hold_minutes": {"param": "hold"}},
}


def _submit(user_id: int, **changes: Any) -> int:
    with session_scope() as s:
        return int(submit_search(s, user_id, {**SEARCH, **changes}).job.id)


def _job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _rows(job_id: int) -> list[SearchTrial]:
    with session_scope() as s:
        rows = list(s.scalars(select(SearchTrial).where(SearchTrial.job_id == job_id)
                              .order_by(SearchTrial.number)))  # fmt: skip
        s.expunge_all()
        return rows


def _direct(job: Job, params: dict[str, Any]) -> float | None:
    """A single backtest of `params` (the search's other values), outside the search."""
    spec = backtests.BacktestSpec.from_payload(job.payload["backtest"])
    spec = replace(spec, strategy_params={**spec.strategy_params, **params})
    return backtests.execute(spec, backtests.load_candles(spec)).metrics.total_return


def test_each_trial_is_a_row_recorded_once(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _submit(make_user().id)
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    rows = _rows(job_id)
    assert [r.number for r in rows] == list(range(6))
    assert {r.state for r in rows} <= {"complete", "failed", "invalid"}
    assert sorted(r.seq for r in rows) == sorted({r.seq for r in rows})  # one seq each
    assert all(r.lease_owner is None for r in rows)
    evaluated = [r for r in rows if r.evaluated_by is not None]
    assert evaluated and all(r.evaluated_by == evaluated[0].evaluated_by for r in evaluated)
    by_number = {t["number"]: t for t in job.result["trials"]}
    for r in rows:
        assert by_number[r.number]["params"] == r.params and by_number[r.number]["value"] == r.value
    assert job.result["trials_done"] == 6 and job.result["trials_lost"] == 0


def test_a_lost_trial_is_replaced_and_never_counted(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _submit(make_user().id)
    with session_scope() as s:  # a worker that took trial 0 and died: its lease has run out
        store.open_run(s, job_id, now=utcnow(), timeout_seconds=60)
        dead = store.insert_running(s, job_id, 0, 0, owner="dead:1", now=utcnow(),
                                    lease_seconds=-1)  # fmt: skip
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    assert job.result["trials_done"] == 6 and job.result["trials_lost"] == 1
    rows = _rows(job_id)
    assert [(r.number, r.state) for r in rows][0] == (0, "lost")
    assert [r.number for r in rows if r.state != "lost"] == [1, 2, 3, 4, 5, 6]
    assert 0 not in [t["number"] for t in job.result["trials"]]
    with session_scope() as s:  # the dead worker's late result is refused: fenced on the lease
        late = store.record(s, dead, job_id, owner="dead:1", state="complete", value=1.0,
                            metrics=None, params=P, now=utcnow())  # fmt: skip
    assert late is False
    assert _rows(job_id)[0].state == "lost" and _rows(job_id)[0].value is None


def test_a_trial_is_recorded_only_under_its_own_lease(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _submit(make_user().id)
    with session_scope() as s:
        store.open_run(s, job_id, now=utcnow(), timeout_seconds=60)
        tid = store.insert_running(s, job_id, 0, 0, owner="a:1",
                                   now=utcnow(), lease_seconds=60)  # fmt: skip
    with session_scope() as s:
        assert not store.record(s, tid, job_id, owner="b:2", state="complete", value=0.5,
                                metrics=None, params=P, now=utcnow())  # fmt: skip
    with session_scope() as s:
        assert store.record(s, tid, job_id, owner="a:1", state="complete", value=0.25,
                            metrics=None, params=P, now=utcnow())  # fmt: skip
    with session_scope() as s:
        assert not store.record(s, tid, job_id, owner="a:1", state="complete", value=0.75,
                                metrics=None, params=P, now=utcnow())  # fmt: skip
    (row,) = _rows(job_id)
    assert (row.state, row.value, row.evaluated_by) == ("complete", 0.25, "a:1")


def _document_search(client: Any, owner: dict[str, str], ranges: dict[str, Any]) -> int:
    doc = client.post("/api/strategies", json={"document": DOC}, headers=owner).get_json()
    request = {k: v for k, v in SEARCH.items() if k not in ("strategy", "ranges")}
    wanted = {**request, "strategy_document_id": doc["id"], "ranges": ranges, "trials": 12}
    r = client.post("/api/searches", json=wanted, headers=owner)
    assert r.status_code == 202, r.get_json()
    return int(r.get_json()["id"])


def test_exit_only_parameters_reuse_the_signals(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _document_search(client, owner, {"sl": {"low": -0.3, "high": -0.001},
                                              "hold": {"low": 60, "high": 6000}})  # fmt: skip
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    trials = job.result["trials"]
    assert len(trials) == 12 and len({(t["params"]["sl"], t["params"]["hold"]) for t in trials}) > 1
    prepared = search_workers.prepared(job_id)
    assert prepared is not None
    assert prepared.runner.strategy.computed == 1  # twelve trials, one signal evaluation
    values = set()
    for t in trials:
        assert t["value"] == pytest.approx(_direct(job, t["params"]), abs=1e-15)
        values.add(t["value"])
    assert len(values) > 1  # the exits changed the results, not the signals


def test_signal_parameters_are_evaluated_once_per_value(client, owner, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _document_search(client, owner, {"period": {"low": 2, "high": 4},
                                              "sl": {"low": -0.3, "high": -0.001}})  # fmt: skip
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    periods = {t["params"]["period"] for t in job.result["trials"]}
    prepared = search_workers.prepared(job_id)
    assert prepared is not None and prepared.runner.strategy.computed == len(periods)
    for t in job.result["trials"]:
        assert t["value"] == pytest.approx(_direct(job, t["params"]), abs=1e-15)


def test_the_time_budget_ends_the_search(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _submit(make_user().id, timeout_seconds=0.001, trials=50)
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    assert job.result["stopped_by"] == "time" and job.result["trials_done"] < 50


def test_a_running_search_is_cancelled_between_trials(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    user = make_user()
    wide = {"fast": {"low": 2, "high": 6}, "slow": {"low": 3, "high": 12}}
    job_id = _submit(user.id, trials=5000, ranges=wide)
    runner = threading.Thread(target=run_once, daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while len(_rows(job_id)) < 5:
        assert time.monotonic() < deadline, "the search did not start"
        time.sleep(0.02)
    with session_scope() as s:
        _, outcome = cancel_job(s, user.id, job_id)
    assert outcome == "cancel_requested"
    runner.join(60)
    assert not runner.is_alive()
    job = _job(job_id)
    assert (job.state, job.result) == ("cancelled", None)
    taken = len(_rows(job_id))
    assert taken < 5000
    with session_scope() as s:
        running = s.scalar(select(func.count()).select_from(SearchTrial)
                           .where(SearchTrial.state == "running"))  # fmt: skip
    assert running == 0


def test_a_trial_being_evaluated_keeps_its_lease(make_user, fixture_data) -> None:  # type: ignore[no-untyped-def]
    job_id = _submit(make_user().id)
    leases = trial_leases.Leases(seconds=0.4, renew_every=0.05)
    with session_scope() as s:
        store.open_run(s, job_id, now=utcnow(), timeout_seconds=60)
        held = store.insert_running(s, job_id, 0, 0, owner="me:1",
                                    now=utcnow(), lease_seconds=leases.seconds)  # fmt: skip
        gone = store.insert_running(s, job_id, 0, 1, owner="me:1",
                                    now=utcnow(), lease_seconds=leases.seconds)  # fmt: skip
    lost = 0
    with trial_leases.lease_keeper.holding(held, "me:1", leases):
        until = time.monotonic() + 1.2  # three leases long: only the renewals keep it
        while time.monotonic() < until:  # other workers look for lost trials all the while
            with session_scope() as s:
                lost += store.expire_lost(s, job_id, now=utcnow())
            time.sleep(0.05)
    assert lost == 1
    states = {r.id: r.state for r in _rows(job_id)}
    assert states == {held: "running", gone: "lost"}


@pytest.fixture
def recorded_eth(app, settings, tmp_path):  # type: ignore[no-untyped-def]
    """The shipped ETH/BTC 5m recording as the replay's candles."""
    dirs = {"candles_dir": str(Path(__file__).resolve().parents[2] / "data" / "candles"),
            "candles_import_dir": str(tmp_path / "none")}  # fmt: skip
    use_settings(settings.model_copy(update=dirs))
    uninstall_replay()
    yield
    use_settings(settings)
    uninstall_replay()


ETH = {**SEARCH, "symbol": "ETH/BTC", "timeframe": "5m", "capital": "1", "objective": "sharpe",
       "sizing": {"mode": "fixed", "stake": "0.1"}, "trials": 10, "seed": 5,
       "ranges": {"fast": {"low": 5, "high": 20}, "slow": {"low": 20, "high": 60}}}  # fmt: skip


@pytest.mark.parametrize("walk_forward", [None, {"folds": 3, "in_sample": 0.75}])
def test_one_worker_runs_the_trials_flask_search_runs(make_user, recorded_eth,
                                                      walk_forward) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    request = ETH if walk_forward is None else {**ETH, "trials": 4, "walk_forward": walk_forward}
    with session_scope() as s:
        job_id = int(submit_search(s, make_user().id, request).job.id)
    run_once()
    job = _job(job_id)
    assert job.state == "succeeded", job.error
    spec = searches.SearchSpec.from_payload(job.payload)
    data = backtests.load_candles(spec.backtest)
    if walk_forward is None:
        here = searches.run_search(spec, data)
        assert job.result["trials"] == here["trials"] and job.result["best"] == here["best"]
        assert job.result["trials_done"] == 10
    else:
        here = searches.run_walk_forward(spec, data)
        assert job.result["folds"] == here["folds"]
        assert job.result["walk_forward"] == here["walk_forward"]
        assert job.result["trials_done"] == 12 and len(_rows(job_id)) == 12
        assert sorted({r.fold for r in _rows(job_id)}) == [0, 1, 2]
