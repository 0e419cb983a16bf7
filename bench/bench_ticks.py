"""Tick benchmark: 1,000 running paper bots on Postgres, ticked by gunicorn with two workers.

Three runs over the same bots, in one go:

* at the target load - a 5m candle every 2 s on the replay market, so 1,000 bots need 500
  ticks/s: the ticks per second achieved and the scheduling lag (actual - planned start),
  p50/p99, from the `bot_ticks` rows;
* saturated - a candle every 0.5 s (2,000 ticks/s asked for): what two workers sustain;
* baseline - two processes running a bare claim-and-release loop (`app.store.claims`: one
  statement claims and leases a batch, one releases it) over the same bots, no tick work at
  all, every bot due again as soon as it is released: the ceiling the claims set; printed
  next to two plain psycopg2 loops on the same bots in the same run (`SELECT ... SKIP
  LOCKED` + `UPDATE`, and a single `UPDATE ... WHERE id = ANY(ARRAY(SELECT ... SKIP
  LOCKED))`).

    .venv/bin/python bench/bench_ticks.py [--bots 1000] [--seconds 15] [--claims-only]
                                          [--documents] [--saturated-only]

`--documents` makes the bots run the four built-ins' templates as stored strategy documents
(what a user's own strategy costs a tick, next to a run without it).

Needs Postgres on 127.0.0.1 (TEST_POSTGRES_URL) and Redis (TEST_REDIS_URL) like the tests.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
PG = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# The claim loops replay at 300,000x: a released bot is due again 1 ms later, so they measure
# claiming, not the schedule. At 3,000x (every bot due each 0.1 s) the schedule itself capped
# every loop, ours and the plain ones alike, at 1,000 bots / 0.1 s = 10,000 rows/s.
CLAIM_SPEED = 300_000.0
SYMBOLS = ("ETH/BTC", "LTC/BTC", "XMR/BTC")
STRATEGIES = ("sma_crossover", "rsi_mean_reversion", "bollinger_breakout", "macd_trend")

CLAIM_LOOP = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from app.store.claims import claim, release_batch
    from app.jobs.bot_ticks import due_condition
    from app.store.base import utcnow
    from app.store.db import init_database, single_statement_scope
    from app.store.models import Bot
    from config import get_settings

    init_database(get_settings())
    owner, seconds = sys.argv[1], float(sys.argv[2])
    batch, interval = int(sys.argv[3]), float(sys.argv[4])
    end = time.monotonic() + seconds
    done = 0
    while time.monotonic() < end:
        now = utcnow()
        with single_statement_scope() as db:
            ids = claim(db, Bot, owner=owner, now=now, lease_seconds=30, limit=batch,
                        where=due_condition(now), order_by=Bot.next_tick_at)
        if not ids:
            time.sleep(0.005)
            continue
        with single_statement_scope() as db:
            release_batch(db, Bot, ids, owner=owner,
                          values={"next_tick_at": now + timedelta(seconds=interval)})
        done += len(ids)
    print(done)
    """
)

# Baselines: the same claim-and-release loop in plain psycopg2, no ORM, no app code.
PLAIN_LOOP = textwrap.dedent(
    """
    import sys, time
    import psycopg2
    dsn, owner, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    batch, interval, single = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6] == "single"
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    due = ("next_tick_at <= now() AND deleted_at IS NULL AND status = 'running' "
           "AND (lease_until IS NULL OR lease_until < now())")
    end = time.monotonic() + seconds
    done = 0
    while time.monotonic() < end:
        if single:
            cur.execute("UPDATE bots SET lease_owner = %s, lease_until = now() + interval '30 s' "
                        "WHERE id = ANY(ARRAY(SELECT id FROM bots WHERE " + due +
                        " ORDER BY next_tick_at LIMIT %s FOR UPDATE SKIP LOCKED)) RETURNING id",
                        (owner, batch))
            ids = [r[0] for r in cur.fetchall()]
        else:
            cur.execute("SELECT id FROM bots WHERE " + due + " ORDER BY next_tick_at LIMIT %s "
                        "FOR UPDATE SKIP LOCKED", (batch,))
            ids = [r[0] for r in cur.fetchall()]
            if ids:
                cur.execute("UPDATE bots SET lease_owner = %s, lease_until = now() + "
                            "interval '30 s' WHERE id = ANY(%s)", (owner, ids))
        conn.commit()
        if not ids:
            time.sleep(0.005)
            continue
        cur.execute("UPDATE bots SET lease_owner = NULL, lease_until = NULL, next_tick_at = "
                    "now() + %s * interval '1 s' WHERE id = ANY(%s) AND lease_owner = %s",
                    (interval, ids, owner))
        conn.commit()
        done += len(ids)
    print(done)
    """
)


def create_database() -> str:
    import psycopg2
    from alembic import command
    from alembic.config import Config

    name = f"tw_bench_ticks_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    url = f"postgresql+psycopg2://{PG.split('://', 1)[1]}/{name}"
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "head")
    return url


