"""A trading fleet for multi-process fault tests: paper bots that trade every few candles on a
fast replay clock, ticked by three real processes (a 2-worker gunicorn and a `flask worker`),
plus the clock arithmetic to act just after a candle boundary."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from app.domain.times import from_ms, to_ms
from app.engine.tick import TickGrid
from app.market.replay_clock import parse_anchor
from app.store.db import session_scope
from app.store.locking import in_id_order
from app.store.models import Bot
from app.store.models.ledger import Order
from app.store.models.trading import BotTick
from tests.support.processes import ROOT, flask_command, gunicorn, stop_process

SYMBOLS = ("ETH/BTC", "LTC/BTC", "XMR/BTC")
PROTECTIONS_OFF = {
    "max_drawdown": None,
    "max_losing_streak": None,
    "daily_loss_limit": None,
    "stoploss_guard_trades": None,
}


def create_fleet(settings: Any, owners: list[Any], per_owner: int, speed: float) -> list[int]:
    """Running bots that cross their averages often (SMA 2/3) and stake 10% per entry."""
    from app.services.bots import change_status, create_bot
    from config import use_settings

    use_settings(settings.model_copy(update={"replay_speed": speed}))
    try:
        ids = []
        with session_scope() as db:
            for owner in owners:
                for i in range(per_owner):
                    bot = create_bot(
                        db,
                        owner.id,
                        {
                            "name": f"bot {i}",
                            "symbol": SYMBOLS[i % len(SYMBOLS)],
                            "timeframe": "5m",
                            "strategy": "sma_crossover",
                            "strategy_params": {"fast": 2, "slow": 3},
                            "sizing": {"mode": "percent", "percent": 10},
                            "protections": PROTECTIONS_OFF,
                            "capital": "1",
                        },
                    )
                    change_status(db, owner.id, bot.id, "start")
                    ids.append(bot.id)
        return ids
    finally:
        use_settings(settings)


def grid(settings: Any, speed: float) -> TickGrid:
    """The 5m tick grid of the replay market at `speed`."""
    return TickGrid(parse_anchor(settings.replay_anchor), Fraction(300_000) / Fraction(str(speed)),
                    300_000)  # fmt: skip


def sleep_until_after_boundary(g: TickGrid, offset_s: float) -> float:
    """Sleep until `offset_s` after the next boundary; returns that boundary (epoch s)."""
    boundary = g.next_after(to_ms(datetime.now(UTC))) / 1000
    time.sleep(max(boundary + offset_s - time.time(), 0))
    return boundary


def resume_fleet(bot_ids: list[int], g: TickGrid) -> None:
    """Every bot running again from the next boundary (what owners do one by one after a
    review, done here in one statement)."""
    nxt = from_ms(g.next_after(to_ms(datetime.now(UTC))))
    with session_scope() as db:
        db.execute(
            update(Bot)
            .where(in_id_order(db, Bot, Bot.id.in_(bot_ids)))
            .values(status="running", pause_reason=None, next_tick_at=nxt)
        )


def order_ids() -> dict[int, datetime]:
    """Every order's id and `created_at` (its tick's start)."""
    with session_scope() as db:
        return dict(db.execute(select(Order.id, Order.created_at)).tuples().all())


def ticks_between(start: float, end: float) -> int:
    with session_scope() as db:
        return int(
            db.scalar(
                select(func.count())
                .select_from(BotTick)
                .where(BotTick.started_at >= from_ms(int(start * 1000)),
                       BotTick.started_at < from_ms(int(end * 1000)))
            )  # fmt: skip
            or 0
        )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def three_processes(env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """A 2-worker gunicorn and a `flask worker`, all ticking bots; yields the base URL."""
    worker_log = open(log_dir / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        flask_command("worker"), cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT
    )
    try:
        with gunicorn(env, workers=2, threads=4, log_path=log_dir / "gunicorn.log",
                      ready_timeout=120) as (base, _):
            yield base
            assert worker.poll() is None, (log_dir / "worker.log").read_text()[-3000:]
    finally:
        stop_process(worker)
        worker_log.close()


def trouble_in_logs(log_dir: Path, limit: int = 40) -> str:
    """The warning and error lines the processes logged (for a failing assertion to show
    what the workers saw, e.g. a tick that failed)."""
    trouble = (" WARNING ", " ERROR ", "Traceback")
    routine = ("tradewind.alerts", "tradewind.config")
    lines = [
        f"{log.name}: {line[:300]}"
        for log in sorted(log_dir.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if any(t in line for t in trouble) and not any(r in line for r in routine)
    ]
    return "\n".join(lines[-limit:]) or "(no warning or error logged)"

