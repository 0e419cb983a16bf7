"""What the services hand the engine so that it never imports them: the pre-trade risk
check of a tick, and the incident and alert writers for live-order problems."""

from __future__ import annotations

from app.engine.hooks import SafetyReports, TickHooks
from app.services.alerts import raise_alert
from app.services.incidents import record_incident
from app.services.risk import check_before_trade

SAFETY_REPORTS = SafetyReports(incident=record_incident, alert=raise_alert)
TICK_HOOKS = TickHooks(check_before_trade=check_before_trade, reports=SAFETY_REPORTS)
