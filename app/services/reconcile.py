"""Does every bot's ledger add up? `flask reconcile` runs this.

For each bot with books, from its fills (the journal) and its balances (the state):

* the accounting identity, to the smallest unit:
  initial capital + realised PnL - fees == cash + open position at cost
  (cash = quote balance, free + locked; cost = the cost basis the fills left open);
* the journal agrees with the state: cash == capital - cost of buys - fees + proceeds of
  sells; base balance == bought - sold == position amount; the position row's cost basis,
  realised PnL and fees equal the sums of its fills;
* locked balances equal what the open orders reserved; each filled order has exactly one
  fill and each fill belongs to a filled order; no balance is negative.

Sums are taken in Python over exact decimals (SQLite stores them as text), inside one
read snapshot (the caller should use REPEATABLE READ on Postgres; see `snapshot_session`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.numbers import decimal_text as _fmt
from app.store.models.ledger import Balance, Fill, Order, Position

__all__ = ["ReconcileResult", "reconcile_all", "reconcile_bot", "use_snapshot"]

ZERO = Decimal(0)


@dataclass
class ReconcileResult:
    bot_id: int
    quote: str
    expected: Decimal  # initial capital + realised PnL - fees
    actual: Decimal  # cash + open position at cost
    problems: list[str] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected

    @property
    def ok(self) -> bool:
        return not self.problems


def use_snapshot(session: Session) -> None:
    """Make the session's transaction one consistent snapshot (Postgres: REPEATABLE READ,
    read only). Call before the first query; SQLite read transactions already are."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )


def reconcile_bot(session: Session, position: Position) -> ReconcileResult:
    bot_id = position.bot_id
    balances = {
        b.asset: b for b in session.scalars(select(Balance).where(Balance.bot_id == bot_id))
    }
    fills = list(session.scalars(select(Fill).where(Fill.bot_id == bot_id)))
    orders = list(
        session.execute(
            select(Order.id, Order.side, Order.state, Order.reserved).where(Order.bot_id == bot_id)
        ).all()
    )

    buys = [f for f in fills if f.side == "buy"]
    sells = [f for f in fills if f.side == "sell"]
    fees = sum((f.fee for f in fills), ZERO)
    realised = sum((f.realised_pnl for f in fills), ZERO)
    open_cost = sum((f.cost_basis_change for f in fills), ZERO)
    bought = sum((f.amount for f in buys), ZERO)
    sold = sum((f.amount for f in sells), ZERO)

    problems: list[str] = []
    quote = balances.get(position.quote)
    base = balances.get(position.base)
    if quote is None or base is None:
        problems.append("a balance row is missing")
        cash = ZERO
        held = ZERO
    else:
        cash = quote.total
        held = base.total
    capital = position.initial_capital
    expected = capital + realised - fees
    actual = cash + open_cost
    q = position.quote
    if expected != actual:
        problems.append(
            f"initial capital + realised PnL - fees = {_fmt(expected)} {q}, but cash + open "
            f"positions at cost = {_fmt(actual)} {q} (difference {_fmt(actual - expected)} {q})"
        )
    journal_cash = (
        capital - sum((f.cost for f in buys), ZERO) - fees + sum((f.cost for f in sells), ZERO)
    )
    if journal_cash != cash:
        problems.append(
            f"cash is {_fmt(cash)} {q} but the fills give {_fmt(journal_cash)} {q} "
            f"(difference {_fmt(cash - journal_cash)} {q})"
        )
    if held != bought - sold or position.amount != held:
        problems.append(
            f"{position.base}: balance {_fmt(held)}, position {_fmt(position.amount)}, "
            f"fills {_fmt(bought - sold)} (bought {_fmt(bought)} - sold {_fmt(sold)})"
        )
    for name, stored, journal in (
        ("cost basis", position.cost_basis, open_cost),
        ("realised PnL", position.realised_pnl, realised),
        ("fees", position.fees_paid, fees),
    ):
        if stored != journal:
            problems.append(
                f"position {name} is {_fmt(stored)} {q} but its fills sum to {_fmt(journal)} {q}"
            )

    reserved_quote = sum((r for _, side, st, r in orders if st == "open" and side == "buy"), ZERO)
    reserved_base = sum((r for _, side, st, r in orders if st == "open" and side == "sell"), ZERO)
    if quote is not None and quote.locked != reserved_quote:
        problems.append(
            f"{q} locked {_fmt(quote.locked)} but open buy orders reserve {_fmt(reserved_quote)}"
        )
    if base is not None and base.locked != reserved_base:
        problems.append(
            f"{position.base} locked {_fmt(base.locked)} but open sell orders reserve "
            f"{_fmt(reserved_base)}"
        )
    for b in balances.values():
        if b.free < 0 or b.locked < 0:
            problems.append(f"{b.asset} balance is negative (free {b.free}, locked {b.locked})")

    filled = {oid for oid, _, st, _ in orders if st == "filled"}
    filled_by_fills = [f.order_id for f in fills]
    if sorted(filled) != sorted(filled_by_fills):
        orphans = sorted(set(filled_by_fills) - filled)
        missing = sorted(filled - set(filled_by_fills))
        problems.append(
            f"orders and fills disagree: fills without a filled order {orphans[:10]}, "
            f"filled orders without a fill {missing[:10]}"
        )
    return ReconcileResult(bot_id, q, expected, actual, problems)


def reconcile_all(session: Session, bot_ids: Iterable[int] | None = None) -> list[ReconcileResult]:
    """One result per bot with books (all bots, or those listed), by bot id."""
    stmt = select(Position).order_by(Position.bot_id)
    if bot_ids is not None:
        stmt = stmt.where(Position.bot_id.in_(list(bot_ids)))
    return [reconcile_bot(session, p) for p in session.scalars(stmt)]
