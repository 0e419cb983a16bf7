"""Protection rules (pure): each one trips on the history that should trip it and passes on
the history that should not, and only history after the last trip counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.domain.protections import (
    ClosedTrade,
    ProtectionConfig,
    ProtectionFacts,
    evaluate_protections,
    parse_protections,
    protections_as_dict,
)

D = Decimal
NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
OFF = ProtectionConfig(
    max_drawdown=None,
    max_losing_streak=None,
    daily_loss_limit=None,
    stoploss_guard_trades=None,
    trade_cooldown_minutes=0,
)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def facts(trades=(), equity=(), since=None, last_trade_at=None) -> ProtectionFacts:
    return ProtectionFacts(
        now=NOW, since=since, trades=list(trades), equity=list(equity), last_trade_at=last_trade_at
    )


def losses(n: int, *, start: float = 100, reason: str | None = None) -> list[ClosedTrade]:
    return [ClosedTrade(ago(start - i), D("-1"), reason) for i in range(n)]


def with_(**changes) -> ProtectionConfig:
    from dataclasses import replace

    return replace(OFF, **changes)


# -- max drawdown --------------------------------------------------------------------------


def test_max_drawdown_trips_at_the_limit_and_needs_a_person() -> None:
    equity = [(ago(30), D(100)), (ago(20), D(120)), (ago(10), D(90))]  # 25% below the peak
    trip = evaluate_protections(with_(max_drawdown=D("0.25")), facts(equity=equity))
    assert trip is not None and trip.protection == "max_drawdown" and trip.pause
    assert trip.resume_at is None
    assert trip.reason == "protection:max_drawdown"


def test_max_drawdown_passes_below_the_limit() -> None:
    equity = [(ago(30), D(100)), (ago(20), D(120)), (ago(10), D(91))]
    assert evaluate_protections(with_(max_drawdown=D("0.25")), facts(equity=equity)) is None


def test_max_drawdown_counts_only_after_the_last_trip() -> None:
    equity = [(ago(30), D(120)), (ago(20), D(80)), (ago(10), D(79))]
    config = with_(max_drawdown=D("0.25"))
    assert evaluate_protections(config, facts(equity=equity)) is not None
    assert evaluate_protections(config, facts(equity=equity, since=ago(25))) is None


# -- losing streak -------------------------------------------------------------------------


def test_losing_streak_trips_with_a_cooldown() -> None:
    config = with_(max_losing_streak=3, losing_streak_cooldown_minutes=45)
    trip = evaluate_protections(config, facts(trades=losses(3)))
    assert trip is not None and trip.protection == "losing_streak"
    assert trip.resume_at == NOW + timedelta(minutes=45)


def test_a_win_breaks_the_losing_streak() -> None:
    trades = [*losses(2, start=100), ClosedTrade(ago(50), D("0.5")), *losses(2, start=40)]
    assert evaluate_protections(with_(max_losing_streak=3), facts(trades=trades)) is None


def test_losses_before_the_last_trip_do_not_count() -> None:
    config = with_(max_losing_streak=3)
    assert evaluate_protections(config, facts(trades=losses(3), since=ago(99))) is None


# -- daily loss ----------------------------------------------------------------------------


def test_daily_loss_trips_until_the_next_utc_midnight() -> None:
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    equity = [(midnight - timedelta(hours=1), D(100)), (ago(5), D(94))]
    trip = evaluate_protections(with_(daily_loss_limit=D("0.05")), facts(equity=equity))
    assert trip is not None and trip.protection == "daily_loss"
    assert trip.resume_at == midnight + timedelta(days=1)


def test_daily_loss_passes_within_the_limit_and_ignores_yesterday() -> None:
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    config = with_(daily_loss_limit=D("0.05"))
    equity = [(midnight - timedelta(hours=5), D(200)), (midnight, D(100)), (ago(5), D(96))]
    assert evaluate_protections(config, facts(equity=equity)) is None


def test_daily_loss_counts_from_the_last_trip_when_it_is_today() -> None:
    equity = [(ago(120), D(100)), (ago(60), D(94)), (ago(5), D(93))]
    config = with_(daily_loss_limit=D("0.05"))
    assert evaluate_protections(config, facts(equity=equity)) is not None
    assert evaluate_protections(config, facts(equity=equity, since=ago(59))) is None


# -- stop-loss guard -----------------------------------------------------------------------


def test_stoploss_guard_trips_on_stop_outs_inside_the_window() -> None:
    config = with_(stoploss_guard_trades=2, stoploss_guard_window_minutes=60)
    trades = [ClosedTrade(ago(50), D(-1), "stop_loss"), ClosedTrade(ago(10), D(-1), "stop_loss")]
    trip = evaluate_protections(config, facts(trades=trades))
    assert trip is not None and trip.protection == "stoploss_guard"
    assert trip.resume_at == NOW + timedelta(minutes=config.stoploss_guard_cooldown_minutes)


def test_stoploss_guard_passes_for_old_stops_and_other_exits() -> None:
    config = with_(stoploss_guard_trades=2, stoploss_guard_window_minutes=60)
    trades = [
        ClosedTrade(ago(90), D(-1), "stop_loss"),  # outside the window
        ClosedTrade(ago(20), D(-1), "signal"),  # a loss, but not a stop-out
        ClosedTrade(ago(10), D(-1), "stop_loss"),
    ]
    assert evaluate_protections(config, facts(trades=trades)) is None


def test_stoploss_guard_counts_stop_exits_only_when_they_lost() -> None:
    config = with_(stoploss_guard_trades=2, stoploss_guard_window_minutes=60)
    won = [ClosedTrade(ago(20), D(2), "trailing_stop"), ClosedTrade(ago(10), D(-1), "stop_loss")]
    assert evaluate_protections(config, facts(trades=won)) is None
    lost = [ClosedTrade(ago(20), D(-2), "trailing_stop"), ClosedTrade(ago(10), D(-1), "stop_loss")]
    assert evaluate_protections(config, facts(trades=lost)) is not None
    even = [ClosedTrade(ago(20), D(0), "stop_loss"), ClosedTrade(ago(10), D(-1), "stop_loss")]
    assert evaluate_protections(config, facts(trades=even)) is None


# -- cooldown after a trade ----------------------------------------------------------------


def test_trade_cooldown_holds_entries_without_pausing() -> None:
    trip = evaluate_protections(with_(trade_cooldown_minutes=30), facts(last_trade_at=ago(10)))
    assert trip is not None and trip.protection == "trade_cooldown"
    assert trip.pause is False and trip.resume_at == ago(10) + timedelta(minutes=30)


def test_trade_cooldown_passes_once_over() -> None:
    config = with_(trade_cooldown_minutes=30)
    assert evaluate_protections(config, facts(last_trade_at=ago(30))) is None
    assert evaluate_protections(config, facts()) is None


# -- configuration -------------------------------------------------------------------------


def test_everything_switched_off_never_trips() -> None:
    equity = [(ago(30), D(100)), (ago(10), D(1))]
    assert evaluate_protections(OFF, facts(trades=losses(20), equity=equity)) is None


def test_bot_settings_override_the_defaults_and_round_trip() -> None:
    config = parse_protections({"max_drawdown": 0.1, "max_losing_streak": None})
    assert config.max_drawdown == D("0.1") and config.max_losing_streak is None
    assert config.daily_loss_limit == ProtectionConfig().daily_loss_limit
    assert parse_protections(protections_as_dict(config)) == config


@pytest.mark.parametrize(
    "raw, word",
    [
        ({"max_drawdown": 0}, "max_drawdown"),
        ({"max_drawdown": 1.5}, "max_drawdown"),
        ({"max_drawdown": "lots"}, "max_drawdown"),
        ({"max_losing_streak": 0}, "max_losing_streak"),
        ({"max_losing_streak": 2.5}, "max_losing_streak"),
        ({"max_losing_streak": True}, "max_losing_streak"),
        ({"trade_cooldown_minutes": -1}, "trade_cooldown_minutes"),
        ({"trade_cooldown_minutes": float("nan")}, "trade_cooldown_minutes"),
        ({"no_such_rule": 1}, "no_such_rule"),
        (["max_drawdown"], "object"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(raw, word) -> None:
    with pytest.raises(ValueError, match=word):
        parse_protections(raw)
