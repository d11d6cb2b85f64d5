"""Working hours: is an inbox (or branch) open at a moment, in its own time zone.

One source of truth: the widget's availability, the auto-reply and assignment all ask
``inbox_is_open`` / ``conversation_is_open``. An inbox with ``working_hours.use_branch_hours``
takes days, time zone and holidays from its branch (and the branch's production calendar).

Stored hours are checked before they are saved (``messenger.working_hours``); a row written
before that check existed is read leniently: a day whose hours are invalid counts as closed and
an unknown time zone as UTC, with a warning in the log, never an exception.
"""

from __future__ import annotations

import functools
import json
import logging
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from messenger.models import Branch, Conversation, Inbox
from messenger.working_hours import END_OF_DAY, WEEKDAYS, usable_days

logger = logging.getLogger(__name__)

Spans = dict[str, tuple[tuple[int, int], ...]]


@functools.lru_cache(maxsize=256)
def _compiled(text: str, source: str) -> Spans:
    """A stored schedule (as JSON text) as minute spans per weekday. Days that fail the check of
    ``messenger.working_hours`` are closed, logged once per schedule and process."""
    days, problems = usable_days(json.loads(text))
    if problems:
        owner = f" of {source}" if source else ""
        logger.warning("invalid working hours%s: %s; those days count as closed", owner, "; ".join(problems))
    return days


def compiled_days(days: Any, source: str = "") -> Spans:
    """The open minute spans per weekday of a stored schedule (invalid days closed, see above)."""
    if not days:
        return {}
    try:
        text = json.dumps(days, sort_keys=True)
    except (TypeError, ValueError):
        text = json.dumps(str(days))
    return _compiled(text, source)


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown time zone %r in working hours; UTC used instead", name)
        return zoneinfo.ZoneInfo("UTC")


def _clock(minute: int) -> time:
    return time(minute // 60, minute % 60)


@functools.lru_cache(maxsize=64)
def _calendar(code: str, year: int) -> frozenset[date]:
    """Public holidays of a country (``holidays`` package), cached per year."""
    import holidays

    try:
        return frozenset(holidays.country_holidays(code.upper(), years=year).keys())
    except (NotImplementedError, KeyError, AttributeError):
        logger.warning("unknown holiday calendar %r; treated as no holidays", code)
        return frozenset()


def is_calendar_holiday(code: str, day: date) -> bool:
    return bool(code) and day in _calendar(code, day.year)


def schedule_is_open(
    days: dict[str, Any],
    holidays: list[str],
    tz_name: str,
    now: datetime,
    *,
    calendar: str = "",
    source: str = "",
) -> bool:
    """Open when the local wall-clock time falls in one of the weekday's [start, end) intervals.

    Local time comes from the zone's rules at ``now``, so daylight-saving shifts move the UTC
    opening times with them. A day whose stored hours are invalid is closed (``compiled_days``);
    ``source`` names the schedule's owner in that warning.
    """
    local = now.astimezone(_zone(tz_name))
    if local.date().isoformat() in set(holidays or []) or is_calendar_holiday(calendar, local.date()):
        return False
    spans = compiled_days(days, source).get(WEEKDAYS[local.weekday()], ())
    current = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return any(start * 60 <= current < end * 60 for start, end in spans)


def branch_is_open(branch: Branch | None, now: datetime | None = None) -> bool:
    """A branch without hours (empty ``working_hours``) is always open."""
    if branch is None or not branch.working_hours:
        return True
    return schedule_is_open(
        branch.working_hours,
        [],
        branch.timezone,
        now or timezone.now(),
        calendar=branch.holiday_calendar,
        source=f"branch {branch.pk}",
    )


def uses_branch_hours(inbox: Inbox) -> bool:
    hours = inbox.effective_settings["working_hours"]
    return bool(hours["enabled"] and hours["use_branch_hours"])


def inbox_is_open(inbox: Inbox, now: datetime | None = None) -> bool:
    """Always open unless the inbox enables working hours.

    With branch hours, a branch inbox follows its branch; a global inbox is open while any
    active branch is (its conversations are routed to one that is).
    """
    hours = inbox.effective_settings["working_hours"]
    if not hours["enabled"]:
        return True
    now = now or timezone.now()
    if hours["use_branch_hours"]:
        if inbox.branch_id:
            return branch_is_open(inbox.branch, now)
        return any(branch_is_open(branch, now) for branch in Branch.objects.filter(is_active=True))
    tz_name = hours["timezone"] or (inbox.branch.timezone if inbox.branch_id else "UTC")
    return schedule_is_open(hours["days"], hours["holidays"], tz_name, now, source=f"inbox {inbox.pk}")


def conversation_is_open(conversation: Conversation, now: datetime | None = None) -> bool:
    """Whether the conversation may be assigned now: its inbox's hours, or its branch's."""
    inbox = conversation.inbox
    if uses_branch_hours(inbox):
        return branch_is_open(conversation.branch, now)
    return inbox_is_open(inbox, now)


def schedule_open_seconds(
    days: dict[str, Any],
    holidays: list[str],
    tz_name: str,
    start: datetime,
    end: datetime,
    *,
    calendar: str = "",
    source: str = "",
) -> float:
    """Seconds of [start, end) that fall in the schedule's open intervals (the same rules as
    ``schedule_is_open``: local wall-clock intervals of each weekday, holidays closed, a day with
    invalid stored hours closed).

    Each local day's intervals are turned into aware datetimes in the zone, so a daylight-saving
    day is 23 or 25 hours long and an interval is as long as the clocks say it is.
    """
    if end <= start:
        return 0.0
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    tz = _zone(tz_name)
    spans = compiled_days(days, source)
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    holiday_set = set(holidays or [])
    total = 0.0
    while day <= last:
        if day.isoformat() not in holiday_set and not is_calendar_holiday(calendar, day):
            for open_at, close_at in spans.get(WEEKDAYS[day.weekday()], ()):
                low = datetime.combine(day, _clock(open_at), tzinfo=tz)
                if close_at == END_OF_DAY:
                    high = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
                else:
                    high = datetime.combine(day, _clock(close_at), tzinfo=tz)
                # Aware datetimes of one zone subtract by wall clock: compare and subtract in UTC.
                low, high = max(low.astimezone(UTC), start), min(high.astimezone(UTC), end)
                if high > low:
                    total += (high - low).total_seconds()
        day += timedelta(days=1)
    return total
