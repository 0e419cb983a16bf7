"""Helpers for the trading tests: candle files written on the spot, a replay source on a
clock the test moves, bots and their ledgers (plain functions, no pytest fixtures)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

HOUR_MS = 3_600_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z: the default replay anchor, aligned to every tf

# The hand-computed fixture of tests/engine/test_backtest.py (sma_crossover fast=2 slow=3):
# entries signalled at candles 4 and 10, exits at 7 and 13; fills at the next open.
FIXTURE_CLOSE = [10, 10, 10, 10, 13, 16, 15, 11, 10, 12, 14, 18, 12, 8, 9]
FIXTURE_OPEN = [10, 10, 10, 10, 10, 13, 16, 15, 11, 10, 12, 14, 18, 12, 17]


def rows_from(
    opens: Sequence[float], closes: Sequence[float], *, t0: int = T0, tf_ms: int = HOUR_MS
) -> list[tuple[int, float, float, float, float, float]]:
    return [
        (t0 + i * tf_ms, o, max(o, c) + 0.5, min(o, c) - 0.5, c, 1.125)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


def write_candles(
    directory: Path, name: str, rows: Sequence[tuple[int, float, float, float, float, float]]
) -> Path:
    """A candle CSV (prices with 2 decimals, volumes with 3 (1.125): steps 0.01 and 0.001)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.3f}" for t, o, h, lo, c, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


class Clock:
    """Wall time (epoch seconds) that a test sets."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000.0


def install_replay(directory: Path, clock: Clock, anchor_ms: int = T0) -> Any:
    """Make `get_market_source("replay")` a replay feed over `directory` on `clock`; at the
    anchor the feed is at the first recorded candle, so at `anchor + (k+1) * tf` candles
    0..k are closed."""
    from app.market import registry
    from app.market.cache import clear_candle_cache
    from app.market.replay import ReplayMarketSource

    source = ReplayMarketSource([directory], anchor=anchor_ms, speed=1.0, now=clock)
    registry.close_market_sources()
    with registry._lock:
        registry._sources["replay"] = source
    clear_candle_cache()
    return source


def uninstall_replay() -> None:
    from app.market import registry
    from app.market.cache import clear_candle_cache

    registry.close_market_sources()
    clear_candle_cache()


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def make_bot(session: Any, user_id: int, **fields: Any) -> Any:
    """A started paper bot (ledger open) straight in the database."""
    from app.engine.ledger import open_bot_ledger
    from app.store.models import Bot

    values: dict[str, Any] = {
        "name": "t",
        "exchange": "replay",
        "symbol": "AAA/BBB",
        "timeframe": "1h",
        "strategy": "sma_crossover",
        "strategy_params": {"fast": 2, "slow": 3},
        "sizing": {"mode": "fixed", "stake": "100"},
        "capital": Decimal("1000"),
        "maker_fee": Decimal("0.001"),
        "taker_fee": Decimal("0.001"),
        "slippage_bps": Decimal("0"),
        "status": "running",
        "protections": {"max_drawdown": None, "max_losing_streak": None,
                        "daily_loss_limit": None, "stoploss_guard_trades": None},
    }  # fmt: skip
    values.update(fields)
    bot = Bot(user_id=user_id, **values)
    session.add(bot)
    session.flush()
    open_bot_ledger(session, bot)
    session.flush()
    return bot
