"""The several-pair walk on integer ledgers against the same walk in `Decimal`: every trade,
skipped entry, wallet, equity point and metric identical, to the last unit and in the same
spelling, over recorded candles (with and without stops and ROI) and over hand-made cases of
a shared wallet, `max_open_trades` refusals and pairs meeting at one timestamp."""

from __future__ import annotations

import itertools
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.domain.sizing import SizingConfig
from app.domain.strategies import get_strategy
from app.domain.strategies.doc_model import parse_document
from app.domain.strategies.doc_strategy import DocumentStrategy
from app.domain.strategies.templates import template_document
from app.engine.fill_model import FeeSchedule
from app.engine.pairs import (
    PairData,
    PairsResult,
    run_pairs_backtest,
    run_pairs_backtest_in_decimal,
)
from app.market.base import MarketInfo
from app.market.csv_candles import load_candle_file
from tests.engine.test_pairs import AAA, CCC, SSS, TIGHT_EXITS
from tests.engine.test_scaled_ledger import _cuts_near_signals
from tests.support.recorded import SHIPPED, recorded_files

D = Decimal
SMA = get_strategy("sma_crossover")
FEES = FeeSchedule(D("0.001"), D("0.001"))
SLIPPED = FeeSchedule(D("0.0025"), D("0.00075"), D("7.5"))


@cache
def _load(path: Path) -> PairData:
    name, series = load_candle_file(path)
    market = MarketInfo(name.symbol, name.base, name.quote, amount_step=series.amount_step,
                        price_step=series.price_step)  # fmt: skip
    return PairData(series.candles, market)


def _shipped() -> list[PairData]:
    return [_load(p) for p in sorted(Path(SHIPPED).glob("*.csv"))]


def _both(pairs: list[PairData], *, strategy: Any = SMA, params: Any = None,
          **kw: Any) -> tuple[PairsResult, PairsResult]:  # fmt: skip
    params = params if params is not None else strategy.validate_params({"fast": 10, "slow": 30})
    args = dict(capital=D(1), fees=FEES, timeframe_seconds=300, max_open_trades=len(pairs)) | kw
    return tuple(  # type: ignore[return-value]
        run(pairs, strategy, params, **args)  # type: ignore[arg-type]
        for run in (run_pairs_backtest, run_pairs_backtest_in_decimal)
    )


def _identical(scaled: PairsResult, exact: PairsResult) -> None:
    def spelled(result: PairsResult) -> list[dict[str, str]]:
        return [{k: repr(v) for k, v in vars(t).items()} for t in result.trades]

    assert exact.ledger == "decimal"
    assert spelled(scaled) == spelled(exact)
    assert scaled.trades == exact.trades
    assert scaled.skipped == exact.skipped
    assert repr(scaled.final_equity) == repr(exact.final_equity)
    assert np.array_equal(scaled.ts, exact.ts)
    assert np.array_equal(scaled.equity, exact.equity)
    assert scaled.metrics == exact.metrics
    assert (scaled.candles, scaled.signals, scaled.pairs, scaled.max_open_trades) == (
        exact.candles, exact.signals, exact.pairs, exact.max_open_trades)  # fmt: skip
    assert [t.to_dict() for t in scaled.trades] == [t.to_dict() for t in exact.trades]


SIZINGS = [
    SizingConfig(mode="fixed", stake=D("0.3")),  # three stakes fit the wallet of 1
    SizingConfig(mode="fixed", stake=D("0.6")),  # one stake at a time: the wallet refuses
    SizingConfig(mode="percent", percent=D("37.5")),
    SizingConfig(mode="kelly", bootstrap_trades=3, kelly_cap=D("0.9")),
]


@pytest.mark.parametrize(("sizing", "fees", "max_open"),
                         list(itertools.product(SIZINGS, [FEES, SLIPPED], [1, 2, 3])))  # fmt: skip
def test_shipped_pairs_walk_the_same_on_integers_as_in_decimal(
    sizing: SizingConfig, fees: FeeSchedule, max_open: int
) -> None:
    scaled, exact = _both(_shipped(), sizing=sizing, fees=fees, max_open_trades=max_open)
    assert scaled.ledger == "scaled"
    # (Kelly sees no edge after its bootstrap trades here: its later entries have no stake)
    assert len(exact.trades) >= 3 and len(exact.trades) + len(exact.skipped) > 40
    _identical(scaled, exact)


def test_every_recorded_pair_walks_the_same_on_integers_as_in_decimal() -> None:
    pairs = [_load(p) for p in recorded_files() if "_5m" in p.name]
    assert len(pairs) >= 3
    for max_open, sizing in [(len(pairs), SizingConfig(mode="fixed", stake=D("0.1"))),
                             (2, SizingConfig(mode="percent", percent=D(40)))]:  # fmt: skip
        scaled, exact = _both(pairs, sizing=sizing, max_open_trades=max_open, fees=SLIPPED)
        assert scaled.ledger == "scaled" and len(exact.trades) > 100
        _identical(scaled, exact)


