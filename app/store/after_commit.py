"""Work that must wait for the database: run a callback once the session's outermost
transaction commits, so news (events, Redis notices, exchange calls) never runs ahead of what
is stored.

SQLAlchemy's `after_commit` also fires when a savepoint is released, and `after_rollback`
when one rolls back; a callback here is tied to the transaction it was registered in, so it
runs only after the outer commit, is dropped when its own transaction (or savepoint, or an
enclosing one) rolls back, and survives the rollback of an unrelated savepoint (another bot's
failed tick in the same batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("tradewind.after_commit")

_ENTRIES = "tw_after_commit"
_HOOKED = "tw_after_commit_hooked"


def on_commit(session: Session, callback: Callable[[], None], *, key: str | None = None) -> None:
    """Run `callback` once after the outer commit; a `key` keeps one callback per key."""
    transaction = session.get_nested_transaction() or session.get_transaction()
    entries: dict[Any, tuple[SessionTransaction | None, Callable[[], None]]]
    entries = session.info.setdefault(_ENTRIES, {})
    entries[key if key is not None else object()] = (transaction, callback)
    if not session.info.get(_HOOKED):
        session.info[_HOOKED] = True
        event.listen(session, "after_commit", _fire)
        event.listen(session, "after_soft_rollback", _drop)


def _fire(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the outer transaction may still roll back
    for _transaction, callback in session.info.pop(_ENTRIES, {}).values():
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


def within(transaction: SessionTransaction | None, ended: SessionTransaction) -> bool:
    """Whether `ended` rolling back undoes what was done in `transaction` (itself or an
    enclosing transaction; None means the outermost)."""
    if transaction is None:
        return not ended.nested
    while transaction is not None:
        if transaction is ended:
            return True
        transaction = transaction.parent
    return False


def _drop(session: Session, previous_transaction: SessionTransaction) -> None:
    entries = session.info.get(_ENTRIES)
    if not entries:
        return
    for key in [k for k, (tx, _cb) in entries.items() if within(tx, previous_transaction)]:
        del entries[key]
