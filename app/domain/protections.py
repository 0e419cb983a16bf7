"""Per-bot protections: pure rules that say when a bot must stop trading for a while.

Each rule looks only at what happened since the bot's last trip (`ProtectionFacts.since`),
so a bot resumed after a trip starts with a clean slate instead of tripping again at once.
A trip either pauses the bot (with a time to resume, or none: a person must look) or, for
the cooldown after a trade, only skips entries until the cooldown has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.live_gates import max_drawdown
from app.domain.times import iso

MAX_DRAWDOWN = "max_drawdown"
LOSING_STREAK = "losing_streak"
DAILY_LOSS = "daily_loss"
STOPLOSS_GUARD = "stoploss_guard"
TRADE_COOLDOWN = "trade_cooldown"

# stop-outs the stop-loss guard counts, when they closed the trade at a loss (freqtrade's
# StoplossGuard: stop-loss and trailing stop exits with close_profit < 0)
STOP_EXIT_REASONS = frozenset({"stop_loss", "stoploss", "stop", "trailing_stop"})


@dataclass(frozen=True)
class ProtectionConfig:
    """One bot's limits; a `None` limit (or 0 minutes for the trade cooldown) is switched off."""

    max_drawdown: Decimal | None = Decimal("0.25")
    max_losing_streak: int | None = 5
    losing_streak_cooldown_minutes: float = 60.0
    daily_loss_limit: Decimal | None = Decimal("0.05")
    stoploss_guard_trades: int | None = 3
    stoploss_guard_window_minutes: float = 60.0
    stoploss_guard_cooldown_minutes: float = 60.0
    trade_cooldown_minutes: float = 0.0


_FRACTIONS = ("max_drawdown", "daily_loss_limit")
_COUNTS = ("max_losing_streak", "stoploss_guard_trades")
_MINUTES = (
    "losing_streak_cooldown_minutes",
    "stoploss_guard_window_minutes",
    "stoploss_guard_cooldown_minutes",
    "trade_cooldown_minutes",
)
PROTECTION_KEYS = tuple(f.name for f in fields(ProtectionConfig))


def _fraction(name: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number between 0 and 1, or null to switch it off")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1") from None
    if not number.is_finite() or not 0 < number <= 1:
        raise ValueError(f"{name} must be > 0 and <= 1 (a fraction, 0.2 = 20%)")
    return number


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, or null to switch it off")
    return value


def _minutes(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name} must be a number of minutes")
    if not 0 <= value <= 525_600:
        raise ValueError(f"{name} must be between 0 and 525600 minutes")
    return float(value)


def parse_protections(
    raw: Mapping[str, Any] | None, defaults: ProtectionConfig | None = None
) -> ProtectionConfig:
    """A bot's `protections` JSON over the defaults; raises ValueError naming the bad key."""
    config = defaults or ProtectionConfig()
    if raw is None:
        return config
    if not isinstance(raw, Mapping):
        raise ValueError("protections must be an object")
    unknown = sorted(set(raw) - set(PROTECTION_KEYS))
    if unknown:
        raise ValueError(f"unknown protection {unknown[0]!r}; known: {', '.join(PROTECTION_KEYS)}")
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _FRACTIONS:
            changes[name] = _fraction(name, value)
        elif name in _COUNTS:
            changes[name] = _count(name, value)
        else:
            changes[name] = _minutes(name, value)
    return replace(config, **changes)


def protections_as_dict(config: ProtectionConfig) -> dict[str, Any]:
    """JSON-friendly form (fractions as strings keep their exact value)."""
    out: dict[str, Any] = {}
    for name in PROTECTION_KEYS:
        value = getattr(config, name)
        out[name] = str(value) if isinstance(value, Decimal) else value
    return out


@dataclass(frozen=True)
class ClosedTrade:
    closed_at: datetime
    pnl: Decimal
    exit_reason: str | None = None


@dataclass(frozen=True)
class ProtectionFacts:
    """The bot's recent history, all timestamps aware UTC, sequences in time order."""

    now: datetime
    since: datetime | None  # the last trip: nothing before it counts
    trades: Sequence[ClosedTrade]
    equity: Sequence[tuple[datetime, Decimal]]
    last_trade_at: datetime | None = None


