"""The trade report a trader decides from: round trips, totals and breakdown tables.

Computed once here, from what any run produces (its closed round trips, its equity curve and
the market's closes), so a backtest and a live bot report the same figures the same way.
The ratios that depend on the curve (Sharpe, Sortino, drawdown, exposure, profit factor)
come from `app.domain.metrics`; this module adds the trade statistics freqtrade prints.
Every figure is defined in docs/backtesting.md ("The report"); one that cannot be computed
is None with its reason in `unavailable`, never infinite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from app.domain.metrics import (
    DAYS_PER_YEAR,
    MIN_DAILY_RETURNS,
    ClosedTrade,
    PerformanceMetrics,
    compute_metrics,
)
from app.domain.numbers import decimal_text
from app.domain.times import from_ms, iso_ms

__all__ = [
    "RoundTrip", "Drawdown", "build_report", "calmar", "drawdown_detail", "pair_table", "PERIODS",
]  # fmt: skip

DAY_MS = 86_400_000
PERIODS = ("day", "week", "month")
NO_TAG = "(none)"


@dataclass(frozen=True)
class RoundTrip:
    """One closed trade: bought `amount` at `entry_price`, sold it at `exit_price`.

    `pnl` is net of both fees; `cost_basis` is what the entry cost, its fee included, so
    `pnl / cost_basis` is freqtrade's profit_ratio.
    """

    entry_ts: int
    exit_ts: int
    entry_price: Decimal
    exit_price: Decimal
    amount: Decimal
    cost_basis: Decimal
    pnl: Decimal
    exit_reason: str
    entry_tag: str | None = None
    symbol: str | None = None

    @property
    def profit_ratio(self) -> float:
        return float(self.pnl / self.cost_basis) if self.cost_basis else 0.0

    @property
    def duration_s(self) -> int:
        return (self.exit_ts - self.entry_ts) // 1000

    def to_dict(self) -> dict[str, Any]:
        out = {
            "entry_time": iso_ms(self.entry_ts),
            "exit_time": iso_ms(self.exit_ts),
            "entry_price": decimal_text(self.entry_price),
            "exit_price": decimal_text(self.exit_price),
            "amount": decimal_text(self.amount),
            "duration_s": self.duration_s,
            "profit_abs": decimal_text(self.pnl),
            "profit_ratio": round(self.profit_ratio, 10),
            "entry_tag": self.entry_tag,
            "exit_reason": self.exit_reason,
        }
        if self.symbol is not None:
            out["symbol"] = self.symbol
        return out


@dataclass(frozen=True)
class Drawdown:
    """The largest fall of the curve from a running peak."""

    abs: float  # peak equity - trough equity (quote currency)
    ratio: float  # that fall over the peak (0.25 = 25 %)
    start_ts: int | None  # the last time the equity stood at the peak before the trough
    trough_ts: int | None
    recovery_ts: int | None  # the first point back at or above the peak; None: never
    duration_s: int | None  # start -> recovery; None when it never recovered

    def to_dict(self) -> dict[str, Any]:
        return {
            "abs": self.abs,
            "ratio": self.ratio,
            "start": iso_ms(self.start_ts),
            "trough": iso_ms(self.trough_ts),
            "recovery": iso_ms(self.recovery_ts),
            "recovered": self.recovery_ts is not None or self.start_ts is None,
            "duration_s": self.duration_s,
        }


def drawdown_detail(ts: np.ndarray, eq: np.ndarray) -> Drawdown:
    """The deepest drawdown (by ratio, as `metrics.max_drawdown`), with its recovery."""
    t = np.asarray(ts, dtype=np.int64)
    e = np.asarray(eq, dtype=np.float64)
    if e.shape[0] == 0:
        return Drawdown(0.0, 0.0, None, None, None, None)
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - e / peak, 0.0)
    trough = int(np.argmax(dd))
    if dd[trough] <= 0.0:
        return Drawdown(0.0, 0.0, None, None, None, None)
    top = float(peak[trough])
    start = int(np.flatnonzero(e[: trough + 1] == top)[-1])
    back = np.flatnonzero(e[trough:] >= top)
    recovery = int(t[trough + int(back[0])]) if back.size else None
    return Drawdown(
        abs=top - float(e[trough]),
        ratio=float(dd[trough]),
        start_ts=int(t[start]),
        trough_ts=int(t[trough]),
        recovery_ts=recovery,
        duration_s=None if recovery is None else (recovery - int(t[start])) // 1000,
    )


def _period_key(period: str) -> Callable[[int], str]:
    def key(ms: int) -> str:
        day = from_ms(ms).date()
        if period == "day":
            return day.isoformat()
        if period == "week":  # labelled by its Monday
            return (day - timedelta(days=day.weekday())).isoformat()
        return day.strftime("%Y-%m")

    return key


def _by_exit_period(period: str) -> Callable[[RoundTrip], str]:
    """A trade counts in the period it closed in (as freqtrade's periodic breakdown)."""
    key = _period_key(period)
    return lambda t: key(t.exit_ts)


def _outcome_counts(trips: Sequence[RoundTrip]) -> tuple[int, int, int]:
    wins = sum(1 for t in trips if t.pnl > 0)
    losses = sum(1 for t in trips if t.pnl < 0)
    return wins, len(trips) - wins - losses, losses


def _row(key: str, trips: Sequence[RoundTrip], capital: Decimal) -> dict[str, Any]:
    wins, draws, losses = _outcome_counts(trips)
    total = sum((t.pnl for t in trips), Decimal(0))
    return {
        "key": key,
        "trades": len(trips),
        "wins": wins,
        "draws": draws,
        "losses": losses,
        "win_rate": wins / len(trips),
        "profit_abs": decimal_text(total),
        "profit_mean": sum(t.profit_ratio for t in trips) / len(trips),
        "profit_total": float(total / capital) if capital else None,
        "duration_mean_s": sum(t.duration_s for t in trips) // len(trips),
    }


def table(
    trips: Sequence[RoundTrip], key: Callable[[RoundTrip], str], capital: Decimal
) -> list[dict[str, Any]]:
    """One row per key (sorted), each with the trades, outcomes and profit of its trips."""
    groups: dict[str, list[RoundTrip]] = {}
    for t in trips:
        groups.setdefault(key(t), []).append(t)
    return [_row(k, groups[k], capital) for k in sorted(groups)]


def pair_table(
    trips: Sequence[RoundTrip], symbols: Sequence[str], capital: Decimal
) -> list[dict[str, Any]]:
    """One row per pair in `symbols` order, the pairs that never traded included (zero
    trades, means None), like freqtrade's per-pair table."""
    groups: dict[str, list[RoundTrip]] = {s: [] for s in symbols}
    for t in trips:
        groups.setdefault(t.symbol or "", []).append(t)
    return [
        _row(key, rows, capital) if rows else {
            "key": key, "trades": 0, "wins": 0, "draws": 0, "losses": 0, "win_rate": None,
            "profit_abs": "0", "profit_mean": None, "profit_total": 0.0 if capital else None,
            "duration_mean_s": None,
        }  # fmt: skip
        for key, rows in groups.items()
    ]


def _market_change(closes: Sequence[np.ndarray]) -> float | None:
    """The mean over the series of last close / first close - 1 (freqtrade's market change
    over several pairs); None when no series has a price."""
    changes = []
    for series in closes:
        c = np.asarray(series, dtype=np.float64)
        if c.size and c[0]:
            changes.append(float(c[-1] / c[0] - 1.0))
    return sum(changes) / len(changes) if changes else None


def _mean_duration(trips: Sequence[RoundTrip]) -> int | None:
    return sum(t.duration_s for t in trips) // len(trips) if trips else None


def _sqn(pnls: list[float], unavailable: dict[str, str]) -> float | None:
    if len(pnls) < 2:
        unavailable["sqn"] = "needs at least 2 closed trades"
        return None
    std = float(np.std(pnls, ddof=1))
    if std <= 0:
        unavailable["sqn"] = "every trade made the same profit"
        return None
    return math.sqrt(len(pnls)) * float(np.mean(pnls)) / std


def _cagr(m: PerformanceMetrics, unavailable: dict[str, str]) -> float | None:
    if m.start_ts is None or m.end_ts is None or not m.start_equity or m.end_equity is None:
        unavailable["cagr"] = "no equity curve"
        return None
    days = (m.end_ts - m.start_ts) / DAY_MS
    if days < 1:
        unavailable["cagr"] = "the run spans less than a day"
        return None
    if m.end_equity <= 0:
        return -1.0
    return float((m.end_equity / m.start_equity) ** (DAYS_PER_YEAR / days) - 1.0)


def _calmar(m: PerformanceMetrics, cagr: float | None, unavailable: dict[str, str]) -> float | None:
    if m.daily_returns < MIN_DAILY_RETURNS:
        unavailable["calmar"] = (
            f"needs at least {MIN_DAILY_RETURNS} daily returns, has {m.daily_returns}"
        )
        return None
    if cagr is None:
        unavailable["calmar"] = unavailable.get("cagr", "no CAGR")
        return None
    if m.max_drawdown <= 0:
        unavailable["calmar"] = "no drawdown: nothing to divide by"
        return None
    return cagr / m.max_drawdown


def calmar(m: PerformanceMetrics) -> float | None:
    """The report's Calmar ratio of a run's metrics (None when it has none)."""
    unavailable: dict[str, str] = {}
    return _calmar(m, _cagr(m, unavailable), unavailable)


def _expectancy(
    trips: Sequence[RoundTrip], unavailable: dict[str, str]
) -> tuple[Decimal | None, float | None]:
    if not trips:
        unavailable["expectancy"] = unavailable["expectancy_ratio"] = "no closed trade yet"
        return None, None
    won = [t.pnl for t in trips if t.pnl > 0]
    lost = [-t.pnl for t in trips if t.pnl < 0]
    n = len(trips)
    avg_win = sum(won, Decimal(0)) / len(won) if won else Decimal(0)
    avg_loss = sum(lost, Decimal(0)) / len(lost) if lost else Decimal(0)
    expectancy = avg_win * len(won) / n - avg_loss * len(lost) / n
    if avg_loss <= 0:
        unavailable["expectancy_ratio"] = "no losing trade: no risk to reward against"
        return expectancy, None
    return expectancy, (1 + float(avg_win / avg_loss)) * len(won) / n - 1


def _trade_brief(t: RoundTrip | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"profit_ratio": round(t.profit_ratio, 10), "profit_abs": decimal_text(t.pnl),
            "entry_time": iso_ms(t.entry_ts), "exit_time": iso_ms(t.exit_ts)}  # fmt: skip


def build_report(
    trips: Sequence[RoundTrip],
    ts: np.ndarray,
    equity: np.ndarray,
    *,
    capital: Decimal,
    closes: np.ndarray,
    metrics: PerformanceMetrics | None = None,
    max_round_trips: int | None = None,
    symbols: Sequence[str] | None = None,
    market_closes: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The whole report as JSON-ready data: `round_trips`, `totals` and `tables`.

    `ts`/`equity` is the run's curve (ascending), `closes` the market's closes over the same
    range (for the buy-and-hold change); `metrics` is reused when the caller has it. A run
    over several pairs gives `symbols` (the table by pair lists each, in that order) and
    `market_closes` (each pair's closes: the market change is their mean).
    """
    if metrics is None:
        metrics = compute_metrics(
            ts, equity, [ClosedTrade(t.pnl, t.entry_ts, t.exit_ts) for t in trips]
        )
    unavailable = dict(metrics.unavailable)
    n = len(trips)
    wins, draws, losses = _outcome_counts(trips)
    total = sum((t.pnl for t in trips), Decimal(0))
    cagr = _cagr(metrics, unavailable)
    expectancy, expectancy_ratio = _expectancy(trips, unavailable)
    best = max(trips, key=lambda t: t.profit_ratio, default=None)
    worst = min(trips, key=lambda t: t.profit_ratio, default=None)
    if not trips:
        for name in ("profit_mean", "best_trade", "worst_trade", "duration_mean_s"):
            unavailable[name] = "no closed trade yet"
    market_change = _market_change(market_closes if market_closes is not None else [closes])
    if market_change is None:
        unavailable["market_change"] = "no candles"
    totals = {
        "trades": n,
        "wins": wins,
        "draws": draws,
        "losses": losses,
        "win_rate": wins / n if n else None,
        "profit_total_abs": decimal_text(total),
        "profit_total": float(total / capital) if capital else None,
        "profit_mean": sum(t.profit_ratio for t in trips) / n if n else None,
        "profit_mean_abs": decimal_text(total / n) if n else None,
        "cagr": cagr,
        "max_drawdown": drawdown_detail(ts, equity).to_dict(),
        "sharpe": metrics.sharpe,
        "sortino": metrics.sortino,
        "calmar": _calmar(metrics, cagr, unavailable),
        "sqn": _sqn([float(t.pnl) for t in trips], unavailable),
        "expectancy": None if expectancy is None else decimal_text(expectancy),
        "expectancy_ratio": expectancy_ratio,
        "profit_factor": metrics.profit_factor,
        "best_trade": _trade_brief(best),
        "worst_trade": _trade_brief(worst),
        "duration_mean_s": _mean_duration(trips),
        "winner_duration_mean_s": _mean_duration([t for t in trips if t.pnl > 0]),
        "loser_duration_mean_s": _mean_duration([t for t in trips if t.pnl < 0]),
        "exposure": metrics.exposure,
        "market_change": market_change,
        "daily_returns": metrics.daily_returns,
        "unavailable": unavailable,
    }
    tables: dict[str, Any] = {
        "exit_reason": table(trips, lambda t: t.exit_reason, capital),
        "entry_tag": table(trips, lambda t: t.entry_tag or NO_TAG, capital),
    }
    if symbols is not None:
        tables["symbol"] = pair_table(trips, symbols, capital)
    elif any(t.symbol is not None for t in trips):
        tables["symbol"] = table(trips, lambda t: t.symbol or "", capital)
    for period in PERIODS:
        tables[period] = table(trips, _by_exit_period(period), capital)
    shown = trips if max_round_trips is None else trips[:max_round_trips]
    return {
        "round_trips": [t.to_dict() for t in shown],
        "totals": totals,
        "tables": tables,
    }
