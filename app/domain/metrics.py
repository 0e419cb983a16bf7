"""Performance of a bot or a backtest from its equity curve and its closed trades.

Definitions (what each number means when it reaches a user):

* total_return: last equity / first equity - 1.
* max_drawdown: the largest fall from a running peak, as a positive fraction of that peak
  (0.25 = fell 25 %). `max_drawdown_peak_ts` is the last time the equity stood at that peak
  before the trough, `max_drawdown_trough_ts` the trough; both None without any drawdown.
* sharpe / sortino: on per-period simple returns of the equity curve, risk-free rate 0,
  annualised by sqrt(periods_per_year). Sharpe uses the sample std (ddof=1); Sortino the
  downside deviation sqrt(mean(min(r, 0)^2)) over all periods. None with fewer than two
  returns, or when the deviation is 0 (a flat curve, or no losing period for Sortino).
* win_rate: winning trades (pnl > 0) / all closed trades; None without trades.
* profit_factor: gross profit / gross loss. `math.inf` when there are wins but no losses
  (`to_dict` writes it as the string "inf", since JSON has no infinity); None when there is
  neither a win nor a loss (no trades, or only break-even ones).
* exposure: share of the curve's time span spent in a position: the union of the trades'
  [entry, exit] intervals (plus an open position since `open_since_ts`) clipped to the curve.

Timestamps are epoch milliseconds (as in `Candles.ts`); money is Decimal in trades, and the
curve may be Decimal or float (ratios are computed in float).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = [
    "ClosedTrade",
    "PerformanceMetrics",
    "compute_metrics",
    "periods_per_year_for",
]

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto markets never close


@dataclass(frozen=True)
class ClosedTrade:
    pnl: Decimal
    entry_ts: int
    exit_ts: int


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: Decimals as strings, an infinite profit factor as "inf"."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, float) and math.isinf(value):
                value = "inf" if value > 0 else "-inf"
            out[key] = value
        return out


def periods_per_year_for(timeframe_seconds: int) -> float:
    """Annualisation factor for a candle timeframe on a 24/7 market."""
    if timeframe_seconds <= 0:
        raise ValueError("timeframe_seconds must be positive")
    return SECONDS_PER_YEAR / timeframe_seconds


def _max_drawdown(ts: np.ndarray, eq: np.ndarray) -> tuple[float, int | None, int | None]:
    if eq.shape[0] == 0:
        return 0.0, None, None
    peak = np.maximum.accumulate(eq)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, 1.0 - eq / peak, 0.0)
    trough = int(np.argmax(dd))
    worst = float(dd[trough])
    if worst <= 0.0:
        return 0.0, None, None
    at_peak = np.flatnonzero(eq[: trough + 1] == peak[trough])
    return worst, int(ts[at_peak[-1]]), int(ts[trough])


def _ratios(eq: np.ndarray, per_year: float) -> tuple[float | None, float | None]:
    if eq.shape[0] < 3:
        return None, None
    with np.errstate(divide="ignore", invalid="ignore"):
        r = eq[1:] / eq[:-1] - 1.0
    if not np.isfinite(r).all():
        return None, None
    scale = math.sqrt(per_year)
    mean = float(np.mean(r))
    std = float(np.std(r, ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino


def _exposure(
    start: int, end: int, trades: Sequence[ClosedTrade], open_since_ts: int | None
) -> float | None:
    if end <= start:
        return None
    spans = [(t.entry_ts, t.exit_ts) for t in trades]
    if open_since_ts is not None:
        spans.append((open_since_ts, end))
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans)
    covered = 0
    reached = start  # everything before `reached` is already counted
    for lo, hi in clipped:
        lo = max(lo, reached)
        if hi > lo:
            covered += hi - lo
            reached = hi
    return covered / (end - start)


def compute_metrics(
    ts: Sequence[int] | np.ndarray,
    equity: Sequence[Decimal | float] | np.ndarray,
    trades: Sequence[ClosedTrade],
    *,
    periods_per_year: float,
    open_since_ts: int | None = None,
) -> PerformanceMetrics:
    """Metrics of one equity curve (one value per period, ascending ts) and its trades.

    `periods_per_year` annualises Sharpe/Sortino: use `periods_per_year_for(tf_seconds)` when
    the curve has one point per candle. `open_since_ts` adds a still-open position to the
    exposure.
    """
    t = np.asarray(ts, dtype=np.int64)
    eq = np.asarray(equity, dtype=np.float64)  # Decimals convert through float()
    if t.shape != eq.shape or t.ndim != 1:
        raise ValueError("ts and equity must be 1-D and of the same length")
    if t.shape[0] > 1 and np.any(np.diff(t) < 0):
        raise ValueError("ts must be ascending")
    if periods_per_year <= 0:
        raise ValueError("periods_per_year must be positive")

    n = t.shape[0]
    start_eq = float(eq[0]) if n else None
    end_eq = float(eq[-1]) if n else None
    total_return = end_eq / start_eq - 1.0 if n and start_eq else None
    max_dd, peak_ts, trough_ts = _max_drawdown(t, eq)
    sharpe, sortino = _ratios(eq, periods_per_year)
    exposure = _exposure(int(t[0]), int(t[-1]), trades, open_since_ts) if n else None

    pnls = [t_.pnl if isinstance(t_.pnl, Decimal) else Decimal(str(t_.pnl)) for t_ in trades]
    gross_profit = sum((p for p in pnls if p > 0), Decimal(0))
    gross_loss = -sum((p for p in pnls if p < 0), Decimal(0))
    wins = sum(1 for p in pnls if p > 0)
    losses = sum(1 for p in pnls if p < 0)
    if gross_loss > 0:
        profit_factor: float | None = float(gross_profit / gross_loss)
    else:
        profit_factor = math.inf if gross_profit > 0 else None

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
    )
