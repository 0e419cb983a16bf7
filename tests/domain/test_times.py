"""One calendar: epoch ms <-> aware UTC datetimes with one rounding rule, ISO text with Z."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.domain.times import from_ms, iso, iso_ms, to_ms


def test_round_trip_and_offsets() -> None:
    dt = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert from_ms(to_ms(dt)) == dt
    assert to_ms(dt.astimezone(timezone(timedelta(hours=2)))) == to_ms(dt)
    assert from_ms(to_ms(dt)).tzinfo is UTC


def test_sub_millisecond_moments_floor_to_their_millisecond() -> None:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    assert to_ms(base + timedelta(microseconds=999)) == to_ms(base)
    assert to_ms(base - timedelta(microseconds=1)) == to_ms(base) - 1
    # exact where a float round trip is not: a candle boundary far from the epoch
    far = datetime(2262, 4, 11, 23, 47, 16, 854000, tzinfo=UTC)
    assert to_ms(far) == 9_223_372_036_854


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        to_ms(datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        iso(datetime(2024, 1, 1))


def test_iso_text_is_utc_with_z() -> None:
    dt = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert iso(dt) == "2024-01-02T03:04:05Z"
    assert iso_ms(1_704_164_645_000) == "2024-01-02T03:04:05Z"
    assert iso(None) is None and iso_ms(None) is None
