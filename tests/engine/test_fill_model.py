"""The pure fill rules: rounding, minimums, reservations, fill prices, fees, and the identity
capital + realised - fees == cash + cost basis after any sequence of fills."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest

from app.engine.fill_model import (
    Book,
    FeeSchedule,
    FillRejected,
    FillResult,
    PaperOrderRejected,
    execute,
    fill_price,
    find_fill,
    prepare_order,
    release,
    reserve,
)
from tests.engine.ledger_helpers import ETH_BTC, T0_MS, candles

D = Decimal
FEES = FeeSchedule(maker=D("0.001"), taker=D("0.002"), slippage_bps=D("10"))


def _fill(ticket, price, book, fees=FEES, market=ETH_BTC) -> FillResult:
    out = execute(ticket, price, fees=fees, market=market, book=book)
    assert isinstance(out, FillResult), out
    return out


def _identity_holds(book: Book, capital: Decimal) -> bool:
    return capital + book.realised_pnl - book.fees_paid == book.cash + book.cost_basis


def test_market_buy_by_quote_spends_at_most_its_budget_at_the_slipped_open() -> None:
    book = Book.opening(D("1"))
    ticket = prepare_order(
        side="buy", order_type="market", market=ETH_BTC, fees=FEES, book=book,
        quote_amount=D("0.5"),
    )  # fmt: skip
    assert ticket.reserved == D("0.5")
    held = reserve(book, ticket)
    assert (held.quote_free, held.quote_locked) == (D("0.5"), D("0.5"))

    price = fill_price(ticket, open=D("0.08"), high=D("0.09"), low=D("0.07"), fees=FEES,
                       market=ETH_BTC)  # fmt: skip
    assert price == D("0.08008")  # 10 bps worse, on the 0.000001 grid
    out = _fill(ticket, price, held)
    # largest amount on the 0.001 grid with amount * price * (1 + taker) <= 0.5
    assert out.amount == D("6.231")
    assert out.cost == D("6.231") * D("0.08008")
    assert out.fee == out.cost * D("0.002")
    assert out.cost + out.fee <= D("0.5")
    assert (out.cost + out.fee + (out.amount + D("0.001")) * price * D("1.002")) > D("0.5")
    assert out.liquidity == "taker" and out.opens_position
    assert out.book.quote_locked == 0 and out.book.base_free == D("6.231")
    assert out.book.quote_free == D("1") - out.cost - out.fee
    assert _identity_holds(out.book, D("1"))


def test_sell_slippage_goes_against_the_seller_and_closes_the_round_trip() -> None:
    book = Book.opening(D("1"))
    buy = prepare_order(side="buy", order_type="market", market=ETH_BTC, fees=FEES, book=book,
                        amount=D("2"), reference_price=D("0.1"))  # fmt: skip
    bought = _fill(buy, D("0.1"), reserve(book, buy)).book
    sell = prepare_order(side="sell", order_type="market", market=ETH_BTC, fees=FEES,
                         book=bought, amount=D("2"))  # fmt: skip
    price = fill_price(sell, open=D("0.12"), high=D("0.12"), low=D("0.12"), fees=FEES,
                       market=ETH_BTC)  # fmt: skip
    assert price == D("0.119880")
    out = _fill(sell, price, reserve(bought, sell))
    assert out.cost == D("0.23976")  # proceeds
    assert out.realised_pnl == D("0.23976") - D("0.2")
    buy_fee, sell_fee = D("0.2") * D("0.002"), D("0.23976") * D("0.002")
    assert out.closed_trade_pnl == out.realised_pnl - buy_fee - sell_fee
    assert out.book.position == 0 and out.book.cost_basis == 0
    assert out.book.trip_pnl == 0 and out.book.trip_fees == 0
    assert _identity_holds(out.book, D("1"))


def test_amounts_round_down_to_the_step_and_limit_prices_never_get_worse() -> None:
    book = Book.opening(D("10"))
    t = prepare_order(side="buy", order_type="limit", market=ETH_BTC, fees=FEES, book=book,
                      amount=D("1.23456789"), price=D("0.0812345678"))  # fmt: skip
    assert t.amount == D("1.234") and t.price == D("0.081234")
    assert t.reserved == D("1.234") * D("0.081234") * D("1.001")
    held = _fill(t, t.price, reserve(book, t)).book
    s = prepare_order(side="sell", order_type="limit", market=ETH_BTC, fees=FEES, book=held,
                      amount=D("1.2349"), price=D("0.0812341"))  # fmt: skip
    assert s.amount == D("1.234") and s.price == D("0.081235")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"amount": D("0.0004")}, "below_precision"),
        ({"amount": D("-1")}, "invalid_order"),
        ({"amount": "abc"}, "invalid_order"),
        ({"amount": float("nan")}, "invalid_order"),
        ({"amount": D("1"), "quote_amount": D("1")}, "invalid_order"),
        ({}, "invalid_order"),
        ({"amount": D("100")}, "insufficient_balance"),
        ({"amount": D("1"), "price": D("0.1")}, "invalid_order"),  # market takes no price
    ],
)
def test_impossible_buys_are_rejected_with_a_reason(kwargs, reason) -> None:
    with pytest.raises(PaperOrderRejected) as err:
        prepare_order(side="buy", order_type="market", market=ETH_BTC, fees=FEES,
                      book=Book.opening(D("1")), reference_price=D("0.1"), **kwargs)  # fmt: skip
    assert err.value.reason == reason
    assert err.value.status == 422 and err.value.code == "order_rejected"
    assert err.value.message


def test_market_minimums_are_enforced() -> None:
    market = replace(ETH_BTC, min_amount=D("0.01"), min_notional=D("0.001"))
    book = Book.opening(D("1"))
    with pytest.raises(PaperOrderRejected) as err:
        prepare_order(side="buy", order_type="limit", market=market, fees=FEES, book=book,
                      amount=D("0.005"), price=D("0.1"))  # fmt: skip
    assert err.value.reason == "below_min_amount"
    with pytest.raises(PaperOrderRejected) as err:
        prepare_order(side="buy", order_type="limit", market=market, fees=FEES, book=book,
                      amount=D("0.02"), price=D("0.01"))  # fmt: skip
    assert err.value.reason == "below_min_notional"
    with pytest.raises(PaperOrderRejected) as err:
        prepare_order(side="buy", order_type="market", market=market, fees=FEES, book=book,
                      quote_amount=D("0.0005"), reference_price=D("0.01"))  # fmt: skip
    assert err.value.reason == "below_min_notional"


def test_selling_more_than_is_free_is_rejected_including_what_orders_reserved() -> None:
    book = Book(quote_free=D("1"), base_free=D("1"))
    first = prepare_order(side="sell", order_type="limit", market=ETH_BTC, fees=FEES,
                          book=book, amount=D("0.8"), price=D("0.2"))  # fmt: skip
    book = reserve(book, first)
    with pytest.raises(PaperOrderRejected) as err:
        prepare_order(side="sell", order_type="market", market=ETH_BTC, fees=FEES, book=book,
                      amount=D("0.5"))  # fmt: skip
    assert err.value.reason == "insufficient_balance"
    assert release(book, first) == Book(quote_free=D("1"), base_free=D("1"))


def test_limit_orders_fill_in_full_only_when_the_range_reaches_the_price() -> None:
    book = Book.opening(D("1"))
    buy = prepare_order(side="buy", order_type="limit", market=ETH_BTC, fees=FEES, book=book,
                        amount=D("3"), price=D("0.08"))  # fmt: skip
    c = candles([(0.082, 0.083, 0.0801, 0.081), (0.081, 0.0815, 0.0799, 0.080),
                 (0.080, 0.081, 0.079, 0.0805)])  # fmt: skip
    assert find_fill(buy, c, fill_from_ms=T0_MS, fees=FEES, market=ETH_BTC) == (1, D("0.08"))
    # not eligible before fill_from: the later candle reaches it too
    later = T0_MS + 2 * 300_000
    assert find_fill(buy, c, fill_from_ms=later, fees=FEES, market=ETH_BTC) == (2, D("0.08"))
    out = _fill(buy, D("0.08"), reserve(book, buy))
    assert out.amount == D("3") and out.liquidity == "maker"
    assert out.fee == D("0.24") * D("0.001")
    assert out.book.quote_locked == 0

    sell = prepare_order(side="sell", order_type="limit", market=ETH_BTC, fees=FEES,
                         book=out.book, amount=D("3"), price=D("0.0816"))  # fmt: skip
    assert find_fill(sell, c, fill_from_ms=T0_MS, fees=FEES, market=ETH_BTC) == (0, D("0.0816"))
    assert find_fill(sell, c, fill_from_ms=T0_MS + 300_000, fees=FEES, market=ETH_BTC) is None


def test_a_market_buy_by_amount_the_next_open_made_too_expensive_is_rejected_at_fill() -> None:
    book = Book.opening(D("1"))
    t = prepare_order(side="buy", order_type="market", market=ETH_BTC, fees=FEES, book=book,
                      amount=D("9"), reference_price=D("0.1"))  # fmt: skip
    held = reserve(book, t)
    out = execute(t, D("0.2"), fees=FEES, market=ETH_BTC, book=held)
    assert isinstance(out, FillRejected) and out.reason == "insufficient_balance"
    assert out.book == book  # everything released, nothing spent


def test_the_identity_holds_exactly_after_random_trading() -> None:
    rng = random.Random(11)
    capital = D("2.5")
    book = Book.opening(capital)
    for _ in range(400):
        price = D(str(round(rng.uniform(0.01, 0.2), 6)))
        if book.position and rng.random() < 0.5:
            amount = book.base_free if rng.random() < 0.5 else book.base_free / 3
            try:
                t = prepare_order(side="sell", order_type=rng.choice(["market", "limit"]),
                                  market=ETH_BTC, fees=FEES, book=book, amount=amount,
                                  price=price if rng.random() < 0.5 else None)  # fmt: skip
            except PaperOrderRejected:
                continue
        else:
            try:
                t = prepare_order(side="buy", order_type="market", market=ETH_BTC, fees=FEES,
                                  book=book, quote_amount=book.quote_free * D("0.4"),
                                  reference_price=price)  # fmt: skip
            except PaperOrderRejected:
                continue
        held = reserve(book, t)
        fill_at = t.price or fill_price(t, open=price, high=price, low=price, fees=FEES,
                                        market=ETH_BTC)  # fmt: skip
        out = execute(t, fill_at, fees=FEES, market=ETH_BTC, book=held)
        book = out.book
        assert min(book.quote_free, book.quote_locked, book.base_free, book.base_locked) >= 0
        assert _identity_holds(book, capital)
    assert book.fees_paid > 0 and book.realised_pnl != 0


def test_a_buy_with_more_than_28_significant_digits_terminates_within_budget() -> None:
    """The budget correction steps down exactly even when the amount has 30+ digits (the
    default 28-digit context rounded `qty - step` back to `qty`, looping forever)."""
    import signal

    from app.market.base import MarketInfo

    market = MarketInfo("TINY/BTC", "TINY", "BTC", amount_step=D("5E-11"), price_step=D("1E-18"))
    book = Book.opening(D("370000000"))
    ticket = prepare_order(side="buy", order_type="market", market=market, fees=FEES,
                           book=book, quote_amount=D("370000000"))  # fmt: skip

    def too_slow(*_: object) -> None:
        raise TimeoutError("the budget correction did not terminate")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        out = _fill(ticket, D("1.5E-11"), reserve(book, ticket), market=market)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert out.cost + out.fee <= D("370000000")
    assert _identity_holds(out.book, D("370000000"))
