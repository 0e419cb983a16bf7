"""Claims hand every due row to exactly one worker, with real competing processes, and an
expired lease is reclaimed while a live one is not."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine.interfaces import CacheStats

from app.store.base import utcnow
from app.store.claims import claim, release, release_batch, renew
from app.store.db import get_engine, session_scope, single_statement_scope
from app.store.models import Bot
from tests.support.databases import db_backend
from tests.support.processes import ROOT, VENV_BIN, service_env

CLAIMER = """
import json, sys
from datetime import timedelta
from app.store.claims import claim, release
from app.store.base import utcnow
from app.store.db import init_database, session_scope
from app.store.models import Bot
from config import get_settings

init_database(get_settings())
owner = sys.argv[1]
taken = []
idle = 0
while idle < 20:
    now = utcnow()
    with session_scope() as s:
        ids = claim(s, Bot, owner=owner, now=now, lease_seconds=30, limit=7,
                    where=(Bot.status == "running") & (Bot.next_tick_at <= now),
                    order_by=Bot.next_tick_at)
    if not ids:
        idle += 1
        continue
    idle = 0
    with session_scope() as s:
        for bot_id in ids:
            assert release(s, Bot, bot_id, owner=owner,
                           values={"next_tick_at": now + timedelta(days=1)})
    taken.extend(ids)
print(json.dumps(taken))
"""


def _bots(user_id: int, count: int, **fields: object) -> list[int]:
    with session_scope() as db:
        bots = [
            Bot(
                user_id=user_id,
                name=f"b{i}",
                symbol="ETH/BTC",
                timeframe="5m",
                strategy="sma_crossover",
                capital=Decimal(100),
                status="running",
                next_tick_at=utcnow() - timedelta(seconds=5),
                **fields,
            )
            for i in range(count)
        ]
        db.add_all(bots)
        db.flush()
        return [b.id for b in bots]


def test_three_processes_claim_each_due_row_exactly_once(app, settings, make_user) -> None:  # type: ignore[no-untyped-def]
    ids = _bots(make_user().id, 300)
    env = service_env(settings)
    procs = [
        subprocess.Popen(
            [str(VENV_BIN / "python"), "-c", CLAIMER, f"w{i}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    claimed = [bot_id for taken in results for bot_id in taken]
    assert sorted(claimed) == sorted(ids)  # every row once: none twice, none missed


def test_live_lease_is_not_reclaimed_but_expired_one_is(app, make_user) -> None:  # type: ignore[no-untyped-def]
    (bot_id,) = _bots(make_user().id, 1)
    now = utcnow()
    due = (Bot.status == "running") & (Bot.next_tick_at <= now)
    with session_scope() as db:
        assert claim(
            db, Bot, owner="a", now=now, lease_seconds=10, limit=5, where=due, order_by=Bot.id
        ) == [bot_id]
    with session_scope() as db:
        assert (
            claim(
                db, Bot, owner="b", now=now, lease_seconds=10, limit=5, where=due, order_by=Bot.id
            )
            == []
        )
    later = now + timedelta(seconds=11)
    with session_scope() as db:
        assert claim(
            db, Bot, owner="b", now=later, lease_seconds=10, limit=5, where=due, order_by=Bot.id
        ) == [bot_id]
    with session_scope() as db:
        # The first owner lost its lease: it can neither renew nor release (fencing).
        assert not renew(db, Bot, bot_id, owner="a", now=later, lease_seconds=10)
        assert not release(db, Bot, bot_id, owner="a")
        assert release(db, Bot, bot_id, owner="b")
        bot = db.get(Bot, bot_id)
        assert bot is not None and bot.lease_owner is None


def test_claim_and_release_statements_come_from_the_compiled_cache(app, make_user) -> None:  # type: ignore[no-untyped-def]
    """A claim is one statement, compiled once per process: a construct the cache could not
    key (the `ARRAY(subquery)` once) made every claim and release compile anew."""
    ids = _bots(make_user().id, 4)
    hits: list[Any] = []

    def record(_conn: Any, _cursor: Any, _sql: str, _params: Any, context: Any, _many: Any) -> None:
        hits.append(context.cache_hit)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        for owner in ("a", "b"):
            now = utcnow()
            due = (Bot.status == "running") & (Bot.next_tick_at <= now)
            with session_scope() as db:
                taken = claim(db, Bot, owner=owner, now=now, lease_seconds=30, limit=2,
                              where=due, order_by=Bot.id)  # fmt: skip
            later = {"next_tick_at": now + timedelta(days=1)}
            with session_scope() as db:
                assert release_batch(db, Bot, taken, owner=owner, values=later) == 2
            assert len(taken) == 2
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert CacheStats.NO_CACHE_KEY not in hits
    assert hits[2:] == [CacheStats.CACHE_HIT, CacheStats.CACHE_HIT]  # the second claim, release
    with session_scope() as db:
        assert sorted(db.scalars(select(Bot.id).where(Bot.lease_owner.is_(None)))) == ids


def test_a_claim_in_a_single_statement_scope_is_durable_as_it_returns(app, make_user) -> None:  # type: ignore[no-untyped-def]
    """The dispatcher claims in `single_statement_scope`: the lease is committed by the
    statement itself (on Postgres, an autocommit connection), so another worker sees it taken
    while the claimer still holds its connection, and a second claimer gets nothing."""
    ids = _bots(make_user().id, 3)
    now = utcnow()
    due = (Bot.status == "running") & (Bot.next_tick_at <= now)
    with single_statement_scope() as db:
        taken = claim(db, Bot, owner="a", now=now, lease_seconds=10, limit=2, where=due,
                      order_by=Bot.id)  # fmt: skip
        assert sorted(taken) == ids[:2]
        if db_backend() != "sqlite":  # SQLite's one writer is this scope until it ends
            with session_scope() as other:
                owners = dict(other.execute(select(Bot.id, Bot.lease_owner)).tuples().all())
                assert owners == {ids[0]: "a", ids[1]: "a", ids[2]: None}
                assert claim(other, Bot, owner="b", now=now, lease_seconds=10, limit=5,
                             where=due, order_by=Bot.id) == [ids[2]]  # fmt: skip
        assert release_batch(db, Bot, taken, owner="a") == 2
    with session_scope() as db:
        assert db.scalar(select(Bot.lease_owner).where(Bot.id == ids[0])) is None
