"""A bot's trade report: the backtest report's figures over the bot's own trades."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask
from pydantic import Field

from app.api.jwt import auth_required, current_user
from app.api.request_context import db_session
from app.api.types import ApiModel
from app.api.validation import response
from app.services.bot_report import bot_report
from app.services.bots import get_bot

bp = Blueprint("bot_reports", __name__)


class ReportOut(ApiModel):
    bot_id: int
    round_trips: list[dict[str, Any]] = Field(description="closed trades, oldest first")
    totals: dict[str, Any] = Field(description="docs/backtesting.md, 'The report'")
    tables: dict[str, Any] = Field(description="by exit_reason, entry_tag, day, week, month")


@bp.get("/api/bots/<int:bot_id>/report")
@auth_required
@response(ReportOut)
def report(bot_id: int) -> Any:
    """Round trips, totals and tables of the bot's trades, as a backtest's report."""
    session = db_session()
    bot = get_bot(session, current_user().id, bot_id)
    return ReportOut(bot_id=bot_id, **bot_report(session, bot))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
