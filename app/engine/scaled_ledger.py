"""The paper fill rules for a backtest's market round trips, in integers.

A backtest's book changes only by market buys sized by quote and market sells of the whole
position. `app.engine.fill_model` does that arithmetic in `Decimal`; here every amount of the
ledger is an integer count of its smallest unit (1e-18, the ledger's scale), and the
market's steps, the fee rate and the slippage are exact fractions, so each rounding (a price
to its step, an amount down to its step, cost and fees up, proceeds down) is one integer
division that rounds the same way. The results are the same numbers, to the last unit, at a
fraction of the cost: the ints are turned into `Decimal` once per trade, for the record.

`ScaledLedger.usable` says when this applies (steps on the 1e-18 grid, no market minimums);
a method returns None, and the caller redoes the backtest with `Decimal`, whenever the
`Decimal` rules would reject an order or a value grows past what the ambient 28-digit context
keeps exact - so a run that takes this path never differs from one that does not.
"""

from __future__ import annotations

import decimal
import math
from decimal import Context, Decimal

from app.engine.fill_model import BPS, FeeSchedule
from app.market.base import MarketInfo

__all__ = ["SCALE", "UNIT", "ScaledLedger", "exact_multiply", "to_units", "units_decimal"]

UNIT = 10**18  # units in one (the ledger's QUANTUM is 1e-18)
_EXACT = 10**27  # below this a sum in the default 28-digit context is exact
SCALE = Decimal("1E-18")
exact_multiply = Context(prec=60).multiply  # exact for any value of the ledger


def to_units(value: Decimal) -> int | None:
    """`value` in units of 1e-18, or None when it is not on that grid."""
    n, d = value.as_integer_ratio()
    units, rest = divmod(n * UNIT, d)
    return None if rest else units


def units_decimal(units: int) -> Decimal:
    """The ledger's Decimal of `units` (exponent -18, as `fill_model` quantizes)."""
    return exact_multiply(Decimal(units), SCALE)


