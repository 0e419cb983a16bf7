"""Performance metrics against hand calculations on a five-point curve."""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pytest

from app.domain.metrics import (
    MIN_DAILY_RETURNS,
    ClosedTrade,
    compute_metrics,
    daily_returns,
)

H = 3_600_000  # one hour in ms
T0 = 1_700_000_000_000
TS = [T0 + i * H for i in range(5)]
# returns: 110/100-1 = 0.1, 99/110-1 = -0.1, 108.9/99-1 = 0.1, 119.79/108.9-1 = 0.1
EQUITY = [D("100"), D("110"), D("99"), D("108.9"), D("119.79")]
TRADES = [
    ClosedTrade(pnl=D("10"), entry_ts=T0, exit_ts=T0 + H),
    ClosedTrade(pnl=D("-11"), entry_ts=T0 + H, exit_ts=T0 + 2 * H),
    ClosedTrade(pnl=D("20.79"), entry_ts=T0 + 5 * H // 2, exit_ts=T0 + 4 * H),
]


@pytest.fixture(scope="module")
def m():
    return compute_metrics(TS, EQUITY, TRADES)


def test_total_return(m):
    # 119.79 / 100 - 1
    assert m.total_return == pytest.approx(0.1979, rel=1e-12)
    assert m.start_equity == 100 and m.end_equity == pytest.approx(119.79)
    assert (m.start_ts, m.end_ts) == (TS[0], TS[-1])


def test_max_drawdown(m):
    # peak 110 at hour 1, trough 99 at hour 2: (110 - 99) / 110 = 0.1
    assert m.max_drawdown == pytest.approx(0.1, rel=1e-12)
    assert m.max_drawdown_peak_ts == TS[1]
    assert m.max_drawdown_trough_ts == TS[2]


DAY = 86_400_000
D0 = 1_699_920_000_000  # 2023-11-14T00:00Z, a UTC midnight


def _daily_curve(returns: list[float], start: float = 100.0) -> list[float]:
    out = [start]
    for r in returns:
        out.append(out[-1] * (1 + r))
    return out


def test_sharpe_and_sortino_come_from_daily_returns_annualised_by_sqrt_365():
    returns = [0.02] * 7 + [-0.01] * 7  # 14 daily returns: mean 0.005
    equity = _daily_curve(returns)
    # the first point at 00:00 of day 0, then each day's close at 23:00
    ts = [D0] + [D0 + k * DAY + 23 * H for k in range(1, 15)]
    m = compute_metrics(ts, equity, [])
    # day 0 holds only the start (return 0), days 1..14 the 14 returns
    assert m.daily_returns == 15
    r = [0.0, *returns]
    mean = sum(r) / 15
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 14)
    downside = math.sqrt(sum(min(x, 0) ** 2 for x in r) / 15)
    assert m.sharpe == pytest.approx(mean / std * math.sqrt(365), rel=1e-9)
    assert m.sortino == pytest.approx(mean / downside * math.sqrt(365), rel=1e-9)
    assert "sharpe" not in m.unavailable and "sortino" not in m.unavailable


def test_points_inside_a_day_do_not_change_the_daily_returns():
    ts = [D0 + k * DAY for k in range(16)]
    equity = _daily_curve([0.02, -0.01] * 7 + [0.0])
    # add an intraday swing inside each day (ending where the day closes)
    dense_ts, dense_eq = [], []
    for t, e in zip(ts, equity, strict=True):
        dense_ts += [t, t + H, t + 2 * H]
        dense_eq += [e, e * 3, e]
    sparse = compute_metrics(ts, equity, [])
    dense = compute_metrics(dense_ts, dense_eq, [])
    assert dense.sharpe == pytest.approx(sparse.sharpe, rel=1e-12)
    assert dense.sortino == pytest.approx(sparse.sortino, rel=1e-12)
    assert dense.max_drawdown > sparse.max_drawdown  # the drawdown still sees every point


