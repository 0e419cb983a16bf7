"""Live-trading gates (pure): each gate fails on the facts that should fail it, with its code."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.domain.live_gates import GateFacts, GateLimits, evaluate_gates, max_drawdown

NOW = datetime(2026, 3, 4, tzinfo=UTC)
GOOD = GateFacts(
    now=NOW,
    live_trading_enabled=True,
    emergency_stop=False,
    paper_started_at=NOW - timedelta(days=8),
    has_credentials=True,
    max_drawdown=Decimal("0.10"),
    closed_trades=12,
)
LIMITS = GateLimits(min_paper_days=7, max_drawdown=Decimal("0.15"), min_closed_trades=10)


def test_a_bot_that_earned_it_passes_every_gate() -> None:
    assert evaluate_gates(GOOD, LIMITS) == []


@pytest.mark.parametrize(
    "changes, code",
    [
        ({"live_trading_enabled": False}, "live_trading_disabled"),
        ({"emergency_stop": True}, "emergency_stop_active"),
        ({"paper_started_at": NOW - timedelta(days=6, hours=23)}, "paper_days_insufficient"),
        ({"paper_started_at": None}, "paper_days_insufficient"),
        ({"has_credentials": False}, "no_exchange_credentials"),
        ({"max_drawdown": Decimal("0.1501")}, "drawdown_too_high"),
        ({"closed_trades": 9}, "too_few_closed_trades"),
        ({"market_trades_live": False}, "market_never_live"),
        ({"market_trades_live": False, "has_credentials": False}, "market_never_live"),
    ],
)
def test_each_gate_fails_alone_with_its_code(changes, code) -> None:
    reasons = evaluate_gates(replace(GOOD, **changes), LIMITS)
    assert [r.code for r in reasons] == [code]
    assert reasons[0].message


def test_limits_are_inclusive_at_the_boundary() -> None:
    edge = replace(
        GOOD,
        paper_started_at=NOW - timedelta(days=7),
        max_drawdown=Decimal("0.15"),
        closed_trades=10,
    )
    assert evaluate_gates(edge, LIMITS) == []


def test_every_failing_gate_is_listed() -> None:
    worst = GateFacts(NOW, False, True, None, False, Decimal("0.5"), 0)
    assert len(evaluate_gates(worst, LIMITS)) == 6


def test_max_drawdown_is_the_worst_fall_from_a_running_peak() -> None:
    curve = [Decimal(v) for v in (100, 120, 90, 130, 117, 125)]
    assert max_drawdown(curve) == Decimal("0.25")
    assert max_drawdown([]) == 0
    assert max_drawdown([Decimal(1), Decimal(2)]) == 0


def test_the_api_documents_every_gate_code() -> None:
    from typing import get_args

    from app.api.safety import GateReasonOut
    from app.domain.live_gates import GATE_CODES

    assert set(get_args(GateReasonOut.model_fields["code"].annotation)) == set(GATE_CODES)
