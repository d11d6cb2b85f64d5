"""Form fields of the admin for what is stored as JSON: weekly hours and pre-chat fields.

Each widget posts plain inputs (no JavaScript): a row per weekday with a "closed" box and
opening–closing times, a row per pre-chat field with spare empty rows to add one. The fields
return the rows as posted; the forms turn them into the stored JSON with ``hours_from_rows`` /
``pre_chat_from_rows``, whose last step is the check the server itself applies before storing
(``messenger.working_hours.schedule_problems``, ``messenger.inbox_settings.pre_chat_problems``).
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from messenger.inbox_settings import PRE_CHAT_TYPES, pre_chat_problems
from messenger.working_hours import WEEKDAY_NAMES, WEEKDAYS, schedule_problems

PRE_CHAT_TYPE_LABELS = {
    "text": _("Text"),
    "email": _("E-mail"),
    "phone": _("Phone"),
    "select": _("Choice from a list"),
}
SPARE_PRE_CHAT_ROWS = 2
MIN_INTERVAL_SLOTS = 2
MAX_ROWS = 50  # a posted form never makes more rows than this


def _ticked(data: Any, key: str) -> bool:
    return data.get(key) not in (None, "", "0", "false", "off")


def read_only_if_disabled(table: SafeString, attrs: dict[str, Any] | None) -> SafeString:
    """A disabled field (staff who may only view) disables every input of its table at once."""
    if (attrs or {}).get("disabled"):
        return format_html('<fieldset disabled class="messenger-read-only">{}</fieldset>', table)
    return table


# --- Weekly hours ------------------------------------------------------------------------------


class Posted(dict):
    """Rows read back from a POST (to render them again as typed when the form has errors)."""


def rows_of_schedule(days: Any) -> dict[str, dict[str, Any]]:
    """A stored schedule as widget rows; whatever cannot be shown as times is left out."""
    days = days if isinstance(days, dict) else {}
    rows = {}
    for day in WEEKDAYS:
        intervals = days.get(day)
        pairs = []
        for interval in intervals if isinstance(intervals, list) else []:
            if isinstance(interval, list) and len(interval) == 2:
                pairs.append(tuple("" if part is None else str(part) for part in interval))
        rows[day] = {"closed": not pairs, "intervals": pairs}
    return rows


class WeeklyHoursWidget(forms.Widget):
    class Media:
        css = {"all": ("messenger/admin-forms.css",)}

    def id_for_label(self, id_: str) -> str:
        return ""  # a table of inputs, each with its own aria-label: the field's label names no one input

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Posted:
        rows = Posted()
        for day in WEEKDAYS:
            pairs = []
            for index in range(MAX_ROWS):
                opens, closes = f"{name}_{day}_{index}_open", f"{name}_{day}_{index}_close"
                if opens not in data and closes not in data:
                    break
                pairs.append((str(data.get(opens, "")).strip(), str(data.get(closes, "")).strip()))
            rows[day] = {"closed": _ticked(data, f"{name}_{day}_closed"), "intervals": pairs}
        return rows

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False  # an unticked box and empty times are a value

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        rows = value if isinstance(value, Posted) else rows_of_schedule(value)
        filled = {day: [pair for pair in rows[day]["intervals"] if any(pair)] for day in WEEKDAYS}
        # One empty pair beyond the longest day's: room for one more interval (a break).
        slots = max(MIN_INTERVAL_SLOTS, *(len(pairs) + 1 for pairs in filled.values()))
        body = []
        for day in WEEKDAYS:
            row = rows[day]
            label = WEEKDAY_NAMES[day]
            pairs = filled[day] + [("", "")] * (slots - len(filled[day]))
            cells = format_html_join(
                "",
                '<td class="hours-interval"><input type="text" name="{}" value="{}" size="5" maxlength="5" '
                'placeholder="--:--" aria-label="{} {} {}"> – <input type="text" name="{}" value="{}" size="5" '
                'maxlength="5" placeholder="--:--" aria-label="{} {} {}"></td>',
                (
                    (
                        f"{name}_{day}_{index}_open",
                        opens,
                        label,
                        index + 1,
                        gettext("opens"),
                        f"{name}_{day}_{index}_close",
                        closes,
                        label,
                        index + 1,
                        gettext("closes"),
                    )  # fmt: skip
                    for index, (opens, closes) in enumerate(pairs)
                ),
            )
            body.append(
                format_html(
                    '<tr data-day="{}"><th scope="row">{}</th><td><label><input type="checkbox" name="{}"{}> {}'
                    "</label></td>{}</tr>",
                    day,
                    label,
                    f"{name}_{day}_closed",
                    mark_safe(" checked") if row["closed"] else "",
                    gettext("closed"),
                    cells,
                )
            )
        return read_only_if_disabled(
            format_html(
                '<table class="messenger-hours" id="{}"><thead><tr><th>{}</th><th>{}</th><th colspan="{}">{}</th>'
                "</tr></thead><tbody>{}</tbody></table>",
                (attrs or {}).get("id", f"id_{name}"),
                gettext("Day"),
                gettext("Closed"),
                slots,
                gettext("Open – close (HH:MM, 24:00 = midnight at the end of the day)"),
                mark_safe("".join(body)),
            ),
            attrs,
        )


class WeeklyHoursField(forms.Field):
    """Returns the posted rows; ``hours_from_rows`` makes the schedule."""

    widget = WeeklyHoursWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def has_changed(self, initial: Any, data: Any) -> bool:
        days, problems = hours_from_rows(data)
        return bool(problems) or days != hours_from_rows(rows_of_schedule(initial))[0]


_SHORT_TIME = re.compile(r"^\d:\d\d$")


def _time(value: str) -> str:
    return f"0{value}" if _SHORT_TIME.match(value) else value


def hours_from_rows(rows: Any) -> tuple[dict[str, list[list[str]]], list[str]]:
    """Posted rows → (every weekday's intervals, the problems, each naming its day).

    A day is either ticked closed or given times; the times then pass the server's own check.
    """
    if not isinstance(rows, dict):
        return {}, []
    days: dict[str, list[list[str]]] = {}
    problems: list[str] = []
    for day in WEEKDAYS:
        row = rows.get(day) or {"closed": True, "intervals": []}
        name = WEEKDAY_NAMES[day]
        filled = [(opens, closes) for opens, closes in row["intervals"] if opens or closes]
        if row["closed"]:
            if filled:
                problems.append(
                    gettext("%(day)s: ticked closed, yet times are filled in; clear them or untick closed.")
                    % {"day": name}
                )
            days[day] = []
            continue
        if not filled:
            problems.append(gettext("%(day)s: enter the opening and closing times, or tick closed.") % {"day": name})
            continue
        intervals = []
        for opens, closes in filled:
            if not opens or not closes:
                problems.append(
                    gettext("%(day)s: %(open)s–%(close)s needs both an opening and a closing time.")
                    % {"day": name, "open": opens or "…", "close": closes or "…"}
                )
                continue
            intervals.append([_time(opens), _time(closes)])
        days[day] = sorted(intervals)
    if problems:
        return days, problems
    return days, schedule_problems(days)


# --- Pre-chat fields -----------------------------------------------------------------------------


def rows_of_pre_chat(fields: Any) -> list[dict[str, Any]]:
    rows = []
    for field in fields if isinstance(fields, list) else []:
        if not isinstance(field, dict):
            continue
        options = field.get("options")
        rows.append(
            {
                "name": str(field.get("name", "")),
                "label": str(field.get("label", "")),
                "type": str(field.get("type", "text")),
                "required": bool(field.get("required")),
                "options": "\n".join(str(o) for o in options) if isinstance(options, list) else "",
                "remove": False,
            }
        )
    return rows


class PostedRows(list):
    """Pre-chat rows read back from a POST."""


class PreChatFieldsWidget(forms.Widget):
    class Media:
        css = {"all": ("messenger/admin-forms.css",)}

    def id_for_label(self, id_: str) -> str:
        return ""  # a table of inputs, each with its own aria-label: the field's label names no one input

    def value_from_datadict(self, data: Any, files: Any, name: str) -> PostedRows:
        rows = PostedRows()
        for index in range(MAX_ROWS):
            prefix = f"{name}_{index}_"
            if not any(f"{prefix}{part}" in data for part in ("name", "label", "type", "options")):
                break
            rows.append(
                {
                    "name": str(data.get(f"{prefix}name", "")).strip(),
                    "label": str(data.get(f"{prefix}label", "")).strip(),
                    "type": str(data.get(f"{prefix}type", "text")),
                    "required": _ticked(data, f"{prefix}required"),
                    "options": str(data.get(f"{prefix}options", "")),
                    "remove": _ticked(data, f"{prefix}remove"),
                }
            )
        return rows

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        rows = list(value) if isinstance(value, PostedRows) else rows_of_pre_chat(value)
        blank = {"name": "", "label": "", "type": "text", "required": False, "options": "", "remove": False}
        rows += [dict(blank) for _ in range(SPARE_PRE_CHAT_ROWS)]
        body = []
        for index, row in enumerate(rows):
            prefix = f"{name}_{index}_"
            types = list(PRE_CHAT_TYPES) + ([row["type"]] if row["type"] not in PRE_CHAT_TYPES else [])
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                (
                    (kind, mark_safe(" selected") if kind == row["type"] else "", PRE_CHAT_TYPE_LABELS.get(kind, kind))
                    for kind in types
                ),
            )
            body.append(
                format_html(
                    "<tr>"
                    '<td><input type="text" name="{}" value="{}" size="16" maxlength="40" '
                    'aria-label="{}"></td>'
                    '<td><input type="text" name="{}" value="{}" size="20" maxlength="200" aria-label="{}"></td>'
                    '<td><select name="{}" aria-label="{}">{}</select></td>'
                    '<td><input type="checkbox" name="{}" aria-label="{}"{}></td>'
                    '<td><textarea name="{}" rows="2" cols="20" aria-label="{}">{}</textarea></td>'
                    '<td><input type="checkbox" name="{}" aria-label="{}"{}></td>'
                    "</tr>",
                    f"{prefix}name",
                    row["name"],
                    gettext("Name"),
                    f"{prefix}label",
                    row["label"],
                    gettext("Label"),
                    f"{prefix}type",
                    gettext("Type"),
                    options,
                    f"{prefix}required",
                    gettext("Required"),
                    mark_safe(" checked") if row["required"] else "",
                    f"{prefix}options",
                    gettext("Options"),
                    row["options"],
                    f"{prefix}remove",
                    gettext("Remove"),
                    mark_safe(" checked") if row["remove"] else "",
                )  # fmt: skip
            )
        head = format_html_join(
            "",
            "<th>{}</th>",
            (
                (gettext("Name"),),
                (gettext("Label shown"),),
                (gettext("Type"),),
                (gettext("Required"),),
                (gettext("Options (a select: one per line)"),),
                (gettext("Remove"),),
            ),
        )
        return read_only_if_disabled(
            format_html(
                '<table class="messenger-prechat" id="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                (attrs or {}).get("id", f"id_{name}"),
                head,
                mark_safe("".join(body)),
            ),
            attrs,
        )


class PreChatFieldsField(forms.Field):
    """Returns the posted rows; ``pre_chat_from_rows`` makes the list of fields."""

    widget = PreChatFieldsWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def has_changed(self, initial: Any, data: Any) -> bool:
        fields, problems = pre_chat_from_rows(data)
        return bool(problems) or fields != pre_chat_from_rows(rows_of_pre_chat(initial))[0]


def pre_chat_from_rows(rows: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Posted rows → (the pre-chat fields as the widget and the server read them, the problems).

    Empty rows and rows ticked "remove" are dropped; options are kept for a select only.
    """
    fields: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, row in enumerate(rows if isinstance(rows, list) else [], start=1):
        if row["remove"] or not (row["name"] or row["label"] or row["options"].strip()):
            continue
        if not row["name"]:
            problems.append(gettext("Pre-chat row %(number)d: a name is required.") % {"number": number})
            continue
        field: dict[str, Any] = {"name": row["name"], "type": row["type"], "required": row["required"]}
        if row["label"]:
            field["label"] = row["label"]
        options = [line.strip() for line in row["options"].splitlines() if line.strip()]
        if row["type"] == "select" or options:
            field["options"] = options
        fields.append(field)
    if problems:
        return fields, problems
    return fields, pre_chat_problems(fields)
