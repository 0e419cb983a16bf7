"""Killing a process in the middle of a fill (SIGKILL, a real process) leaves the whole fill
or none of it, and `flask reconcile` (a real process too) passes after every kill."""

from __future__ import annotations

import random
import subprocess
import sys
import time

from sqlalchemy import func, select

from app.store.db import session_scope
from app.store.models.ledger import Fill, Order
from tests.engine.ledger_helpers import create_bot
from tests.support.processes import ROOT, flask_command, service_env

KILLS = 6
PAUSE_S = 0.4


def _wait_for(proc: subprocess.Popen[str], word: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = 0
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker exited ({proc.wait()}) before {count} x {word!r}")
        if line.strip() == word:
            seen += 1
            if seen >= count:
                return
    raise AssertionError(f"no {count} x {word!r} within {timeout}s")


def _reconcile(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        flask_command("reconcile"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_sigkill_mid_fill_leaves_all_or_nothing(app, settings, make_user) -> None:
    bot_id = create_bot(make_user().id)
    env = service_env(settings, TRADEWIND_TEST_FILL_PAUSE=str(PAUSE_S))
    rng = random.Random(20261122)
    interrupted = 0
    for round_no in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.engine.fill_crash_worker", str(bot_id), str(round_no)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            _wait_for(proc, "filling", rng.randint(1, 3))
            time.sleep(rng.uniform(0.02, PAUSE_S * 0.8))  # inside the fill's pause, mostly
            proc.kill()
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with session_scope() as db:
            open_orders = db.scalar(
                select(func.count()).select_from(Order).where(Order.state == "open")
            )
            filled = db.scalar(
                select(func.count()).select_from(Order).where(Order.state == "filled")
            )
            fills = db.scalar(select(func.count()).select_from(Fill))
        assert filled == fills  # never an order marked filled without its fill, or the reverse
        interrupted += open_orders
        check = _reconcile(env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"bot {bot_id}" in check.stdout
    # the kills did land inside fills (the order was left open, its fill rolled back) and the
    # next worker filled what its predecessor left: by now there were fills on every round
    print(f"kills that interrupted a fill: {interrupted}/{KILLS}")
    assert interrupted >= 1
    assert fills >= KILLS
