"""ccxt precision modes -> Decimal steps."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.market.ccxt_precision import (
    DECIMAL_PLACES,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    market_info_from_ccxt,
    step_from_precision,
)


@pytest.mark.parametrize(
    ("value", "mode", "reference", "step"),
    [
        (0.01, TICK_SIZE, None, "0.01"),
        (1e-08, TICK_SIZE, None, "1E-8"),
        ("0.00010000", TICK_SIZE, None, "0.0001"),
        (5, TICK_SIZE, None, "5"),
        (2, DECIMAL_PLACES, None, "0.01"),
        (8, DECIMAL_PLACES, None, "1E-8"),
        (0, DECIMAL_PLACES, None, "1"),
        (5, SIGNIFICANT_DIGITS, 12.345, "0.001"),
        (5, SIGNIFICANT_DIGITS, 12345, "1"),
        (5, SIGNIFICANT_DIGITS, 0.00012345, "1E-8"),
        (5, SIGNIFICANT_DIGITS, None, "0.0001"),
    ],
)
def test_step_from_precision(value, mode, reference, step) -> None:
    assert step_from_precision(value, mode, reference) == Decimal(step)


def test_missing_precision_and_unknown_mode() -> None:
    assert step_from_precision(None, TICK_SIZE) is None
    with pytest.raises(ValueError):
        step_from_precision(1, 99)


def _market(precision: dict, limits: dict | None = None) -> dict:
    return {
        "symbol": "BTC/USDT",
        "base": "BTC",
        "quote": "USDT",
        "precision": precision,
        "limits": limits
        or {"amount": {"min": 0.00001}, "price": {"min": 0.01}, "cost": {"min": 5}},
    }


def test_same_market_in_each_mode_gives_the_same_steps() -> None:
    # binance BTC/USDT as older ccxt reported it (DECIMAL_PLACES) and as 4.x does (TICK_SIZE)
    places = market_info_from_ccxt(_market({"amount": 5, "price": 2}), DECIMAL_PLACES)
    ticks = market_info_from_ccxt(_market({"amount": 1e-05, "price": 0.01}), TICK_SIZE)
    assert places == ticks
    assert (ticks.amount_step, ticks.price_step) == (Decimal("0.00001"), Decimal("0.01"))
    assert (ticks.min_amount, ticks.min_notional) == (Decimal("0.00001"), Decimal("5"))


def test_significant_digits_use_the_market_minimum_as_magnitude() -> None:
    info = market_info_from_ccxt(
        _market({"amount": 8, "price": 5}, {"amount": {"min": 0.0004}, "price": {"min": 1.2345}}),
        SIGNIFICANT_DIGITS,
    )
    assert info.price_step == Decimal("0.0001")
    assert info.amount_step == Decimal("1E-11")
    assert info.min_notional is None
