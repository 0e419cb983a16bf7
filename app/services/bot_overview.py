"""The bots table of the dashboard in one round trip: each bot of a page with its equity,
profit, largest drawdown and a short equity curve, from two queries however many bots."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.metrics import max_drawdown
from app.domain.numbers import decimal_text
from app.services.bots import list_bots
from app.store.models import Bot
from app.store.models.ledger import EquitySnapshot

CURVE_POINTS = 40


def thin(values: np.ndarray, points: int) -> list[float]:
    """At most `points` values spread evenly over the series, always with its last one."""
    if values.size <= points:
        return [float(v) for v in values]
    idx = np.unique(np.linspace(0, values.size - 1, points).round().astype(np.int64))
    return [float(v) for v in values[idx]]


def summary(bot: Bot, equities: list[Decimal], points: int = CURVE_POINTS) -> dict[str, Any]:
    """Equity now, profit against the bot's capital, largest drawdown, and the curve."""
    capital = Decimal(bot.capital)
    last = equities[-1] if equities else capital
    values = np.array([float(e) for e in equities], dtype=np.float64)
    return {
        "equity": decimal_text(last),
        "profit": decimal_text(last - capital),
        "profit_pct": float((last - capital) / capital * 100) if capital else None,
        "max_drawdown": max_drawdown(values),
        "curve": thin(values, points),
        "snapshots": len(equities),
    }


def bots_overview(
    session: Session, user_id: int, *, limit: int, offset: int, **filters: Any
) -> tuple[list[tuple[Bot, dict[str, Any]]], int]:
    """A page of the user's bots (as `list_bots`), each with its `summary`."""
    bots, total = list_bots(session, user_id, limit=limit, offset=offset, **filters)
    curves: dict[int, list[Decimal]] = defaultdict(list)
    if bots:
        rows = session.execute(
            select(EquitySnapshot.bot_id, EquitySnapshot.equity)
            .where(EquitySnapshot.bot_id.in_([b.id for b in bots]))
            .order_by(EquitySnapshot.bot_id, EquitySnapshot.ts)
        )
        for bot_id, equity in rows:
            curves[bot_id].append(equity)
    return [(b, summary(b, curves.get(b.id, []))) for b in bots], int(total)