class ScaledLedger:
    """One wallet's quote and position in units, and the fills of its round trips."""

    __slots__ = ("quote", "held", "cost_basis", "realised", "fees_paid", "entry_fee",
                 "_tn", "_td", "_up", "_ps", "_as", "_buy", "_sell", "_buy_price",
                 "_sell_price", "_price_text", "_step_digits", "_step_scale",
                 "_per_step")  # fmt: skip

    def __init__(self, capital_units: int, market: MarketInfo, fees: FeeSchedule) -> None:
        self.quote = capital_units
        self.held = 0
        self.cost_basis = 0
        self.realised = 0
        self.fees_paid = 0
        self.entry_fee = 0
        self._tn, self._td = fees.taker.as_integer_ratio()
        self._up = self._td + self._tn  # (1 + taker) * td
        ps = to_units(market.price_step)
        am = to_units(market.amount_step)
        assert ps and am, "check `usable` first"
        self._ps, self._as = ps, am
        sn, sd = (fees.slippage_bps / BPS).as_integer_ratio()
        self._buy = (sd + sn, sd)  # 1 + slippage
        self._sell = (sd - sn, sd)  # 1 - slippage
        # the price step as digits * 10**-k: r steps are r * digits / 10**k
        _, step_digits, exponent = market.price_step.normalize().as_tuple()
        digits = int("".join(map(str, step_digits)))
        self._step_digits = digits * 10 ** max(exponent, 0)  # type: ignore[operator]
        self._step_scale = 10 ** max(-exponent, 0)  # type: ignore[operator]
        self._per_step = self._step_scale / self._step_digits
        self._buy_price: dict[float, int] = {}
        self._sell_price: dict[float, int] = {}
        self._price_text: dict[int, Decimal] = {}

    @staticmethod
    def usable(market: MarketInfo, capital: Decimal) -> bool:
        """Whether this ledger reproduces `fill_model` for `market` (else use `Decimal`)."""
        ps, am, cap = to_units(market.price_step), to_units(market.amount_step), to_units(capital)
        return (
            not market.min_amount and not market.min_notional
            and bool(ps) and bool(am) and ps > 0 and am > 0
            and cap is not None and 0 <= cap < _EXACT
            and decimal.getcontext().prec >= 28
        )  # fmt: skip

    # -- prices ------------------------------------------------------------------------

    def buy_price(self, open_: float) -> int | None:
        """`market_fill_price("buy", open)` in units (ceil to the step), None if not > 0."""
        units = self._buy_price.get(open_)
        if units is None:
            num, den = self._buy
            ticks = self._on_grid(open_)
            if ticks is not None:
                units = -((-ticks * num) // den) * self._ps
            elif math.isfinite(open_):
                n, d = Decimal(repr(open_)).as_integer_ratio()
                units = -((-n * num * UNIT) // (d * den * self._ps)) * self._ps
            else:
                return None
            self._buy_price[open_] = units
        return units if units > 0 else None

    def sell_price(self, open_: float) -> int | None:
        """`market_fill_price("sell", open)` in units (floor to the step)."""
        units = self._sell_price.get(open_)
        if units is None:
            num, den = self._sell
            ticks = self._on_grid(open_)
            if ticks is not None:
                units = (ticks * num) // den * self._ps
            elif math.isfinite(open_):
                n, d = Decimal(repr(open_)).as_integer_ratio()
                units = (n * num * UNIT) // (d * den * self._ps) * self._ps
            else:
                return None
            self._sell_price[open_] = units
        return units

    def _on_grid(self, price: float) -> int | None:
        """r when `to_decimal(price)` is exactly r price steps, else None; checked without
        building that decimal (exchanges quote on the grid, so this is the usual case).
        A decimal of at most 15 significant digits is the only one that short to round to
        its float, so when r steps rounds to `price` it is `price`'s shortest repr."""
        if not 0.0 < price < 1e300:
            return None
        r = round(price * self._per_step)
        digits = r * self._step_digits
        if 0 < digits < 10**15 and digits / self._step_scale == price:
            return r
        return None

    def price_decimal(self, units: int) -> Decimal:
        """`units_decimal` of a fill price, once per price (they repeat)."""
        value = self._price_text.get(units)
        if value is None:
            value = self._price_text[units] = units_decimal(units)
        return value

    # -- fills -------------------------------------------------------------------------

    def budget(self, stake: Decimal) -> int:
        """`entry_budget(stake, taker, quote)` in units: stake * (1 + taker), floored,
        capped at the free quote."""
        n, d = stake.as_integer_ratio()
        return min((n * self._up * UNIT) // (d * self._td), max(self.quote, 0))

    def buy(self, budget: int, price: int) -> tuple[int, int, int] | None:
        """A market buy of what `budget` affords at `price` (both > 0): (amount, cost, fee),
        or None where `fill_model` would reject it."""
        if budget <= 0 or budget > self.quote or self.held:
            return None
        step = self._as
        qty = (budget * self._td * UNIT) // (price * self._up * step) * step
        tn, td = self._tn, self._td
        while True:
            cost = -((-qty * price) // UNIT)
            fee = -((-cost * tn) // td)
            if cost + fee <= budget or qty <= 0:
                break
            qty -= step  # rounding of cost/fee overshot the budget
        if qty <= 0 or qty >= _EXACT:
            return None
        self.quote -= cost + fee
        self.held = qty
        self.cost_basis = cost
        self.fees_paid += fee
        self.entry_fee = fee
        return qty, cost, fee

    def sell(self, price: int) -> tuple[int, int, int, int] | None:
        """A market sell of the whole position at `price`: (proceeds, fee, realised, net
        result of the round trip), or None past the exact range."""
        qty = self.held
        proceeds = (qty * price) // UNIT
        fee = -((-proceeds * self._tn) // self._td)
        realised = proceeds - self.cost_basis
        self.quote += proceeds - fee
        self.held = 0
        self.cost_basis = 0
        self.realised += realised
        self.fees_paid += fee
        if (self.quote >= _EXACT or proceeds >= _EXACT or self.fees_paid >= _EXACT
                or not -_EXACT < self.realised < _EXACT):  # fmt: skip
            return None
        return proceeds, fee, realised, realised - self.entry_fee - fee
