"""Ten starts and stops of a real gunicorn (2 workers, scheduler on, bots ticking): every run
starts exactly one scheduler per worker, drains on SIGTERM within the graceful timeout, and
leaves no traceback, un-awaited coroutine, unclosed session or failed shutdown in the logs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.support.processes import gunicorn, service_env

RUNS = 10
WORKERS = 2
SPEED = "300"  # 5m replay candles close every second, so the bots tick during the loop
FORBIDDEN = ("Traceback", "never awaited", "Unclosed", "SchedulerNotRunning", "shutdown failed")


@pytest.fixture
def ticking_bots(app, settings, make_user):
    """A few running paper bots, scheduled on the grid the workers use."""
    from app.services.bots import change_status, create_bot
    from app.store.db import session_scope
    from config import use_settings

    use_settings(settings.model_copy(update={"replay_speed": float(SPEED)}))
    try:
        user = make_user()
        with session_scope() as db:
            for i in range(3):
                bot = create_bot(
                    db,
                    user.id,
                    {
                        "name": f"loop {i}",
                        "symbol": "ETH/BTC",
                        "timeframe": "5m",
                        "strategy": "sma_crossover",
                        "capital": "1",
                    },
                )
                change_status(db, user.id, bot.id, "start")
    finally:
        use_settings(settings)


def _wait_for_log(path: Path, pattern: str, count: int, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if len(re.findall(pattern, text)) >= count or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_ten_restarts_are_clean_with_one_scheduler_per_worker(
    settings, ticking_bots, tmp_path
) -> None:
    from sqlalchemy import func, select

    from app.store.db import session_scope
    from app.store.models.trading import BotTick

    def ticks() -> int:
        with session_scope() as db:
            return int(db.scalar(select(func.count()).select_from(BotTick)) or 0)

    env = service_env(settings, SCHEDULER_ENABLED="true", REPLAY_SPEED=SPEED)
    for run in range(RUNS):
        log_path = tmp_path / f"gunicorn-{run}.log"
        before = ticks()
        with gunicorn(env, workers=WORKERS, threads=4, log_path=log_path) as (base, proc):
            _wait_for_log(log_path, r"started self_healing", WORKERS)
            assert requests.get(base + "/api/health/ready", timeout=10).status_code == 200
            deadline = time.monotonic() + 20
            while ticks() == before and time.monotonic() < deadline:  # stop with bots ticking
                time.sleep(0.2)
            assert ticks() > before, f"run {run}: the bots did not tick"
        assert proc.returncode == 0, f"run {run}: gunicorn exited with {proc.returncode}"
        text = log_path.read_text(errors="replace")
        for word in FORBIDDEN:
            assert word not in text, f"run {run}: {word!r} in the log:\n{text[-4000:]}"
        booted = re.findall(r"Booting worker with pid: (\d+)", text)
        schedulers = re.findall(r"scheduler started in pid (\d+)", text)
        assert len(booted) == WORKERS, text[-4000:]
        assert sorted(schedulers) == sorted(booted), f"run {run}: one scheduler per worker"
        assert len(re.findall(r"scheduler stopped in pid \d+", text)) == WORKERS
        assert len(re.findall(r"stopped database", text)) == WORKERS  # the whole stop ran
        assert not re.search(r"stop of \w+ (timed out|raised)", text), text[-4000:]