@dataclass(frozen=True)
class Trip:
    protection: str
    message: str
    pause: bool = True
    resume_at: datetime | None = None  # None with pause: stays paused until a person resumes

    @property
    def reason(self) -> str:
        return f"protection:{self.protection}"


def _after(moment: datetime, since: datetime | None) -> bool:
    return since is None or moment > since


def _minutes_later(now: datetime, minutes: float) -> datetime:
    return now + timedelta(minutes=minutes)


def check_max_drawdown(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    if config.max_drawdown is None:
        return None
    series = [value for moment, value in facts.equity if _after(moment, facts.since)]
    drawdown = max_drawdown(series)
    if drawdown < config.max_drawdown:
        return None
    return Trip(
        MAX_DRAWDOWN,
        f"drawdown {drawdown:.2%} reached the {config.max_drawdown:.2%} limit",
    )


def start_of_day(now: datetime) -> datetime:
    return datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)


def check_daily_loss(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    """Loss of equity since the later of UTC midnight and the last trip."""
    if config.daily_loss_limit is None or not facts.equity:
        return None
    start = start_of_day(facts.now)
    if facts.since is not None and facts.since > start:
        start = facts.since
    before = [value for moment, value in facts.equity if moment <= start]
    during = [value for moment, value in facts.equity if moment > start]
    if not during:
        return None
    reference = before[-1] if before else during[0]
    if reference <= 0:
        return None
    loss = (reference - during[-1]) / reference
    if loss < config.daily_loss_limit:
        return None
    return Trip(
        DAILY_LOSS,
        f"lost {loss:.2%} today, over the {config.daily_loss_limit:.2%} daily limit",
        resume_at=start_of_day(facts.now) + timedelta(days=1),
    )


def check_losing_streak(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    if config.max_losing_streak is None:
        return None
    streak = 0
    for trade in reversed(facts.trades):
        if not _after(trade.closed_at, facts.since) or trade.pnl >= 0:
            break
        streak += 1
    if streak < config.max_losing_streak:
        return None
    return Trip(
        LOSING_STREAK,
        f"{streak} losing trades in a row (limit {config.max_losing_streak})",
        resume_at=_minutes_later(facts.now, config.losing_streak_cooldown_minutes),
    )


def _stopped_out(trade: ClosedTrade) -> bool:
    return (trade.exit_reason or "").lower() in STOP_EXIT_REASONS and trade.pnl < 0


def check_stoploss_guard(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    if config.stoploss_guard_trades is None:
        return None
    window_start = facts.now - timedelta(minutes=config.stoploss_guard_window_minutes)
    stops = [
        t
        for t in facts.trades
        if t.closed_at > window_start
        and _after(t.closed_at, facts.since)
        and _stopped_out(t)
    ]
    if len(stops) < config.stoploss_guard_trades:
        return None
    return Trip(
        STOPLOSS_GUARD,
        f"{len(stops)} stop-outs in {config.stoploss_guard_window_minutes:g} minutes "
        f"(limit {config.stoploss_guard_trades})",
        resume_at=_minutes_later(facts.now, config.stoploss_guard_cooldown_minutes),
    )


def check_trade_cooldown(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    if config.trade_cooldown_minutes <= 0 or facts.last_trade_at is None:
        return None
    until = _minutes_later(facts.last_trade_at, config.trade_cooldown_minutes)
    if facts.now >= until:
        return None
    return Trip(
        TRADE_COOLDOWN,
        f"cooling down after a trade until {iso(until)}",
        pause=False,
        resume_at=until,
    )


CHECKS = (
    check_max_drawdown,
    check_daily_loss,
    check_losing_streak,
    check_stoploss_guard,
    check_trade_cooldown,
)


def evaluate_protections(config: ProtectionConfig, facts: ProtectionFacts) -> Trip | None:
    """The first protection that trips (pausing ones before the trade cooldown), or None."""
    for check in CHECKS:
        trip = check(config, facts)
        if trip is not None:
            return trip
    return None
