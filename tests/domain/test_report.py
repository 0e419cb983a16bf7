"""The trade report against hand calculations, and its edge cases (no trade, one trade, all
wins, a drawdown never recovered)."""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pytest

from app.domain.report import RoundTrip, build_report, drawdown_detail

H = 3_600_000
DAY = 24 * H
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z, a Tuesday
TS = np.array([T0 + i * H for i in range(5)])
EQUITY = np.array([100.0, 110.0, 99.0, 108.9, 119.79])
CLOSES = np.array([10.0, 11.0, 9.0, 11.0, 12.5])


def trip(entry, exit_, pnl, basis, reason="exit_signal", tag=None) -> RoundTrip:  # type: ignore[no-untyped-def]
    return RoundTrip(entry_ts=entry, exit_ts=exit_, entry_price=D(10), exit_price=D(11),
                     amount=D(1), cost_basis=D(basis), pnl=D(pnl), exit_reason=reason,
                     entry_tag=tag)  # fmt: skip


TRIPS = [
    trip(T0, T0 + H, "10", "100", "roi", "a"),  # +0.10, 1 h
    trip(T0 + H, T0 + 2 * H, "-11", "110", "stop_loss", "b"),  # -0.10, 1 h
    trip(T0 + 5 * H // 2, T0 + 4 * H, "20.79", "99", "exit_signal", "a"),  # +0.21, 1.5 h
]


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    return build_report(TRIPS, TS, EQUITY, capital=D(100), closes=CLOSES)


def test_round_trips(report) -> None:  # type: ignore[no-untyped-def]
    first = report["round_trips"][0]
    assert first["entry_time"] == "2023-11-14T22:13:20Z"
    assert first["exit_time"] == "2023-11-14T23:13:20Z"
    assert first["duration_s"] == 3600 and first["profit_abs"] == "10"
    assert first["profit_ratio"] == pytest.approx(0.1)
    assert first["entry_tag"] == "a" and first["exit_reason"] == "roi"
    assert [t["profit_ratio"] for t in report["round_trips"]] == pytest.approx([0.1, -0.1, 0.21])


def test_totals(report) -> None:  # type: ignore[no-untyped-def]
    t = report["totals"]
    assert (t["trades"], t["wins"], t["draws"], t["losses"]) == (3, 2, 0, 1)
    assert t["win_rate"] == pytest.approx(2 / 3)
    assert t["profit_total_abs"] == "19.79" and t["profit_total"] == pytest.approx(0.1979)
    assert t["profit_mean"] == pytest.approx((0.1 - 0.1 + 0.21) / 3)
    assert D(t["profit_mean_abs"]) == pytest.approx(D("19.79") / 3)
    # sample std of 10, -11, 20.79 around their mean 6.5966..: sqrt(522.676.. / 2)
    mean = 19.79 / 3
    std = math.sqrt(((10 - mean) ** 2 + (-11 - mean) ** 2 + (20.79 - mean) ** 2) / 2)
    assert t["sqn"] == pytest.approx(math.sqrt(3) * mean / std)
    assert t["sqn"] == pytest.approx(0.70677, abs=1e-4)
    # average win (10 + 20.79) / 2 = 15.395, average loss 11
    assert D(t["expectancy"]) == pytest.approx(D("15.395") * 2 / 3 - D(11) / 3)
    assert t["expectancy_ratio"] == pytest.approx((1 + 15.395 / 11) * 2 / 3 - 1)
    assert t["profit_factor"] == pytest.approx(30.79 / 11)
    assert t["best_trade"]["profit_ratio"] == pytest.approx(0.21)
    assert t["worst_trade"]["profit_ratio"] == pytest.approx(-0.1)
    assert t["duration_mean_s"] == 4200
    assert (t["winner_duration_mean_s"], t["loser_duration_mean_s"]) == (4500, 3600)
    assert t["market_change"] == pytest.approx(0.25)  # closes 10 -> 12.5
    assert t["exposure"] == pytest.approx(3.5 / 4)  # 0..2 h and 2.5..4 h of 4 h


def test_drawdown_with_recovery(report) -> None:  # type: ignore[no-untyped-def]
    dd = report["totals"]["max_drawdown"]
    # peak 110 (1 h), trough 99 (2 h), back above 110 only at 119.79 (4 h)
    assert dd["abs"] == pytest.approx(11) and dd["ratio"] == pytest.approx(0.1)
    assert dd["start"] == "2023-11-14T23:13:20Z" and dd["trough"] == "2023-11-15T00:13:20Z"
    assert dd["recovery"] == "2023-11-15T02:13:20Z" and dd["recovered"] is True
    assert dd["duration_s"] == 3 * 3600


def test_short_runs_have_no_annualised_figures(report) -> None:  # type: ignore[no-untyped-def]
    t = report["totals"]
    assert t["cagr"] is None and "less than a day" in t["unavailable"]["cagr"]
    assert t["calmar"] is None and "14 daily returns" in t["unavailable"]["calmar"]
    assert t["sharpe"] is None and t["sortino"] is None


def test_tables(report) -> None:  # type: ignore[no-untyped-def]
    tables = report["tables"]
    by_reason = {r["key"]: r for r in tables["exit_reason"]}
    assert list(by_reason) == ["exit_signal", "roi", "stop_loss"]
    assert by_reason["stop_loss"]["losses"] == 1 and by_reason["stop_loss"]["profit_abs"] == "-11"
    a, b = tables["entry_tag"]
    assert (a["key"], a["trades"], a["profit_abs"], a["wins"]) == ("a", 2, "30.79", 2)
    assert a["profit_mean"] == pytest.approx(0.155)
    assert a["profit_total"] == pytest.approx(0.3079)
    assert (b["key"], b["trades"], b["win_rate"]) == ("b", 1, 0.0)
    # by the day each trade closed: 23:13 on the 14th, then 00:13 and 02:13 on the 15th
    assert [(r["key"], r["trades"]) for r in tables["day"]] == [("2023-11-14", 1),
                                                              ("2023-11-15", 2)]  # fmt: skip
    assert [(r["key"], r["trades"]) for r in tables["week"]] == [("2023-11-13", 3)]
    assert [(r["key"], r["trades"]) for r in tables["month"]] == [("2023-11", 3)]
    assert "symbol" not in tables


def test_no_trades() -> None:
    flat = np.full(5, 100.0)
    r = build_report([], TS, flat, capital=D(100), closes=CLOSES)
    t = r["totals"]
    assert (t["trades"], t["wins"], t["draws"], t["losses"]) == (0, 0, 0, 0)
    assert t["win_rate"] is None and t["profit_mean"] is None and t["sqn"] is None
    assert t["expectancy"] is None and t["expectancy_ratio"] is None
    assert t["best_trade"] is None and t["profit_factor"] is None
    assert t["profit_total_abs"] == "0" and t["exposure"] == 0.0
    assert t["max_drawdown"] == {
        "abs": 0.0, "ratio": 0.0, "start": None, "trough": None, "recovery": None,
        "recovered": True, "duration_s": None,
    }  # fmt: skip
    assert all(rows == [] for rows in r["tables"].values()) and r["round_trips"] == []
    for name in ("win_rate", "sqn", "expectancy", "profit_factor", "best_trade"):
        assert t["unavailable"][name]


def test_one_trade() -> None:
    one = [trip(T0, T0 + 2 * H, "-5", "100", "stop_loss")]
    r = build_report(one, TS, EQUITY, capital=D(100), closes=CLOSES)
    t = r["totals"]
    assert (t["wins"], t["losses"], t["win_rate"]) == (0, 1, 0.0)
    assert t["best_trade"] == t["worst_trade"]
    assert t["sqn"] is None and "2 closed trades" in t["unavailable"]["sqn"]
    assert D(t["expectancy"]) == D(-5) and t["expectancy_ratio"] == pytest.approx(-1.0)
    assert t["winner_duration_mean_s"] is None and t["loser_duration_mean_s"] == 7200
    assert r["tables"]["entry_tag"][0]["key"] == "(none)"


def test_all_wins_and_a_draw() -> None:
    trips = [trip(T0, T0 + H, "1", "100"), trip(T0 + H, T0 + 2 * H, "3", "100"),
             trip(T0 + 2 * H, T0 + 3 * H, "0", "100")]  # fmt: skip
    t = build_report(trips, TS, EQUITY, capital=D(100), closes=CLOSES)["totals"]
    assert (t["wins"], t["draws"], t["losses"]) == (2, 1, 0)
    assert t["profit_factor"] is None and "no losing trade" in t["unavailable"]["profit_factor"]
    assert t["expectancy_ratio"] is None and "no losing trade" in t["unavailable"][
        "expectancy_ratio"]  # fmt: skip
    assert D(t["expectancy"]) == pytest.approx(D(2) * 2 / 3)  # (1 + 3) / 2 won 2 times in 3
    assert t["loser_duration_mean_s"] is None
    mean = 4 / 3
    std = math.sqrt(((1 - mean) ** 2 + (3 - mean) ** 2 + mean**2) / 2)
    assert t["sqn"] == pytest.approx(math.sqrt(3) * mean / std)


def test_a_drawdown_never_recovered_and_the_annualised_figures() -> None:
    days = np.array([T0 + i * DAY for i in range(31)])  # 30 days, 31 daily returns
    eq = np.array([100.0 + i for i in range(10)] + [87.2] * 21)  # peak 109 on day 9
    r = build_report([], days, eq, capital=D(100), closes=np.array([1.0, 0.5]))
    t = r["totals"]
    dd = t["max_drawdown"]
    assert dd["abs"] == pytest.approx(21.8) and dd["ratio"] == pytest.approx(0.2)
    assert dd["start"] == "2023-11-23T22:13:20Z" and dd["trough"] == "2023-11-24T22:13:20Z"
    assert dd["recovery"] is None and dd["recovered"] is False and dd["duration_s"] is None
    cagr = 0.872 ** (365 / 30) - 1
    assert t["cagr"] == pytest.approx(cagr)
    assert t["calmar"] == pytest.approx(cagr / 0.2)
    assert t["sharpe"] is not None and t["daily_returns"] == 31
    assert t["market_change"] == pytest.approx(-0.5)


def test_drawdown_recovers_at_the_first_point_back_at_the_peak() -> None:
    ts = np.arange(6) * H
    dd = drawdown_detail(ts, np.array([1.0, 2.0, 1.0, 1.5, 2.0, 3.0]))
    assert (dd.start_ts, dd.trough_ts, dd.recovery_ts) == (H, 2 * H, 4 * H)
    assert dd.duration_s == 3 * 3600 and dd.ratio == pytest.approx(0.5) and dd.abs == 1.0


def test_symbols_get_their_own_table() -> None:
    trips = [RoundTrip(T0, T0 + H, D(1), D(2), D(1), D(1), D(1), "roi", symbol="ETH/BTC")]
    r = build_report(trips, TS, EQUITY, capital=D(100), closes=CLOSES)
    assert r["tables"]["symbol"][0]["key"] == "ETH/BTC"
    assert r["round_trips"][0]["symbol"] == "ETH/BTC"
