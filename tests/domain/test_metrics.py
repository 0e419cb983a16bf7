"""Performance metrics against hand calculations on a five-point curve."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from app.domain.metrics import (
    ClosedTrade,
    compute_metrics,
    periods_per_year_for,
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
    return compute_metrics(TS, EQUITY, TRADES, periods_per_year=365)


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


def test_sharpe_and_sortino(m):
    # mean = (0.1 - 0.1 + 0.1 + 0.1) / 4 = 0.05
    # sample var = (0.05^2 + 0.15^2 + 0.05^2 + 0.05^2) / 3 = 0.03 / 3 = 0.01 -> std 0.1
    # sharpe = 0.05 / 0.1 * sqrt(365) = 0.5 * 19.1049731745 = 9.55248658727
    assert m.sharpe == pytest.approx(9.55248658727, rel=1e-9)
    # downside deviation = sqrt((0 + 0.1^2 + 0 + 0) / 4) = sqrt(0.0025) = 0.05
    # sortino = 0.05 / 0.05 * sqrt(365) = 19.1049731745
    assert m.sortino == pytest.approx(19.1049731745, rel=1e-9)


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
    m = compute_metrics(TS, EQUITY, trades, periods_per_year=365, open_since_ts=T0 + 3 * H)
    assert m.exposure == pytest.approx(0.5)


def test_profit_factor_edges():
    wins_only = compute_metrics(TS, EQUITY, TRADES[:1], periods_per_year=365)
    assert wins_only.profit_factor == math.inf
    assert wins_only.to_dict()["profit_factor"] == "inf"
    none = compute_metrics(TS, EQUITY, [], periods_per_year=365)
    assert none.profit_factor is None and none.win_rate is None and none.n_trades == 0
    assert none.exposure == 0.0
    flat = compute_metrics(TS, EQUITY, [ClosedTrade(D(0), T0, T0 + H)], periods_per_year=365)
    assert flat.profit_factor is None and flat.win_rate == 0.0


def test_no_drawdown_and_flat_curve():
    up = compute_metrics(TS[:3], [100, 101, 103], [], periods_per_year=365)
    assert up.max_drawdown == 0.0
    assert up.max_drawdown_peak_ts is None and up.max_drawdown_trough_ts is None
    assert up.sortino is None  # no losing period
    flat = compute_metrics(TS[:3], [100, 100, 100], [], periods_per_year=365)
    assert flat.sharpe is None and flat.total_return == 0.0


def test_peak_is_the_last_time_at_the_high_before_the_trough():
    # 100, 120, 120, 90, 130: peak 120 last seen at index 2, trough 90: (120-90)/120 = 0.25
    m = compute_metrics(TS, [100, 120, 120, 90, 130], [], periods_per_year=365)
    assert m.max_drawdown == pytest.approx(0.25)
    assert (m.max_drawdown_peak_ts, m.max_drawdown_trough_ts) == (TS[2], TS[3])


def test_short_and_empty_curves():
    empty = compute_metrics([], [], [], periods_per_year=365)
    assert empty.total_return is None and empty.max_drawdown == 0.0 and empty.exposure is None
    two = compute_metrics(TS[:2], [100, 110], [], periods_per_year=365)
    assert two.total_return == pytest.approx(0.1)
    assert two.sharpe is None  # one return has no sample std


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        compute_metrics(TS, EQUITY[:3], [], periods_per_year=365)
    with pytest.raises(ValueError):
        compute_metrics(list(reversed(TS)), EQUITY, [], periods_per_year=365)
    with pytest.raises(ValueError):
        compute_metrics(TS, EQUITY, [], periods_per_year=0)


def test_to_dict_is_json_ready(m):
    import json

    out = m.to_dict()
    assert out["gross_profit"] == "30.79"
    json.dumps(out, allow_nan=False)


def test_periods_per_year():
    # 5m candles: 365 * 24 * 12 = 105120 per year
    assert periods_per_year_for(300) == 105_120
