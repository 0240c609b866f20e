"""The gateway's clock: aware UTC datetimes, one place to read the time (and to fake it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def now_utc() -> datetime:
    return datetime.now(UTC)


def within_hours(moment: datetime, hours: tuple[int, int], timezone: str) -> datetime:
    """``moment`` if it falls within ``hours`` (from the first hour to the second, local time in
    ``timezone``), else when they next open: calls and bulk messages are never made at night."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    start, end = hours
    if start <= local.hour < end:
        return moment
    day = local.date() if local.hour < start else local.date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, start, tzinfo=zone).astimezone(UTC)
