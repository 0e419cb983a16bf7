"""One search shared by three real `flask worker` processes on Postgres: every worker takes
trials, each trial number is evaluated and recorded exactly once, and a worker SIGKILLed in
the middle of a trial loses that trial only: its lease runs out, the trial is marked lost and
replaced, and the search ends with exactly the trials it asked for.

To kill a worker mid-trial for certain, the test freezes it (SIGSTOP), looks in the database
for a trial it holds, and only then kills it (otherwise it lets it go on and tries again)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.services.searches import submit_search
from app.store.db import session_scope
from app.store.models import Job
from app.store.models.events import Event
from app.store.models.searches import SearchTrial
from config import Settings
from tests.support.databases import db_backend
from tests.support.processes import ROOT, flask_command, service_env, stop_process

pytestmark = pytest.mark.skipif(
    db_backend() == "sqlite",
    reason="on SQLite (the embedded default) a search runs in its coordinator's process",
)

TRIALS = 240
SEARCH = {
    "strategy": "sma_crossover", "symbol": "ETH/BTC", "timeframe": "5m", "capital": "1",
    "sizing": {"mode": "fixed", "stake": "0.1"}, "objective": "sharpe", "trials": TRIALS,
    "timeout_seconds": 600, "seed": 11,
    "ranges": {"fast": {"low": 5, "high": 60}, "slow": {"low": 20, "high": 300}},
}  # fmt: skip
RECORDED = re.compile(r"search (\d+) fold 0 trial (\d+) recorded by (\S+)")


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _rows(job_id: int) -> list[SearchTrial]:
    with session_scope() as s:
        rows = list(s.scalars(select(SearchTrial).where(SearchTrial.job_id == job_id)))
        s.expunge_all()
        return rows


def _job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _pid(owner: str | None) -> int | None:
    return None if owner is None else int(owner.rsplit(":", 1)[1])


def _progress(job_id: int) -> list[dict[str, Any]]:
    """The search's `job_progress` events with a trial count, in the order they were written."""
    with session_scope() as s:
        events = s.scalars(select(Event).where(Event.type == "job_progress").order_by(Event.id))
        return [e.data for e in events
                if e.data.get("job_id") == job_id and "trials_done" in e.data]  # fmt: skip


def _progress_counts(job_id: int) -> list[int]:
    return [e["trials_done"] for e in _progress(job_id)]


def _kill_mid_trial(job_id: int, workers: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """SIGKILL a worker while it holds a trial; (its pid, the trial's number)."""
    by_pid = {w.pid: w for w in workers}
    for _ in range(200):
        for victim in workers:
            os.kill(victim.pid, signal.SIGSTOP)
            held = [r for r in _rows(job_id)
                    if r.state == "running" and _pid(r.lease_owner) == victim.pid]  # fmt: skip
            if held:
                by_pid[victim.pid].kill()
                by_pid[victim.pid].wait(10)
                return victim.pid, held[0].number
            os.kill(victim.pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("no worker was ever caught holding a trial")


def test_three_workers_share_a_search_and_a_killed_one_loses_one_trial(
    settings: Settings, tmp_path: Path, make_user: Callable[..., Any]
) -> None:
    env = service_env(
        settings, SCHEDULER_ENABLED="true", TRADING_ENABLED="false", SELF_HEALING_ENABLED="false",
        CANDLES_DIR=str(ROOT / "data" / "candles"), CANDLES_IMPORT_DIR=str(tmp_path / "none"),
        JOB_HEARTBEAT_SECONDS="0.2", JOB_LEASE_SECONDS="3", JOB_STALE_SECONDS="3",
    )  # fmt: skip
    user = make_user()
    with session_scope() as s:
        job_id = int(submit_search(s, user.id, SEARCH).job.id)
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    workers = [
        subprocess.Popen(flask_command("worker"), cwd=ROOT, env=env, stdout=log.open("wb"),
                         stderr=subprocess.STDOUT)  # fmt: skip
        for log in logs
    ]
    try:
        pids = {w.pid for w in workers}

        def all_three_took_trials() -> bool:
            assert _job(job_id).state in ("queued", "running")
            return {_pid(r.evaluated_by) for r in _rows(job_id)} >= pids

        _wait(all_three_took_trials, 120, "every worker to record a trial")
        _wait(lambda: any(0 < c < TRIALS for c in _progress_counts(job_id)), 60,
              "progress to stream while the workers run")  # fmt: skip
        killed, lost_number = _kill_mid_trial(job_id, workers)
        _wait(lambda: _job(job_id).state not in ("queued", "running"), 240, "the search to end")
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                stop_process(proc)

    job = _job(job_id)
    assert job.state == "succeeded", job.error
    assert job.result["trials_done"] == TRIALS and job.result["stopped_by"] == "trials"
    assert job.result["trials_lost"] == 1
    rows = _rows(job_id)
    lost = [r for r in rows if r.state == "lost"]
    assert [(r.number, _pid(r.evaluated_by)) for r in lost] == [(lost_number, None)]
    done = [r for r in rows if r.state != "lost"]
    assert len(done) == TRIALS and all(r.state in ("complete", "failed", "invalid") for r in done)
    numbers = sorted(r.number for r in rows)
    assert numbers == list(range(TRIALS + 1))  # each number once: the lost one and its stand-in
    evaluated = {r.number: _pid(r.evaluated_by) for r in done if r.evaluated_by is not None}
    assert set(evaluated.values()) == pids  # every worker, the killed one before it died
    recorded = [
        (int(m[2]), int(m[3].rsplit(":", 1)[1]))
        for log in logs
        for m in RECORDED.finditer(log.read_text())
        if int(m[1]) == job_id
    ]
    assert len({n for n, _ in recorded}) == len(recorded)  # no trial recorded twice
    assert dict(recorded).items() <= evaluated.items()  # by the worker that evaluated it
    unlogged = set(evaluated) - {n for n, _ in recorded}  # killed between commit and log line
    assert len(unlogged) <= 1 and all(evaluated[n] == killed for n in unlogged)
    assert lost_number not in evaluated
    assert killed in pids
    best = job.result["best"]
    assert best is not None and best["value"] == max(r.value for r in done if r.value is not None)
    events = _progress(job_id)  # streamed while the workers ran, then the final count
    counts = [e["trials_done"] for e in events]
    assert counts == sorted(counts) and counts[-1] == TRIALS
    assert any(0 < c < TRIALS for c in counts)
    assert events[-1]["best_value"] == best["value"]
