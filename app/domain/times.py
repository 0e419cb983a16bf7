"""Time in one calendar: epoch milliseconds <-> aware UTC datetimes, and ISO 8601 text.

One rounding rule everywhere: a moment maps to the millisecond it falls in (floor), computed
with integer arithmetic (no float round trip, so no off-by-one near a candle boundary).
Naive datetimes are refused: every timestamp in the project is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "from_ms", "iso", "iso_ms", "to_ms"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (floor to the millisecond)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime; timestamps must be timezone-aware")
    return (moment - EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """The aware UTC datetime of epoch milliseconds."""
    return EPOCH + timedelta(milliseconds=int(ms))


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z` (what every response shows), or None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime; timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_ms(ms: int | None) -> str | None:
    """ISO 8601 UTC text of epoch milliseconds, or None."""
    return None if ms is None else iso(from_ms(ms))
