"""What the engine needs from the layers above it, handed in by its callers instead of
imported upward: the pre-trade risk check a tick asks before an entry, and how problems
with live orders are recorded (an incident row and alerts, which services own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.store.models import Bot


class RecordIncident(Protocol):
    def __call__(
        self,
        session: Session,
        kind: str,
        message: str,
        *,
        bot_id: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> object: ...


class RaiseAlert(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        user_id: int | None,
        severity: str,
        code: str,
        message: str,
        bot_id: int | None = None,
    ) -> object: ...


@dataclass(frozen=True)
class SafetyReports:
    """How the live broker records what went wrong: `services.incidents.record_incident`
    and `services.alerts.raise_alert` in production."""

    incident: RecordIncident
    alert: RaiseAlert


EntryCheck = Callable[[Session, Bot, datetime], "str | None"]


@dataclass(frozen=True)
class TickHooks:
    """Everything a tick asks of the services: `check_before_trade(session, bot, now)`
    answers why an entry must be held back (None: go ahead)."""

    check_before_trade: EntryCheck
    reports: SafetyReports
