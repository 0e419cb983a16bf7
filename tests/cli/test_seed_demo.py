"""`flask seed-demo`: a demo user who can log in, with running paper bots on the replay
market that tick at once; running it again changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.jobs import bot_ticks
from app.services.bots import DEMO_BOTS, DEMO_EMAIL, DEMO_PASSWORD
from app.store.db import session_scope
from app.store.models import Bot, User
from app.store.models.trading import BotTick


def test_seed_demo_is_idempotent_and_the_bots_tick(app: Any, client: Any) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert f"{len(DEMO_BOTS)} bot(s) created" in first.stdout and DEMO_EMAIL in first.stdout
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0 and "0 bot(s) created" in second.stdout

    with session_scope() as s:
        (user,) = s.scalars(select(User).where(User.email == DEMO_EMAIL)).all()
        bots = s.scalars(select(Bot).where(Bot.user_id == user.id)).all()
    assert len(bots) == len(DEMO_BOTS)
    assert {b.status for b in bots} == {"running"} and {b.exchange for b in bots} == {"replay"}
    assert len({b.strategy for b in bots}) == 4

    login = client.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.get_json()
    token = login.get_json()["access_token"]
    listed = client.get("/api/bots", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert listed["total"] == len(DEMO_BOTS)

    bot_ticks.run()  # their first tick is due at once (the newest closed candle)
    with session_scope() as s:
        ticked = set(s.scalars(select(BotTick.bot_id)))
    assert ticked == {b.id for b in bots}


def test_paused_demo_bots_stay_paused(app: Any) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-demo"])
    with session_scope() as s:
        bot = s.scalars(select(Bot)).first()
        bot.status, bot.next_tick_at = "paused", None
        paused_id = bot.id
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    with session_scope() as s:
        assert s.get(Bot, paused_id).status == "paused"
