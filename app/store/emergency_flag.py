"""The emergency-stop check that every order transaction makes before it records an order.

On Postgres the gate is a transaction-level advisory lock: an order transaction takes it
shared (`pg_advisory_xact_lock_shared`), then reads the flag, and holds the lock until it
ends; the emergency stop takes it exclusive before it sets the flag. Postgres queues lock
requests fairly, so a stop waits only for the order transactions already past the gate -
later ones queue behind it and, once it has committed, read the flag and are refused. So
an order either commits before the stop commits, or is refused: once the stop has
answered, no order anywhere can be recorded. (A row lock `FOR SHARE` on the flag row would
let new readers jump ahead of a waiting stop forever while tick batches overlap.) SQLite
serialises writers, which gives the same order of events on the embedded default.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, event, exists, func, or_, select, text, update
from sqlalchemy.orm import Session, SessionTransaction

from app.errors import Conflict
from app.store.after_commit import within
from app.store.models import SystemState

# pg_advisory_xact_lock key of the gate (self-healing uses its own key)
GATE_LOCK_KEY = 7_349_282_401
_CHECKED = "tw_trading_gate_checked"


class TradingHalted(Conflict):
    code = "emergency_stop_active"


def take_gate(session: Session, *, exclusive: bool) -> None:
    """Hold the gate until the transaction ends: shared to record orders, exclusive to
    change the flag (Postgres; SQLite's single writer needs no lock of its own)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    session.execute(select(lock(GATE_LOCK_KEY)))


def holds_gate(session: Session) -> bool:
    """Whether this session's transaction has passed the gate (and so holds it)."""
    checked = session.info.get(_CHECKED)
    transaction = session.get_transaction()
    return checked is not None and transaction is not None and checked[0] is transaction


def _mark_gate_passed(session: Session) -> None:
    """Remember that the gate is held, and where: a savepoint that rolls back releases the
    advisory lock taken inside it (a failed tick after its order was refused or rolled
    back), so the mark is dropped with it and the next order asks the gate again."""
    root = session.get_transaction()
    innermost = session.get_nested_transaction() or root
    session.info[_CHECKED] = (root, innermost)
    if not event.contains(session, "after_soft_rollback", _forget_gate):
        event.listen(session, "after_soft_rollback", _forget_gate)


def _forget_gate(session: Session, previous_transaction: SessionTransaction) -> None:
    checked = session.info.get(_CHECKED)
    if checked is not None and within(checked[1], previous_transaction):
        del session.info[_CHECKED]


def stop_waiting(session: Session) -> bool:
    """Whether an emergency stop is active or queued for the gate (Postgres), in one query:
    a long transaction that may hold bot rows or the gate (a tick batch) checks this between
    units of work and gives way - rolls back - so the stop never waits for a whole batch."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return bool(session.scalar(_STOP_WAITING))


# Built once: a batch holding the gate asks this every STOP_LOOK_HOLDING_SECONDS.
_STOP_QUEUED = text(
    "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    f"AND mode = 'ExclusiveLock' AND classid = {GATE_LOCK_KEY >> 32} "
    f"AND objid = {GATE_LOCK_KEY & 0xFFFFFFFF} AND objsubid = 1)"
)
_STOP_WAITING = select(or_(SystemState.emergency_stop, _STOP_QUEUED)).where(SystemState.id == 1)


def trading_allowed_condition() -> ColumnElement[bool]:
    """A condition that is false while the emergency stop is active (for claims: a worker
    takes no bot while trading is stopped)."""
    return ~exists().where(SystemState.id == 1, SystemState.emergency_stop.is_(True))


def emergency_stop_active(session: Session, *, lock: bool = False) -> bool:
    """The flag; with `lock`, read so that a stop cannot commit between this read and the
    end of the caller's transaction (the gate held shared on Postgres; on SQLite a no-op
    write first takes the database write lock, which then lasts until the transaction
    ends)."""
    stmt = select(SystemState.emergency_stop).where(SystemState.id == 1)
    if lock:
        if session.get_bind().dialect.name == "postgresql":
            take_gate(session, exclusive=False)  # then read: a statement of its own
        else:
            session.execute(update(SystemState).where(SystemState.id == 1).values(id=1))
    return bool(session.scalar(stmt))


def assert_trading_allowed(session: Session) -> None:
    """Call inside the transaction that inserts an order, right before the insert. Once a
    transaction has passed the gate, the flag cannot change until it ends, so later orders
    of the same transaction (a tick batch) pass without asking again."""
    if holds_gate(session):
        return
    if emergency_stop_active(session, lock=True):
        raise TradingHalted("emergency stop is active: no orders are placed")
    _mark_gate_passed(session)