@pytest.mark.parametrize(("template", "sizing"), list(itertools.product(
    ["sma_crossover", "breakout_atr_stop"],
    [SizingConfig(mode="percent", percent=D(50)), SizingConfig(mode="fixed", stake=D("0.4"))],
)))  # fmt: skip
def test_stops_roi_and_trailing_exits_walk_the_same_on_integers(
    template: str, sizing: SizingConfig
) -> None:
    doc = template_document(template)
    assert doc is not None
    doc = parse_document({**doc.model_dump(mode="json", exclude_none=True), "exits": TIGHT_EXITS})
    strategy = DocumentStrategy(doc, timeframe="5m")
    scaled, exact = _both(_shipped(), strategy=strategy, params=strategy.default_params(),
                          sizing=sizing, max_open_trades=2, fees=SLIPPED)  # fmt: skip
    assert scaled.ledger == "scaled"
    assert {t.exit_reason for t in exact.trades} >= {"stop_loss", "roi", "trailing_stop"}
    _identical(scaled, exact)


FIXTURE = {"fast": 2, "slow": 3}
HAND = dict(fees=FEES, timeframe_seconds=3600, params=SMA.validate_params(FIXTURE),
            sizing=SizingConfig(mode="fixed", stake=D("100")))  # fmt: skip


@pytest.mark.parametrize(("pairs", "capital", "max_open"), [
    ([AAA, CCC], "1000", 2),  # room for both
    ([AAA, CCC], "1000", 1),  # max_open_trades refuses the second, list order decides
    ([CCC, AAA], "1000", 1),
    ([AAA, SSS], "1000", 1),  # an exit frees its slot only at the next candle
    ([AAA, SSS], "150", 2),  # one wallet: the first pair at a timestamp gets the proceeds
    ([SSS, AAA], "150", 2),
    ([AAA, SSS, CCC], "210", 3),
])  # fmt: skip
def test_hand_made_walks_are_the_same_on_integers(pairs: list[PairData], capital: str,
                                                  max_open: int) -> None:  # fmt: skip
    scaled, exact = _both(pairs, capital=D(capital), max_open_trades=max_open, **HAND)
    assert scaled.ledger == "scaled"
    _identical(scaled, exact)


def test_the_wallets_spelling_before_and_after_the_first_fill_is_the_decimal_walks() -> None:
    # capital 90 pays no stake of 100: refused while the wallet is still the capital itself
    scaled, exact = _both([AAA, CCC], capital=D(90), max_open_trades=2, **HAND)
    assert scaled.skipped[0].reason.endswith("free 90") and not scaled.trades
    _identical(scaled, exact)
    scaled, exact = _both([AAA, SSS], capital=D(150), max_open_trades=2, **HAND)
    assert "free 34.335396000000000000" in scaled.skipped[0].reason
    _identical(scaled, exact)


def _with(pair: PairData, **changes: Any) -> PairData:
    m = pair.market
    fields = dict(amount_step=m.amount_step, price_step=m.price_step) | changes
    return PairData(pair.candles, MarketInfo(m.symbol, m.base, m.quote, **fields))


def test_a_pair_with_market_minimums_walks_the_whole_run_in_decimal() -> None:
    pairs = [AAA, _with(SSS, min_notional=D("5"))]
    scaled, exact = _both(pairs, capital=D(1000), max_open_trades=2, **HAND)
    assert scaled.ledger == "decimal"
    _identical(scaled, exact)


def test_a_wallet_past_the_exact_range_walks_in_decimal() -> None:
    big = SizingConfig(mode="fixed", stake=D("1E+8"))
    args = HAND | {"sizing": big}
    scaled, exact = _both([AAA, SSS], capital=D("1E+9"), max_open_trades=2, **args)
    assert scaled.ledger == "decimal" and len(exact.trades) == 3
    _identical(scaled, exact)


def test_an_order_the_decimal_rules_refuse_sends_the_run_back_to_decimal() -> None:
    # a stake too small to buy one amount step: refused by the fill rules, said in Decimal
    tiny = HAND | {"sizing": SizingConfig(mode="fixed", stake=D("0.001"))}
    scaled, exact = _both([AAA, CCC], capital=D(1000), max_open_trades=2, **tiny)
    assert scaled.ledger == "decimal" and exact.skipped and not exact.trades
    assert "rejected" in exact.skipped[0].reason
    _identical(scaled, exact)


def test_an_entry_on_the_last_candle_but_one_exits_at_the_end() -> None:
    """Its fill is the last candle, so no exit signal can follow: the integer walk once read
    past the end of its exit table there (found by a several-pair search over the larger
    recordings)."""
    pairs = _shipped()
    params = SMA.validate_params({"fast": 10, "slow": 30})
    first = pairs[0]
    sig = SMA.signals(first.candles, params)
    n = 1 + next(i for i in range(len(sig) - 1, 0, -1) if sig[i] == 1)  # ENTER
    cut = PairData(first.candles.slice(0, n + 1), first.market)
    assert SMA.signals(cut.candles, params)[n - 1] == 1  # enters at the last candle but one
    scaled, exact = _both([cut, *pairs[1:]], params=params,
                          sizing=SizingConfig(mode="fixed", stake=D("0.1")))  # fmt: skip
    assert scaled.ledger == "scaled"
    last = [t for t in exact.trades if t.symbol == first.market.symbol][-1]
    assert last.exit_reason == "end_of_data" and last.entry_index == last.exit_index == n
    _identical(scaled, exact)


def test_pairs_ending_at_any_signal_walk_the_same_on_integers() -> None:
    pairs = _shipped()
    first = pairs[0]
    cuts = _cuts_near_signals(first.candles)
    assert len(cuts) >= 8
    for n in cuts:
        cut = PairData(first.candles.slice(0, n), first.market)
        scaled, exact = _both([cut, *pairs[1:]], sizing=SizingConfig(mode="fixed", stake=D("0.1")))
        assert scaled.ledger == "scaled", n
        _identical(scaled, exact)
