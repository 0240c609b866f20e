"""The gateway's clock: aware UTC datetimes, one place to read the time (and to fake it)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)
