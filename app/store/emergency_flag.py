"""The emergency-stop check that every order transaction makes before it records an order.

On Postgres the flag row is read `FOR SHARE` and that lock is held until the order's
transaction ends; `emergency stop` takes the same row `FOR UPDATE`. So an order either
commits before the stop commits, or sees the stop and is refused: once the stop has
answered, no order anywhere can be recorded. SQLite serialises writers, which gives the
same order of events on the embedded default.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.store.models import SystemState


class TradingHalted(Conflict):
    code = "emergency_stop_active"


def emergency_stop_active(session: Session, *, lock: bool = False) -> bool:
    """The flag; with `lock`, read so that a stop cannot commit between this read and the
    end of the caller's transaction (FOR SHARE on Postgres; on SQLite a no-op write first
    takes the database write lock, which then lasts until the transaction ends)."""
    stmt = select(SystemState.emergency_stop).where(SystemState.id == 1)
    if lock:
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(read=True)
        else:
            session.execute(update(SystemState).where(SystemState.id == 1).values(id=1))
    return bool(session.scalar(stmt))


def assert_trading_allowed(session: Session) -> None:
    """Call inside the transaction that inserts an order, right before the insert."""
    if emergency_stop_active(session, lock=True):
        raise TradingHalted("emergency stop is active: no orders are placed")