def test_days_without_a_point_carry_the_previous_close():
    r = daily_returns(np.array([D0, D0 + 3 * DAY]), np.array([100.0, 110.0]))
    assert r.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_ratios_are_null_with_a_reason_below_the_minimum_sample(m):
    assert m.sharpe is None and m.sortino is None  # five hourly points across one midnight
    assert m.unavailable["sharpe"] == f"needs at least {MIN_DAILY_RETURNS} daily returns, has 2"
    short = compute_metrics([D0 + k * DAY for k in range(13)], _daily_curve([0.01] * 12), [])
    assert short.daily_returns == 13 and short.sharpe is None
    flat = compute_metrics([D0 + k * DAY for k in range(20)], [100.0] * 20, [])
    assert flat.sharpe is None and flat.unavailable["sharpe"].startswith("the equity did not")
    assert flat.unavailable["sortino"] == "no losing day"


def test_trade_statistics(m):
    # 2 wins of 3 ; profit factor (10 + 20.79) / 11 = 30.79 / 11 = 2.79909090...
    assert m.n_trades == 3 and m.wins == 2 and m.losses == 1
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx(2.7990909090909, rel=1e-12)
    assert m.gross_profit == D("30.79") and m.gross_loss == D("11")


def test_exposure(m):
    # in a position [0h, 2h] (two back-to-back trades) and [2.5h, 4h]: 3.5h of 4h = 0.875
    assert m.exposure == pytest.approx(0.875)


def test_exposure_merges_overlaps_clips_and_counts_an_open_position():
    trades = [
        ClosedTrade(D(1), T0 - H, T0 + H),  # starts before the curve: clipped to [0h, 1h]
        ClosedTrade(D(1), T0 + H // 2, T0 + H // 2 + 1000),  # inside the first: no double count
    ]
    # [0h, 1h] plus open since 3h to the end 4h: 2h of 4h = 0.5
    m = compute_metrics(TS, EQUITY, trades, open_since_ts=T0 + 3 * H)
    assert m.exposure == pytest.approx(0.5)


def test_profit_factor_edges():
    wins_only = compute_metrics(TS, EQUITY, TRADES[:1])
    assert wins_only.profit_factor is None
    assert wins_only.unavailable["profit_factor"].startswith("no losing trade")
    assert wins_only.to_dict()["profit_factor"] is None
    none = compute_metrics(TS, EQUITY, [])
    assert none.profit_factor is None and none.win_rate is None and none.n_trades == 0
    assert none.unavailable["win_rate"] == "no closed trade yet"
    assert none.exposure == 0.0
    flat = compute_metrics(TS, EQUITY, [ClosedTrade(D(0), T0, T0 + H)])
    assert flat.profit_factor is None and flat.win_rate == 0.0


def test_no_drawdown_and_flat_curve():
    up = compute_metrics(TS[:3], [100, 101, 103], [])
    assert up.max_drawdown == 0.0
    assert up.max_drawdown_peak_ts is None and up.max_drawdown_trough_ts is None
    flat = compute_metrics(TS[:3], [100, 100, 100], [])
    assert flat.sharpe is None and flat.total_return == 0.0


def test_peak_is_the_last_time_at_the_high_before_the_trough():
    # 100, 120, 120, 90, 130: peak 120 last seen at index 2, trough 90: (120-90)/120 = 0.25
    m = compute_metrics(TS, [100, 120, 120, 90, 130], [])
    assert m.max_drawdown == pytest.approx(0.25)
    assert (m.max_drawdown_peak_ts, m.max_drawdown_trough_ts) == (TS[2], TS[3])


def test_short_and_empty_curves():
    empty = compute_metrics([], [], [])
    assert empty.total_return is None and empty.max_drawdown == 0.0 and empty.exposure is None
    two = compute_metrics(TS[:2], [100, 110], [])
    assert two.total_return == pytest.approx(0.1)
    assert two.sharpe is None  # one return has no sample std


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        compute_metrics(TS, EQUITY[:3], [])
    with pytest.raises(ValueError):
        compute_metrics(list(reversed(TS)), EQUITY, [])


def test_to_dict_is_json_ready(m):
    import json

    out = m.to_dict()
    assert out["gross_profit"] == "30.79" and out["gross_loss"] == "11"
    assert out["start_ts"] == "2023-11-14T22:13:20Z"  # ISO 8601 UTC, not epoch ms
    assert out["max_drawdown_trough_ts"] == "2023-11-15T00:13:20Z"
    json.dumps(out, allow_nan=False)
