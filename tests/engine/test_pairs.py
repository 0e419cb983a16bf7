"""Several pairs, one wallet: the hand-computed fixture of test_backtest.py traded on two
pairs at once. Trade figures (stake 100, fee 0.1 %):

* pair AAA (the fixture): entries fill at candle 5 (open 13) and 11 (open 14), exits at
  8 (open 11) and 14 (open 17): pnl -15.568608 and +21.204598; each entry takes
  99.996 + 0.099996 = 100.095996 from the wallet, the first exit gives back 84.527388;
* pair SSS (the fixture shifted three candles later, 14 candles): entry fills at candle 8
  (open 13), exit at 11 (open 11): the same -15.568608; its second entry is signalled on
  its last candle and never acted on.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from app.domain.candles import Candles
from app.domain.sizing import SizingConfig
from app.domain.strategies import get_strategy
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.templates import template_document
from app.engine.backtest import run_backtest
from app.engine.fill_model import FeeSchedule
from app.engine.pairs import PairData, run_pairs_backtest
from app.market.base import MarketInfo
from app.market.csv_candles import load_candle_file
from tests.engine.helpers import FIXTURE_CLOSE, FIXTURE_OPEN, HOUR_MS, T0, rows_from
from tests.support.recorded import SHIPPED

D = Decimal
FEES = FeeSchedule(maker=D("0.001"), taker=D("0.001"))
FIXED = SizingConfig(mode="fixed", stake=D("100"))
LOSS, WIN = D("-15.568608"), D("21.204598")


def _candles(opens: list[float], closes: list[float]) -> Candles:
    cols = list(zip(*rows_from(opens, closes), strict=True))
    return Candles(np.array(cols[0], dtype=np.int64),
                   *(np.array(c, dtype=np.float64) for c in cols[1:]))  # fmt: skip


def _market(symbol: str) -> MarketInfo:
    base, quote = symbol.split("/")
    return MarketInfo(symbol, base, quote, amount_step=D("0.001"), price_step=D("0.01"))


def pair(symbol: str, shift: int = 0) -> PairData:
    if shift:
        opens = [10.0] * shift + FIXTURE_OPEN[: -shift - 1]
        closes = [10.0] * shift + FIXTURE_CLOSE[: -shift - 1]
    else:
        opens, closes = list(FIXTURE_OPEN), list(FIXTURE_CLOSE)
    return PairData(_candles(opens, closes), _market(symbol))


AAA, SSS, CCC = pair("AAA/BBB"), pair("SSS/BBB", shift=3), pair("CCC/BBB")


def run(pairs: list[PairData], *, capital: str = "1000", max_open: int = 2,
        sizing: SizingConfig = FIXED, strategy=None, params=None):  # type: ignore[no-untyped-def]  # fmt: skip
    strategy = strategy or get_strategy("sma_crossover")
    params = params or strategy.validate_params({"fast": 2, "slow": 3})
    return run_pairs_backtest(pairs, strategy, params, capital=D(capital), fees=FEES,
                              sizing=sizing, timeframe_seconds=3600,
                              max_open_trades=max_open)  # fmt: skip


def trades(result) -> list[tuple[str, int, int, Decimal]]:  # type: ignore[no-untyped-def]
    return [(t.symbol, t.entry_index, t.exit_index, t.pnl) for t in result.trades]


def test_the_shifted_pair_signals_three_candles_later() -> None:
    strategy = get_strategy("sma_crossover")
    sig = strategy.signals(SSS.candles, strategy.validate_params({"fast": 2, "slow": 3}))
    assert {int(i): int(sig[i]) for i in np.flatnonzero(sig)} == {7: 1, 10: -1, 13: 1}


def test_two_pairs_with_room_trade_independently_from_one_wallet() -> None:
    result = run([AAA, CCC], max_open=2)
    assert trades(result) == [
        ("AAA/BBB", 5, 8, LOSS), ("CCC/BBB", 5, 8, LOSS),
        ("AAA/BBB", 11, 14, WIN), ("CCC/BBB", 11, 14, WIN),
    ]  # fmt: skip
    assert result.final_equity == D("1000") + 2 * (LOSS + WIN)  # 1011.27198
    assert result.skipped == [] and result.candles == 15
    # equity at the close of candle 5: 1000 - 2 x 100.095996 + 2 x 7.692 x close 16
    assert result.equity[5] == pytest.approx(1000 - 2 * 100.095996 + 2 * 7.692 * 16)
    assert [(p.symbol, p.candles, p.signals) for p in result.pairs] == [
        ("AAA/BBB", 15, 4), ("CCC/BBB", 15, 4)]  # fmt: skip


def test_max_open_trades_refuses_the_second_pair_and_list_order_decides() -> None:
    first = run([AAA, CCC], max_open=1)
    assert trades(first) == [("AAA/BBB", 5, 8, LOSS), ("AAA/BBB", 11, 14, WIN)]
    assert [(s.symbol, s.index, s.reason) for s in first.skipped] == [
        ("CCC/BBB", 4, "max_open_trades (1) reached"),
        ("CCC/BBB", 10, "max_open_trades (1) reached"),
    ]  # fmt: skip
    # the same candles, the other order: at the shared timestamps CCC comes first
    second = run([CCC, AAA], max_open=1)
    assert trades(second) == [("CCC/BBB", 5, 8, LOSS), ("CCC/BBB", 11, 14, WIN)]
    assert {s.symbol for s in second.skipped} == {"AAA/BBB"}


def test_an_exit_frees_its_slot_only_at_the_next_candle() -> None:
    # SSS's entry fills at candle 8, when AAA's first trade exits: the slot still counts
    result = run([AAA, SSS], max_open=1)
    assert trades(result) == [("AAA/BBB", 5, 8, LOSS), ("AAA/BBB", 11, 14, WIN)]
    assert [(s.symbol, s.index, s.reason) for s in result.skipped] == [
        ("SSS/BBB", 7, "max_open_trades (1) reached")]  # fmt: skip
    assert result.candles == 15 and [p.candles for p in result.pairs] == [15, 14]


def test_the_wallet_is_shared_and_order_decides_who_gets_the_proceeds() -> None:
    # capital 150: one stake of 100 (+ fee) at a time fits; AAA's first exit at candle 8
    # gives back 84.527388 -> 134.431392, enough for SSS's entry at that very timestamp
    # because AAA comes first; AAA's own re-entry at 11 then finds 34.335396
    result = run([AAA, SSS], capital="150", max_open=2)
    assert trades(result) == [("AAA/BBB", 5, 8, LOSS), ("SSS/BBB", 8, 11, LOSS)]
    assert [(s.symbol, s.index) for s in result.skipped] == [("AAA/BBB", 10)]
    assert result.skipped[0].reason.startswith("wallet cannot pay the stake: fixed stake 100")
    assert "free 34.335396" in result.skipped[0].reason
    assert result.final_equity == D("150") + 2 * LOSS  # 118.862784
    # SSS first: at candle 8 the wallet holds 49.904004 when SSS asks; AAA trades on
    flipped = run([SSS, AAA], capital="150", max_open=2)
    assert trades(flipped) == [("AAA/BBB", 5, 8, LOSS), ("AAA/BBB", 11, 14, WIN)]
    assert [(s.symbol, s.index) for s in flipped.skipped] == [("SSS/BBB", 7)]
    assert "free 49.904004" in flipped.skipped[0].reason
    assert flipped.final_equity == D("150") + LOSS + WIN  # 155.63599


def test_pairs_must_share_their_quote_currency() -> None:
    other = PairData(AAA.candles, _market("AAA/EUR"))
    with pytest.raises(ValueError, match="share their quote currency"):
        run([AAA, other])


def _same(single, multi) -> None:  # type: ignore[no-untyped-def]
    fields = ("entry_index", "entry_price", "amount", "entry_fee", "exit_index", "exit_price",
              "exit_fee", "pnl", "exit_reason", "bootstrap")  # fmt: skip
    assert [[getattr(t, f) for f in fields] for t in multi.trades] == [
        [getattr(t, f) for f in fields] for t in single.trades]  # fmt: skip
    assert multi.final_equity == single.final_equity
    assert np.array_equal(multi.equity, single.equity)
    assert multi.metrics == single.metrics


@pytest.mark.parametrize("sizing", [FIXED, SizingConfig(), SizingConfig(mode="percent",
                                                                         percent=D(50))])
def test_one_pair_walks_exactly_like_the_single_pair_backtest(sizing: SizingConfig) -> None:
    strategy = get_strategy("sma_crossover")
    params = strategy.validate_params({"fast": 2, "slow": 3})
    single = run_backtest(AAA.candles, strategy, params, capital=D(1000), market=AAA.market,
                          fees=FEES, sizing=sizing, timeframe_seconds=3600)  # fmt: skip
    _same(single, run([AAA], max_open=1, sizing=sizing))


TIGHT_EXITS = {"stoploss": -0.004, "minimal_roi": {"0": 0.006, "60": 0.002},
               "trailing": {"positive": 0.002, "offset": 0.003}, "max_hold_minutes": 600}


@pytest.mark.parametrize("template", ["sma_crossover", "breakout_atr_stop"])
def test_one_recorded_pair_with_stops_and_roi_matches_the_single_backtest(template: str) -> None:
    path = sorted(Path(SHIPPED).glob("*.csv"))[0]
    name, series = load_candle_file(path)
    market = MarketInfo(name.symbol, name.base, name.quote, amount_step=series.amount_step,
                        price_step=series.price_step)  # fmt: skip
    doc = template_document(template)
    assert doc is not None
    doc = parse_document({**doc.model_dump(mode="json", exclude_none=True), "exits": TIGHT_EXITS})
    strategy = DocumentStrategy(doc, timeframe="5m")
    params = strategy.default_params()
    sizing = SizingConfig(mode="percent", percent=D(50))
    single = run_backtest(series.candles, strategy, params, capital=D(1), market=market,
                          fees=FEES, sizing=sizing, timeframe_seconds=300)  # fmt: skip
    assert len(single.trades) > 5
    multi = run([PairData(series.candles, market)], capital="1", max_open=1, sizing=sizing,
                strategy=strategy, params=params)  # fmt: skip
    _same(single, multi)
    assert {t.exit_reason for t in multi.trades} >= {"stop_loss", "roi", "trailing_stop"}


def test_hour_fixture_is_hourly() -> None:
    assert int(AAA.candles.ts[1] - AAA.candles.ts[0]) == HOUR_MS and int(AAA.candles.ts[0]) == T0
