"""Performance of a bot or a backtest from its equity curve and its closed trades.

What each number means is written down for users in docs/metrics.md; in short:

* total_return: last equity / first equity - 1 (0.05 = +5 %).
* max_drawdown: the largest fall from a running peak, as a positive fraction of that peak
  (0.25 = fell 25 %). `max_drawdown_peak_ts` is the last time the equity stood at that peak
  before the trough, `max_drawdown_trough_ts` the trough; both None without any drawdown.
* sharpe / sortino: from DAILY returns (UTC days; the equity at a day's last point, carried
  over days without a point), risk-free rate 0, annualised by sqrt(365) (crypto never
  closes). Sharpe uses the sample std (ddof=1); Sortino the downside deviation
  sqrt(mean(min(r, 0)^2)). None below MIN_DAILY_RETURNS daily returns, or when the
  deviation is 0; `unavailable` then says why.
* win_rate: winning trades (pnl > 0) / closed trades.
* profit_factor: gross profit / gross loss; None when there is no loss to divide by.
* exposure: share of the curve's time span spent in a position.

Every metric that is None comes with a one-line reason in `unavailable` (metric -> reason).
Timestamps are epoch milliseconds (as in `Candles.ts`); money is Decimal in trades, and the
curve may be Decimal or float (ratios are computed in float).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from app.domain.numbers import decimal_text
from app.domain.times import iso_ms

__all__ = [
    "ClosedTrade",
    "RoundTripLike",
    "PerformanceMetrics",
    "DAYS_PER_YEAR",
    "MIN_DAILY_RETURNS",
    "compute_metrics",
    "daily_returns",
    "drawdowns",
    "max_drawdown",
]

DAY_MS = 86_400_000
DAYS_PER_YEAR = 365  # crypto markets never close
MIN_DAILY_RETURNS = 14  # fewer daily returns than this give no meaningful Sharpe/Sortino
_TIMES = ("start_ts", "end_ts", "max_drawdown_peak_ts", "max_drawdown_trough_ts")


@dataclass(frozen=True)
class ClosedTrade:
    pnl: Decimal
    entry_ts: int
    exit_ts: int


class RoundTripLike(Protocol):
    """What the metrics read of a closed trade (a `ClosedTrade`, or a backtest's own trade
    record, passed as it is rather than copied)."""

    @property
    def pnl(self) -> Decimal: ...

    @property
    def entry_ts(self) -> int: ...

    @property
    def exit_ts(self) -> int: ...


@dataclass(frozen=True)
class PerformanceMetrics:
    start_ts: int | None
    end_ts: int | None
    start_equity: float | None
    end_equity: float | None
    total_return: float | None
    max_drawdown: float
    max_drawdown_peak_ts: int | None
    max_drawdown_trough_ts: int | None
    sharpe: float | None
    sortino: float | None
    exposure: float | None
    n_trades: int
    wins: int
    losses: int
    win_rate: float | None
    profit_factor: float | None
    gross_profit: Decimal
    gross_loss: Decimal
    daily_returns: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 UTC text, money as plain decimal text, ratios as
        numbers (never infinite: a ratio that cannot be computed is None, see `unavailable`)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key in _TIMES:
                value = iso_ms(value)
            elif isinstance(value, Decimal):
                value = decimal_text(value)
            out[key] = value
        return out


def drawdowns(eq: np.ndarray) -> np.ndarray:
    """The fall below the running peak at each point, as a fraction of that peak."""
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(peak > 0, 1.0 - eq / peak, 0.0)


def max_drawdown(eq: np.ndarray) -> float:
    """The largest fall from a running peak as a fraction of that peak (0.25 = 25 %)."""
    return max(0.0, float(drawdowns(eq).max())) if eq.shape[0] else 0.0


def _max_drawdown(ts: np.ndarray, eq: np.ndarray) -> tuple[float, int | None, int | None]:
    if eq.shape[0] == 0:
        return 0.0, None, None
    peak = np.maximum.accumulate(eq)
    dd = drawdowns(eq)
    trough = int(np.argmax(dd))
    worst = float(dd[trough])
    if worst <= 0.0:
        return 0.0, None, None
    at_peak = np.flatnonzero(eq[: trough + 1] == peak[trough])
    return worst, int(ts[at_peak[-1]]), int(ts[trough])


def daily_returns(ts: np.ndarray, eq: np.ndarray) -> np.ndarray:
    """One simple return per UTC day the curve touches: each day's close (its last point,
    or the previous close for a day without one) over the previous close; the first day's
    return is measured from the curve's first point."""
    if eq.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    days = ts // DAY_MS
    last_of_day = np.searchsorted(days, np.arange(days[0], days[-1] + 1), side="right") - 1
    closes = eq[last_of_day]
    previous = np.r_[eq[0], closes[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        return closes / previous - 1.0


def _ratios(r: np.ndarray, unavailable: dict[str, str]) -> tuple[float | None, float | None]:
    if r.shape[0] < MIN_DAILY_RETURNS:
        why = f"needs at least {MIN_DAILY_RETURNS} daily returns, has {r.shape[0]}"
        unavailable.update(sharpe=why, sortino=why)
        return None, None
    if not np.isfinite(r).all():
        unavailable.update(sharpe="the equity reached 0", sortino="the equity reached 0")
        return None, None
    scale = math.sqrt(DAYS_PER_YEAR)
    mean = float(np.mean(r))
    std = float(np.std(r, ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    if sharpe is None:
        unavailable["sharpe"] = "the equity did not change from day to day"
    if sortino is None:
        unavailable["sortino"] = "no losing day"
    return sharpe, sortino


def _exposure(
    start: int, end: int, trades: Sequence[RoundTripLike], open_since_ts: int | None
) -> float | None:
    """The share of [start, end] inside at least one trade (the union of their spans)."""
    if end <= start:
        return None
    count = len(trades) + (open_since_ts is not None)
    if not count:
        return 0.0
    spans = np.empty((count, 2), dtype=np.int64)
    if trades:
        spans[: len(trades)] = [(t.entry_ts, t.exit_ts) for t in trades]
    if open_since_ts is not None:
        spans[-1] = (open_since_ts, end)
    lo = np.maximum(spans[:, 0], start)
    hi = np.minimum(spans[:, 1], end)
    keep = hi > lo  # an empty span covers nothing
    lo, hi = lo[keep], hi[keep]
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    # everything before the running end of the spans already seen is counted once
    reached = np.maximum(np.r_[start, np.maximum.accumulate(hi)[:-1]], lo)
    covered = int(np.maximum(hi - reached, 0).sum())
    return covered / (end - start)


def compute_metrics(
    ts: Sequence[int] | np.ndarray,
    equity: Sequence[Decimal | float] | np.ndarray,
    trades: Sequence[RoundTripLike],
    *,
    open_since_ts: int | None = None,
) -> PerformanceMetrics:
    """Metrics of one equity curve (ascending ts, any spacing) and its closed trades.

    `open_since_ts` adds a still-open position to the exposure.
    """
    t = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)  # Decimals convert through float()
    if t.shape != eq.shape or t.ndim != 1:
        raise ValueError("ts and equity must be 1-D and of the same length")
    if t.shape[0] > 1 and np.any(np.diff(t) < 0):
        raise ValueError("ts must be ascending")

    unavailable: dict[str, str] = {}
    n = t.shape[0]
    start_eq = float(eq[0]) if n else None
    end_eq = float(eq[-1]) if n else None
    total_return = end_eq / start_eq - 1.0 if n and start_eq else None
    if total_return is None:
        unavailable["total_return"] = "no equity yet" if not n else "the starting equity is 0"
    max_dd, peak_ts, trough_ts = _max_drawdown(t, eq)
    returns = daily_returns(t, eq)
    sharpe, sortino = _ratios(returns, unavailable)
    exposure = _exposure(int(t[0]), int(t[-1]), trades, open_since_ts) if n else None
    if exposure is None:
        unavailable["exposure"] = "the equity curve spans no time yet"

    pnls = [t_.pnl if isinstance(t_.pnl, Decimal) else Decimal(str(t_.pnl)) for t_ in trades]
    won = [p for p in pnls if p > 0]
    lost = [p for p in pnls if p < 0]
    gross_profit = sum(won, Decimal(0))
    gross_loss = -sum(lost, Decimal(0))
    wins = len(won)
    losses = len(lost)
    profit_factor = float(gross_profit / gross_loss) if gross_loss > 0 else None
    if not pnls:
        unavailable["win_rate"] = "no closed trade yet"
        unavailable["profit_factor"] = "no closed trade yet"
    elif profit_factor is None:
        unavailable["profit_factor"] = "no losing trade: nothing to divide the profit by"

    return PerformanceMetrics(
        start_ts=int(t[0]) if n else None,
        end_ts=int(t[-1]) if n else None,
        start_equity=start_eq,
        end_equity=end_eq,
        total_return=total_return,
        max_drawdown=max_dd,
        max_drawdown_peak_ts=peak_ts,
        max_drawdown_trough_ts=trough_ts,
        sharpe=sharpe,
        sortino=sortino,
        exposure=exposure,
        n_trades=len(pnls),
        wins=wins,
        losses=losses,
        win_rate=wins / len(pnls) if pnls else None,
        profit_factor=profit_factor,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        daily_returns=int(returns.shape[0]),
        unavailable=unavailable,
    )
