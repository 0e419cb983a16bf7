"""Entry tags through backtests: each trade carries the tag of the entry that opened it (one
pair and several), and the report's table by entry tag counts them."""

from __future__ import annotations

from decimal import Decimal

from app.domain.report import build_report
from app.domain.sizing import SizingConfig
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.engine.pairs import PairData, run_pairs_backtest
from app.market.base import MarketInfo
from app.services.backtests import round_trips
from tests.domain.test_entry_tags import TAGGED, fixture_candles, strategy

D = Decimal
MARKET = MarketInfo("AAA/BBB", "AAA", "BBB", amount_step=D("0.001"), price_step=D("0.01"))
FEES = FeeSchedule(maker=D("0.001"), taker=D("0.001"))
FIXED = SizingConfig(mode="fixed", stake=D("100"))


def _run(s):  # type: ignore[no-untyped-def]
    return run_backtest(fixture_candles(), s, s.default_params(), capital=D(1000),
                        market=MARKET, fees=FEES, sizing=FIXED, timeframe_seconds=3600)


def test_trades_carry_their_entry_tag_into_the_report() -> None:
    s = strategy(TAGGED)
    result = _run(s)
    assert [(t.entry_tag, t.pnl) for t in result.trades] == [
        ("cheap_cross", D("-15.568608")), ("cross", D("21.204598"))]  # fmt: skip
    assert [t.to_dict()["entry_tag"] for t in result.trades] == ["cheap_cross", "cross"]
    report = build_report(round_trips(result), result.ts, result.equity, capital=D(1000),
                          closes=fixture_candles().close)  # fmt: skip
    rows = {r["key"]: r for r in report["tables"]["entry_tag"]}
    assert set(rows) == {"cheap_cross", "cross"}
    assert (rows["cheap_cross"]["trades"], rows["cheap_cross"]["losses"]) == (1, 1)
    assert rows["cheap_cross"]["profit_abs"] == "-15.568608"
    assert (rows["cross"]["wins"], rows["cross"]["profit_abs"]) == (1, "21.204598")
    assert [t["entry_tag"] for t in report["round_trips"]] == ["cheap_cross", "cross"]


def test_several_pairs_carry_tags_per_pair() -> None:
    s = strategy(TAGGED)
    other = MarketInfo("CCC/BBB", "CCC", "BBB", amount_step=D("0.001"), price_step=D("0.01"))
    result = run_pairs_backtest(
        [PairData(fixture_candles(), MARKET), PairData(fixture_candles(), other)], s,
        s.default_params(), capital=D(1000), fees=FEES, sizing=FIXED, timeframe_seconds=3600,
        max_open_trades=2,
    )  # fmt: skip
    assert [(t.symbol, t.entry_tag) for t in result.trades] == [
        ("AAA/BBB", "cheap_cross"), ("CCC/BBB", "cheap_cross"),
        ("AAA/BBB", "cross"), ("CCC/BBB", "cross"),
    ]  # fmt: skip


def test_untagged_strategies_leave_the_tag_empty() -> None:
    s = strategy({**TAGGED, "entry": TAGGED["entry"][1]["when"]})
    result = _run(s)
    assert [t.entry_tag for t in result.trades] == [None, None]
