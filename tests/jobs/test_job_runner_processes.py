"""A worker killed mid-job (a real `flask worker` process, SIGKILL) leaves its job running
with a heartbeat that goes stale; another worker requeues it by the heartbeat rule, finishes
it, and the per-ticker results are stored exactly once.

The job is slow in an honest way: a bulk analysis of 500 tickers (recorded candles written
as 500 symbols of the replay source), with a short heartbeat and stale threshold."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from app.services.analysis import MAX_BULK_TICKERS, build_payload, submit_analysis
from app.store.db import session_scope
from app.store.models import Job
from app.store.models.analysis import AnalysisResult
from config import Settings
from tests.support.processes import ROOT, flask_command, service_env, stop_process

SOURCE = ROOT / "data" / "candles" / "BINANCE_ETH-BTC_5m.csv"


def write_symbols(directory: Path, count: int) -> list[str]:
    """`count` replay symbols (1h candles aggregated from a recorded 5m file, each scaled)."""
    data = np.loadtxt(SOURCE, delimiter=",", skiprows=1)
    hour = 3_600_000
    bucket = data[:, 0] - data[:, 0] % hour
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(data)]
    rows = np.column_stack(
        [
            bucket[starts],
            data[starts, 1],
            np.maximum.reduceat(data[:, 2], starts),
            np.minimum.reduceat(data[:, 3], starts),
            data[ends - 1, 4],
            np.add.reduceat(data[:, 5], starts),
        ]
    )[1:-1]  # whole hours only
    directory.mkdir(parents=True, exist_ok=True)
    symbols = []
    for i in range(count):
        scale = 1.0 + i / 1000
        lines = ["timestamp,open,high,low,close,volume"] + [
            f"{int(r[0])},{r[1] * scale:.8f},{r[2] * scale:.8f},{r[3] * scale:.8f},"
            f"{r[4] * scale:.8f},{r[5]:.3f}"
            for r in rows
        ]
        (directory / f"TEST_S{i:03d}-BTC_1h.csv").write_text("\n".join(lines) + "\n")
        symbols.append(f"S{i:03d}/BTC")
    return symbols


def _job(job_id: int) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)
        return job


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flask_command("worker"),
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def test_killed_worker_job_is_requeued_and_finished_once(
    settings: Settings, tmp_path: Path, make_user: Callable[..., Any]
) -> None:
    symbols = write_symbols(tmp_path / "candles", MAX_BULK_TICKERS)
    env = service_env(
        settings,
        SCHEDULER_ENABLED="true",
        TRADING_ENABLED="false",
        SELF_HEALING_ENABLED="false",
        CANDLES_IMPORT_DIR=str(tmp_path / "candles"),
        JOB_HEARTBEAT_SECONDS="0.2",
        JOB_LEASE_SECONDS="3",
        JOB_STALE_SECONDS="3",
    )
    user = make_user()
    with session_scope() as s:
        payload = build_payload(symbols, 10_000, limit=MAX_BULK_TICKERS)
        job_id = submit_analysis(s, user.id, payload).job.id

    first = _worker(env, tmp_path / "worker-a.log")
    second = None
    try:

        def mid_job() -> bool:
            job = _job(job_id)
            assert job.state in ("queued", "running"), (job.state, job.error)
            return job.state == "running" and 0 < job.progress < 1

        _wait(mid_job, 90, "worker A to be part-way through the job")
        first.kill()  # SIGKILL: no clean-up, no lease release
        first.wait(10)
        killed = _job(job_id)
        assert killed.state == "running" and killed.attempts == 1
        assert f":{first.pid}" in (killed.lease_owner or "")
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(AnalysisResult)) == 0

        second = _worker(env, tmp_path / "worker-b.log")
        _wait(
            lambda: _job(job_id).state not in ("queued", "running"),
            120,
            "worker B to finish the job",
        )
    finally:
        for proc in (first, second):
            if proc is not None:
                stop_process(proc)

    job = _job(job_id)
    assert (job.state, job.attempts, job.progress, job.lease_owner) == ("succeeded", 2, 1.0, None)
    assert job.result is not None and job.result["analysed"] == MAX_BULK_TICKERS
    with session_scope() as s:
        tickers = list(
            s.scalars(select(AnalysisResult.ticker).where(AnalysisResult.job_id == job_id))
        )
    assert sorted(tickers) == sorted(symbols)  # every ticker, each once
    log_b = (tmp_path / "worker-b.log").read_text()
    assert f"stale job {job_id} (analysis, attempt 1) -> queued" in log_b


def test_competing_workers_run_each_job_exactly_once(
    settings: Settings, tmp_path: Path, make_user: Callable[..., Any]
) -> None:
    env = service_env(
        settings, SCHEDULER_ENABLED="true", TRADING_ENABLED="false", SELF_HEALING_ENABLED="false"
    )
    user = make_user()
    with session_scope() as s:  # 30 small jobs (distinct capitals: distinct jobs)
        ids = [
            submit_analysis(s, user.id, build_payload(["ETH/BTC"], 100 + i)).job.id
            for i in range(30)
        ]
    workers = [_worker(env, tmp_path / f"worker-{i}.log") for i in range(3)]
    try:
        _wait(lambda: all(_job(i).state == "succeeded" for i in ids), 120, "all jobs to succeed")
    finally:
        for proc in workers:
            stop_process(proc)
    assert [_job(i).attempts for i in ids] == [1] * len(ids)  # each claimed once
    with session_scope() as s:
        per_job = dict(
            s.execute(
                select(AnalysisResult.job_id, func.count()).group_by(AnalysisResult.job_id)
            ).all()
        )
    assert per_job == {i: 1 for i in ids}
    ran = [
        line
        for i in range(3)
        for line in (tmp_path / f"worker-{i}.log").read_text().splitlines()
        if "(analysis) attempt 1 ran" in line
    ]
    assert len(ran) == len(ids)
