"""Working hours: is an inbox (or branch) open at a moment, in its own time zone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time
from typing import Any

from django.utils import timezone

from messenger.inbox_settings import WEEKDAYS
from messenger.models import Inbox


def _parse(value: str) -> time:
    hours, minutes = value.split(":")
    if hours == "24":
        return time(23, 59, 59, 999999)
    return time(int(hours), int(minutes))


def schedule_is_open(days: dict[str, Any], holidays: list[str], tz_name: str, now: datetime) -> bool:
    tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    local = now.astimezone(tz)
    if local.date().isoformat() in set(holidays or []):
        return False
    intervals = (days or {}).get(WEEKDAYS[local.weekday()], [])
    current = local.time()
    return any(_parse(start) <= current < _parse(end) for start, end in intervals)


def inbox_is_open(inbox: Inbox, now: datetime | None = None) -> bool:
    """Always open unless the inbox enables working hours."""
    hours = inbox.effective_settings["working_hours"]
    if not hours["enabled"]:
        return True
    now = now or timezone.now()
    tz_name = hours["timezone"] or (inbox.branch.timezone if inbox.branch_id else "UTC")
    return schedule_is_open(hours["days"], hours["holidays"], tz_name, now)
