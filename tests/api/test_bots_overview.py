"""`GET /api/bots/overview`: the dashboard's bots table in one request, each bot with its
equity, profit against its capital, largest drawdown and a thinned equity curve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from flask.testing import FlaskClient

from app.domain.metrics import max_drawdown
from app.services.bot_overview import thin
from app.store.db import session_scope
from app.store.models.ledger import EquitySnapshot

BOT = {"symbol": "ETH/BTC", "timeframe": "5m", "strategy": "sma_crossover", "capital": "2"}


def _snapshots(bot_id: int, equities: list[str]) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with session_scope() as db:
        for i, equity in enumerate(equities):
            db.add(EquitySnapshot(bot_id=bot_id, ts=start + timedelta(minutes=5 * i),
                                  equity=Decimal(equity), cash=Decimal(equity),
                                  position_amount=Decimal(0), price=Decimal("0.03")))  # fmt: skip


def test_overview_gives_profit_drawdown_and_curve(
    client: FlaskClient, make_user: Callable[..., Any], auth_headers: Callable[..., Any]
) -> None:
    owner, other = make_user(), make_user()
    headers = auth_headers(owner)
    traded = client.post("/api/bots", json={**BOT, "name": "traded"}, headers=headers).get_json()
    idle = client.post("/api/bots", json={**BOT, "name": "idle"}, headers=headers).get_json()
    client.post("/api/bots", json={**BOT, "name": "theirs"}, headers=auth_headers(other))
    _snapshots(traded["id"], ["2", "2.4", "1.8", "2.1"])

    page = client.get("/api/bots/overview", headers=headers)
    assert page.status_code == 200, page.get_json()
    body = page.get_json()
    assert body["total"] == 2 and [b["name"] for b in body["items"]] == ["idle", "traded"]
    by_name = {b["name"]: b for b in body["items"]}
    summary = by_name["traded"]["summary"]
    assert summary["equity"] == "2.1" and summary["profit"] == "0.1"
    assert abs(summary["profit_pct"] - 5.0) < 1e-9
    assert abs(summary["max_drawdown"] - 0.25) < 1e-9  # 2.4 -> 1.8
    assert summary["curve"] == [2.0, 2.4, 1.8, 2.1] and summary["snapshots"] == 4
    assert by_name["traded"]["status"] == "created" and by_name["traded"]["id"] == traded["id"]
    quiet = by_name["idle"]["summary"]
    assert quiet == {"equity": "2", "profit": "0", "profit_pct": 0.0, "max_drawdown": 0.0,
                     "curve": [], "snapshots": 0}  # fmt: skip
    assert idle["id"] == by_name["idle"]["id"]

    filtered = client.get("/api/bots/overview?status=running", headers=headers).get_json()
    assert filtered["total"] == 0
    bad = client.get("/api/bots/overview?limit=0", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_error"


def test_thin_keeps_the_ends_and_the_size() -> None:
    values = np.arange(1000, dtype=np.float64)
    points = thin(values, 40)
    assert len(points) == 40 and points[0] == 0.0 and points[-1] == 999.0
    assert thin(np.array([1.0, 2.0]), 40) == [1.0, 2.0]
    assert max_drawdown(np.array([1.0, 2.0, 1.0, 3.0])) == 0.5
    assert max_drawdown(np.array([])) == 0.0
