"""Live-trading gates: the pure decision whether a bot has earned real money.

Every failing gate gives a stable machine-readable code and a sentence, so a dashboard can
show the reasons and a script can act on the codes. The service layer gathers the facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

LIVE_TRADING_DISABLED = "live_trading_disabled"
EMERGENCY_STOP_ACTIVE = "emergency_stop_active"
PAPER_DAYS_INSUFFICIENT = "paper_days_insufficient"
NO_EXCHANGE_CREDENTIALS = "no_exchange_credentials"
DRAWDOWN_TOO_HIGH = "drawdown_too_high"
TOO_FEW_CLOSED_TRADES = "too_few_closed_trades"
MARKET_NEVER_LIVE = "market_never_live"

GATE_CODES = (
    LIVE_TRADING_DISABLED,
    EMERGENCY_STOP_ACTIVE,
    PAPER_DAYS_INSUFFICIENT,
    NO_EXCHANGE_CREDENTIALS,
    DRAWDOWN_TOO_HIGH,
    TOO_FEW_CLOSED_TRADES,
    MARKET_NEVER_LIVE,
)


@dataclass(frozen=True)
class GateLimits:
    min_paper_days: float = 7.0
    max_drawdown: Decimal = Decimal("0.15")
    min_closed_trades: int = 10


@dataclass(frozen=True)
class GateFacts:
    """What is known about the bot and the system when the gates are asked."""

    now: datetime
    live_trading_enabled: bool
    emergency_stop: bool
    paper_started_at: datetime | None
    has_credentials: bool
    max_drawdown: Decimal  # worst peak-to-trough fall of paper equity, 0..1
    closed_trades: int
    market_trades_live: bool = True  # False for the replay market: recorded candles only


@dataclass(frozen=True)
class GateReason:
    code: str
    message: str


def paper_days(facts: GateFacts) -> float:
    if facts.paper_started_at is None:
        return 0.0
    return max((facts.now - facts.paper_started_at).total_seconds(), 0.0) / 86400.0


def evaluate_gates(facts: GateFacts, limits: GateLimits) -> list[GateReason]:
    """Every gate that does not hold, in a fixed order; empty means live trading is allowed."""
    reasons: list[GateReason] = []
    if not facts.live_trading_enabled:
        reasons.append(
            GateReason(LIVE_TRADING_DISABLED, "live trading is disabled (LIVE_TRADING_ENABLED)")
        )
    if facts.emergency_stop:
        reasons.append(GateReason(EMERGENCY_STOP_ACTIVE, "the emergency stop is active"))
    days = paper_days(facts)
    if days < limits.min_paper_days:
        reasons.append(
            GateReason(
                PAPER_DAYS_INSUFFICIENT,
                f"{days:.1f} days of paper trading; {limits.min_paper_days:g} required",
            )
        )
    if not facts.market_trades_live:
        reasons.append(
            GateReason(
                MARKET_NEVER_LIVE,
                "the bot's market replays recorded candles and can never trade live; a bot on "
                "a real exchange can",
            )
        )
    elif not facts.has_credentials:  # (credentials for a replay market do not exist)
        reasons.append(
            GateReason(NO_EXCHANGE_CREDENTIALS, "no exchange credentials for the bot's exchange")
        )
    if facts.max_drawdown > limits.max_drawdown:
        reasons.append(
            GateReason(
                DRAWDOWN_TOO_HIGH,
                f"max drawdown {facts.max_drawdown:.2%} is over the "
                f"{limits.max_drawdown:.2%} limit",
            )
        )
    if facts.closed_trades < limits.min_closed_trades:
        reasons.append(
            GateReason(
                TOO_FEW_CLOSED_TRADES,
                f"{facts.closed_trades} closed trades; {limits.min_closed_trades} required",
            )
        )
    return reasons


def max_drawdown(equity: list[Decimal]) -> Decimal:
    """Worst fall from a running peak, as a fraction of that peak (0 when never below)."""
    peak: Decimal | None = None
    worst = Decimal(0)
    for value in equity:
        if peak is None or value > peak:
            peak = value
        elif peak > 0:
            worst = max(worst, (peak - value) / peak)
    return worst