def drop_database(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    conn.close()


def create_bots(count: int, documents: bool = False) -> list[int]:
    """`count` running bots over the four built-ins; with `documents`, each runs the
    built-in's template stored as the bench user's strategy document (version 1)."""
    from app.domain.strategies.templates import template_document
    from app.engine.ledger import open_bot_ledger
    from app.store.base import utcnow
    from app.store.db import session_scope
    from app.store.models import Bot, User
    from app.store.models.strategies import StrategyDocument, StrategyVersion

    with session_scope() as s:
        user = User(email="bench@example.com", password_hash="!")
        s.add(user)
        s.flush()
        doc_ids: dict[str, int | None] = dict.fromkeys(STRATEGIES)
        for name in STRATEGIES if documents else ():
            row = StrategyDocument(user_id=user.id, name=name, latest_version=1)
            s.add(row)
            s.flush()
            body = template_document(name).model_dump(mode="json", exclude_none=True)  # type: ignore[union-attr]
            s.add(StrategyVersion(document_id=row.id, version=1, body=body))
            doc_ids[name] = row.id
        bots = [
            Bot(
                user_id=user.id, name=f"bench{i}", exchange="replay", symbol=SYMBOLS[i % 3],
                timeframe="5m", strategy=STRATEGIES[i % 4], strategy_params={}, sizing={},
                protections={}, capital=Decimal("1"), status="running",
                paper_started_at=utcnow(), strategy_document_id=doc_ids[STRATEGIES[i % 4]],
                strategy_version=1 if documents else None,
            )
            for i in range(count)
        ]  # fmt: skip
        s.add_all(bots)
        s.flush()
        for bot in bots:
            open_bot_ledger(s, bot)
        return [b.id for b in bots]


def reset_schedule(speed: float) -> None:
    """Every bot due at the latest boundary of the grid at `speed`, no lease, no history."""
    from fractions import Fraction

    from sqlalchemy import delete, update

    from app.domain.tick_grid import TickGrid
    from app.engine.tick import from_ms, to_ms
    from app.market.replay_clock import DEFAULT_ANCHOR_MS
    from app.store.base import utcnow
    from app.store.db import session_scope
    from app.store.models import Bot
    from app.store.models.trading import BotTick

    grid = TickGrid(DEFAULT_ANCHOR_MS, Fraction(300_000) / Fraction(str(speed)), 300_000)
    with session_scope() as s:
        s.execute(delete(BotTick))
        s.execute(
            update(Bot).values(
                next_tick_at=from_ms(grid.latest_due(to_ms(utcnow()))),
                last_tick_at=None,
                lease_owner=None,
                lease_until=None,
            )
        )


def env_for(url: str, prefix: str, speed: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        APP_ENV="development",
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        REDIS_PREFIX=prefix,
        REPLAY_SPEED=str(speed),
        SCHEDULER_ENABLED="true",
        SELF_HEALING_ENABLED="false",
        LOG_LEVEL="WARNING",
        ACCESS_LOG="0",
        WEB_CONCURRENCY="2",
        WEB_THREADS="4",
        JWT_SECRET_KEY="bench-" + "x" * 40,
        ENCRYPTION_KEY="ZGV2LWluc2VjdXJlLWVuY3J5cHRpb24ta2V5LTAwMDA=",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(window: tuple[float, float]) -> tuple[int, list[float], int]:
    from sqlalchemy import select

    from app.engine.tick import from_ms
    from app.store.db import session_scope
    from app.store.models.trading import BotTick

    start, end = (from_ms(int(t * 1000)) for t in window)
    with session_scope() as s:
        rows = s.execute(
            select(BotTick.started_at, BotTick.planned_at, BotTick.skipped).where(
                BotTick.started_at >= start, BotTick.started_at < end
            )
        ).all()
    lags = sorted((r.started_at - r.planned_at).total_seconds() for r in rows)
    return len(rows), lags, sum(r.skipped for r in rows)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (Linux /proc), 0 for one that is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def process_ids(proc: subprocess.Popen[bytes], url: str) -> tuple[list[int], list[int]]:
    """The gunicorn workers (children of its master) and the Postgres backends of the
    bench database: whose CPU a tick costs, counted apart from the rest of the machine."""
    import psycopg2

    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")  # fmt: skip
        backends = [r[0] for r in cur.fetchall()]
    conn.close()
    return [int(c) for c in children], backends


def run_gunicorn(url: str, prefix: str, speed: float, bots: int, seconds: float) -> dict:
    from sqlalchemy import func, select

    from app.store.db import session_scope
    from app.store.models.trading import BotTick

    reset_schedule(speed)
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind",
         f"127.0.0.1:{free_port()}", "wsgi:app"],
        cwd=ROOT, env=env_for(url, prefix, speed),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # warm-up: every bot ticked twice
            with session_scope() as s:
                if (s.scalar(select(func.count()).select_from(BotTick)) or 0) >= 2 * bots:
                    break
            time.sleep(0.5)
        workers, backends = process_ids(proc, url)
        cpu = (cpu_seconds(workers), cpu_seconds(backends))
        begin = time.time()
        time.sleep(seconds)
        end = time.time()
        cpu = (cpu_seconds(workers) - cpu[0], cpu_seconds(backends) - cpu[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    count, lags, skipped = measure((begin, end))
    return {"ticks_per_s": count / (end - begin), "lags": lags, "skipped": skipped,
            "cpu_ms": tuple(1000 * c / max(count, 1) for c in cpu)}  # fmt: skip


def cpu_text(run: dict) -> str:
    workers, postgres = run["cpu_ms"]
    return f"CPU per tick: workers {workers:.2f} ms + Postgres {postgres:.2f} ms"


def run_claim_only(url: str, prefix: str, speed: float, seconds: float, batch: int) -> float:
    reset_schedule(speed)
    env = env_for(url, prefix, speed)
    interval = 300 / speed
    procs = [
        subprocess.Popen(
            [
                str(BIN / "python"),
                "-c",
                CLAIM_LOOP,
                f"claimer{i}",
                str(seconds),
                str(batch),
                str(interval),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    total = sum(int(p.communicate(timeout=seconds + 60)[0].strip() or 0) for p in procs)
    return total / seconds


def run_plain(url: str, speed: float, seconds: float, batch: int, single: bool) -> float:
    reset_schedule(speed)
    dsn = url.replace("postgresql+psycopg2://", "postgresql://")
    procs = [
        subprocess.Popen(
            [str(BIN / "python"), "-c", PLAIN_LOOP, dsn, f"plain{i}", str(seconds), str(batch),
             str(300 / speed), "single" if single else "two"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    total = sum(int(p.communicate(timeout=seconds + 60)[0].strip() or 0) for p in procs)
    return total / seconds


def print_claims(url: str, prefix: str, seconds: float, batch: int) -> float:
    """Our claims next to plain SKIP LOCKED loops on the same bots, same batch, same run."""
    ours = run_claim_only(url, prefix, CLAIM_SPEED, seconds, batch)
    two = run_plain(url, CLAIM_SPEED, seconds, batch, single=False)
    single = run_plain(url, CLAIM_SPEED, seconds, batch, single=True)
    print(f"claims, 2 processes, batch {batch}: app.store.claims {ours:8.0f} claims/s | plain "
          f"SELECT SKIP LOCKED + UPDATE {two:8.0f} rows/s ({ours / two:.2f}x) | plain single "
          f"UPDATE ... ARRAY(SKIP LOCKED) {single:8.0f} rows/s ({ours / single:.2f}x)")
    return ours


def print_saturated(run: dict) -> None:
    print(f"saturated (2,000 ticks/s asked): {run['ticks_per_s']:7.0f} ticks/s sustained, "
          f"skipped ticks {run['skipped']}; {cpu_text(run)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--claims-only", action="store_true", help="only the claim loops")
    parser.add_argument("--claim-batch", type=int, default=50)
    parser.add_argument("--documents", action="store_true",
                        help="bots run the built-ins' templates as stored strategy documents")
    parser.add_argument("--saturated-only", action="store_true",
                        help="only the saturated run (a shorter comparison)")
    args = parser.parse_args()
    from app.jobs.bot_ticks import TickSettings
    from app.store.db import init_database, shutdown_database
    from config import Settings, use_settings

    url = create_database()
    prefix = f"twbench:{uuid.uuid4().hex[:8]}:"
    try:
        init_database(use_settings(Settings(database_url=url, redis_url=REDIS,
                                            redis_prefix=prefix)))  # fmt: skip
        create_bots(args.bots, documents=args.documents)
        batch = TickSettings.current().batch_size
        if args.claims_only:
            print_claims(url, prefix, args.seconds, args.claim_batch)
            return
        print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
              f"{args.bots} bots{' running documents' if args.documents else ''}, "
              f"gunicorn 2 workers, batch {batch}")  # fmt: skip
        if args.saturated_only:
            saturated = run_gunicorn(url, prefix, 600.0, args.bots, args.seconds)
            print_saturated(saturated)
            return
        target = run_gunicorn(url, prefix, 150.0, args.bots, args.seconds)
        lags = target["lags"]
        print(
            f"target load (500 ticks/s asked): {target['ticks_per_s']:7.0f} ticks/s, lag p50 "
            f"{pct(lags, 0.5) * 1000:.0f} ms, p99 {pct(lags, 0.99) * 1000:.0f} ms, "
            f"max {pct(lags, 1.0) * 1000:.0f} ms, skipped ticks {target['skipped']}; "
            f"{cpu_text(target)}"
        )
        saturated = run_gunicorn(url, prefix, 600.0, args.bots, args.seconds)
        print_saturated(saturated)
        claims = print_claims(url, prefix, args.seconds, args.claim_batch)
        print(f"ratio sustained ticks / bare claims: {saturated['ticks_per_s'] / claims:.2f}")
    finally:
        shutdown_database()
        drop_database(url)


if __name__ == "__main__":
    main()
