"""The event log's numbering: public ids follow commit order, gap-free, whoever numbers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.services.events import record_event
from app.store import event_log
from app.store.db import new_session, session_scope
from app.store.models.events import Event
from tests.support.databases import db_backend


def _numbered() -> list[tuple[int, Any]]:
    with session_scope() as s:
        event_log.sequence_pending(s)
    with session_scope() as s:
        rows = s.scalars(select(Event).where(Event.seq.is_not(None)).order_by(Event.seq))
        return [(int(e.seq or 0), e.data["n"]) for e in rows]


@pytest.mark.skipif(db_backend() == "sqlite", reason="SQLite has one writer at a time")
def test_a_slow_transaction_gets_an_id_after_those_that_committed_before_it(
    make_user: Callable[..., Any],
) -> None:
    """Inserted first but committed last: its id comes after, so a reader that has read up
    to some id has seen every event below it."""
    user = make_user()
    slow = new_session()
    try:
        record_event(slow, user.id, "trade", {"n": "slow"})
        slow.flush()  # its row exists, with the lower primary key, but is not committed
        with session_scope() as s:
            record_event(s, user.id, "trade", {"n": "quick"})
        assert _numbered() == [(1, "quick")]
        slow.commit()
    finally:
        slow.close()
    assert _numbered() == [(1, "quick"), (2, "slow")]


def test_concurrent_writers_and_numberers_give_gap_free_unique_ids(
    make_user: Callable[..., Any],
) -> None:
    user = make_user()
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for n in range(10):
                with session_scope() as s:
                    record_event(s, user.id, "trade", {"n": k * 100 + n})
                with session_scope() as s:
                    event_log.sequence_pending(s)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    numbered = _numbered()
    assert [seq for seq, _n in numbered] == list(range(1, 41))
    assert sorted(n for _seq, n in numbered) == sorted(
        k * 100 + n for k in range(4) for n in range(10)
    )
