"""Weekly opening hours: the one definition of a valid schedule.

A schedule is ``{"mon": [["09:00", "13:00"], ["14:00", "18:00"]], "sat": [], …}``: weekday keys
(``WEEKDAYS``), each a list of ``[open, close]`` intervals in local wall-clock time, ``HH:MM``
from ``00:00`` to ``24:00`` (end of the day), ``open < close``, no two intervals of a day
overlapping. A day without intervals (or without a key) is closed.

``Inbox.settings["working_hours"]["days"]`` and ``Branch.working_hours`` are both checked here
before they are stored (the admin's forms, the models' ``save``), and the hours check of
``messenger.routing.hours`` reads them through ``usable_days``, which closes a day whose stored
hours do not pass (rows written before the check existed) instead of raising.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = {
    "mon": _("Monday"),
    "tue": _("Tuesday"),
    "wed": _("Wednesday"),
    "thu": _("Thursday"),
    "fri": _("Friday"),
    "sat": _("Saturday"),
    "sun": _("Sunday"),
}
# 00:00 … 23:59, or 24:00 (the end of the day, as a closing time).
TIME_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_TIME = re.compile(TIME_PATTERN)
END_OF_DAY = 24 * 60


def minute_of_day(value: str) -> int:
    """'09:30' → 570, '24:00' → 1440; ValueError for anything else."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise ValueError(f"not a time: {value!r}")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'


def day_problems(day: str, intervals: Any) -> list[str]:
    """What is wrong with one weekday's intervals, in words naming the day ([] when valid)."""
    name = WEEKDAY_NAMES[day]
    if not isinstance(intervals, list):
        return [
            gettext("%(day)s: a list of [opening, closing] times is required, not %(value)s.")
            % {"day": name, "value": _shown(intervals)}
        ]
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for interval in intervals:
        if not (isinstance(interval, list) and len(interval) == 2 and all(isinstance(t, str) for t in interval)):
            problems.append(
                gettext("%(day)s: %(value)s is not an [opening, closing] pair of times.")
                % {"day": name, "value": _shown(interval)}
            )
            continue
        opens, closes = interval
        bad = [value for value in (opens, closes) if not _TIME.fullmatch(value)]
        for value in bad:
            problems.append(
                gettext("%(day)s: %(value)s is not a time from 00:00 to 24:00 (HH:MM).")
                % {"day": name, "value": _shown(value)}
            )
        if bad:
            continue
        start, end = minute_of_day(opens), minute_of_day(closes)
        if start == end:
            problems.append(
                gettext("%(day)s: %(open)s–%(close)s opens and closes at the same time.")
                % {"day": name, "open": opens, "close": closes}
            )
            continue
        if start > end:
            problems.append(
                gettext(
                    "%(day)s: %(open)s–%(close)s closes before it opens. Hours past midnight are two intervals: "
                    "%(open)s–24:00 on this day and 00:00–%(close)s on the next."
                )
                % {"day": name, "open": opens, "close": closes}
            )
            continue
        spans.append((start, end, f"{opens}–{closes}"))
    spans.sort()
    for (_start, end, first), (start, _end, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            problems.append(
                gettext("%(day)s: %(first)s and %(second)s overlap.") % {"day": name, "first": first, "second": second}
            )
    return problems


def schedule_problems(days: Any) -> list[str]:
    """Everything wrong with a stored schedule, each message naming its day ([] when valid)."""
    if not isinstance(days, dict):
        return [
            gettext("Working hours must map weekdays (mon … sun) to lists of intervals, not %(value)s.")
            % {"value": _shown(days)}
        ]
    problems: list[str] = []
    for key in days:
        if key not in WEEKDAYS:
            problems.append(
                gettext("%(key)s is not a weekday: use mon, tue, wed, thu, fri, sat or sun.") % {"key": _shown(key)}
            )
    for day in WEEKDAYS:
        if day in days:
            problems.extend(day_problems(day, days[day]))
    return problems


def validate_schedule(days: Any) -> None:
    """Raise ValidationError listing every problem of ``schedule_problems``."""
    problems = schedule_problems(days)
    if problems:
        raise ValidationError(problems, code="invalid_hours")


def usable_days(days: Any) -> tuple[dict[str, tuple[tuple[int, int], ...]], list[str]]:
    """The valid days of a stored schedule as minute spans, and the problems of the rest.

    A day whose intervals do not pass ``day_problems`` is closed; keys that are not weekdays are
    ignored. The caller logs the problems.
    """
    if not isinstance(days, dict):
        return {}, schedule_problems(days)
    usable: dict[str, tuple[tuple[int, int], ...]] = {}
    problems = schedule_problems({key: value for key, value in days.items() if key not in WEEKDAYS})
    for day in WEEKDAYS:
        intervals = days.get(day, [])
        found = day_problems(day, intervals)
        if found:
            problems.extend(found)
            continue
        usable[day] = tuple(sorted((minute_of_day(opens), minute_of_day(closes)) for opens, closes in intervals))
    return usable, problems
