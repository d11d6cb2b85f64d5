"""The admin's forms for what is stored as JSON (docs/configuration.md, "Per-inbox settings"): an inbox's
settings, a branch's hours, a webhook's events, driven through the pages as a superuser — the
form read back from the page, changed, posted — and the index grouped by what people do."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.urls import reverse

from messenger import models as m
from messenger.actions.attachments import limits
from messenger.actions.contacts import check_visitor_fields, required_pre_chat_fields
from messenger.errors import InvalidInput
from messenger.inbox_settings import domain_allowed, validate_settings
from messenger.routing import hours as hours_module
from messenger.routing.hours import branch_is_open, inbox_is_open, schedule_open_seconds
from messenger.working_hours import WEEKDAYS
from tests.conftest import bootstrap
from tests.factories import make_branch, make_inbox

pytestmark = pytest.mark.django_db

MONDAY_10 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC


@pytest.fixture
def client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


class FormReader(HTMLParser):
    """The values a browser would post for the page's form (#…_form): inputs, ticked boxes,
    textareas, selected options."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None
        self._selected: list[str] = []
        self._first_option: str | None = None

    def add(self, name: str, value: str) -> None:
        self.data.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        name = attr.get("name")
        if tag == "input" and name:
            kind = attr.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attr:
                    self.add(name, attr.get("value", "on"))
            elif kind not in ("submit", "button", "file"):
                self.add(name, attr.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.add(name, "")
        elif tag == "select" and name:
            self._select, self._selected, self._first_option = name, [], None
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = attr.get("value", "")
            if "selected" in attr:
                self._selected.append(attr.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            if self._textarea:  # Django writes a newline after <textarea>, which browsers drop
                self.data[self._textarea][-1] = self.data[self._textarea][-1].removeprefix("\n")
            self._textarea = None
        elif tag == "select" and self._select:
            for value in self._selected or [self._first_option or ""]:
                self.add(self._select, value)
            self._select = None


def form_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200
    reader = FormReader()
    reader.feed(response.content.decode())
    return {key: values if len(values) > 1 else values[0] for key, values in reader.data.items()}


def set_hours(data: dict[str, Any], prefix: str, days: dict[str, list[tuple[str, str]]]) -> None:
    """Fill the weekly rows as a person would: the days given open at those times, the others closed."""
    for key in [key for key in data if key.startswith(f"{prefix}_")]:
        del data[key]
    for day in WEEKDAYS:
        intervals = days.get(day, [])
        if not intervals:
            data[f"{prefix}_{day}_closed"] = "on"
        for index, (opens, closes) in enumerate([*intervals, ("", "")]):
            data[f"{prefix}_{day}_{index}_open"] = opens
            data[f"{prefix}_{day}_{index}_close"] = closes


def url(model: type, view: str, *args: Any) -> str:
    return reverse(f"admin:messenger_{model._meta.model_name}_{view}", args=args)


def errors_of(response: Any) -> str:
    assert response.status_code == 200, "saved, though an error was expected"
    form = response.context["adminform"].form
    return " ".join(str(message) for messages in form.errors.values() for message in messages)


# --- Branch hours ---------------------------------------------------------------------------------


def test_branch_hours_rows_are_stored_as_the_hours_check_reads_them(client):
    branch = make_branch("Berlin", timezone="Europe/Berlin")
    data = form_of(client.get(url(m.Branch, "change", branch.pk)))
    assert data["always_open"] == "on"  # a new branch has no hours
    data.pop("always_open")
    set_hours(data, "working_hours", {"mon": [("9:00", "13:00"), ("14:00", "18:00")], "sat": [("10:00", "24:00")]})
    response = client.post(url(m.Branch, "change", branch.pk), data)
    assert response.status_code == 302, errors_of(response)
    branch.refresh_from_db()
    assert branch.working_hours == {
        "mon": [["09:00", "13:00"], ["14:00", "18:00"]],
        "tue": [],
        "wed": [],
        "thu": [],
        "fri": [],
        "sat": [["10:00", "24:00"]],
        "sun": [],
    }
    assert branch_is_open(branch, MONDAY_10)  # 12:00 in Berlin
    assert not branch_is_open(branch, MONDAY_10.replace(hour=11, minute=30))  # 13:30: the break
    assert not branch_is_open(branch, MONDAY_10.replace(day=3))  # Tuesday: closed

    # The page shows what is stored; posted back unchanged, nothing changes.
    again = form_of(client.get(url(m.Branch, "change", branch.pk)))
    assert "always_open" not in again
    assert (again["working_hours_mon_1_open"], again["working_hours_mon_1_close"]) == ("14:00", "18:00")
    assert again["working_hours_tue_closed"] == "on"
    assert client.post(url(m.Branch, "change", branch.pk), again).status_code == 302
    stored = branch.working_hours
    branch.refresh_from_db()
    assert branch.working_hours == stored

    # Ticking "always open" empties the hours: open at any time.
    again["always_open"] = "on"
    assert client.post(url(m.Branch, "change", branch.pk), again).status_code == 302
    branch.refresh_from_db()
    assert branch.working_hours == {}
    assert branch_is_open(branch, MONDAY_10.replace(day=3))


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ({"mon": [("25:00", "26:00")]}, 'Monday: "25:00" is not a time from 00:00 to 24:00 (HH:MM).'),
        ({"mon": [("9-5", "")]}, "Monday: 9-5–… needs both an opening and a closing time."),
        ({"tue": [("9-5", "18:00")]}, 'Tuesday: "9-5" is not a time from 00:00 to 24:00 (HH:MM).'),
        ({"wed": [("18:00", "09:00")]}, "Wednesday: 18:00–09:00 closes before it opens."),
        (  # a night shift: how to write it
            {"wed": [("22:00", "06:00")]},
            "Hours past midnight are two intervals: 22:00–24:00 on this day and 00:00–06:00 on the next.",
        ),
        ({"sat": [("9:00", "09:00")]}, "Saturday: 09:00–09:00 opens and closes at the same time."),
        ({"thu": [("09:00", "13:00"), ("12:00", "18:00")]}, "Thursday: 09:00–13:00 and 12:00–18:00 overlap."),
        ({"fri": [("24:30", "24:45")]}, 'Friday: "24:30" is not a time'),
    ],
)
def test_branch_hours_errors_name_the_day_and_nothing_is_saved(client, days, message):
    branch = make_branch(working_hours={"sun": [["10:00", "12:00"]]})
    data = form_of(client.get(url(m.Branch, "change", branch.pk)))
    set_hours(data, "working_hours", {"sun": [("10:00", "12:00")], **days})
    response = client.post(url(m.Branch, "change", branch.pk), data)
    assert message in errors_of(response)
    assert message.encode() in response.content.replace(b"&quot;", b'"')
    branch.refresh_from_db()
    assert branch.working_hours == {"sun": [["10:00", "12:00"]]}


def test_branch_day_must_be_closed_or_have_times_not_both(client):
    branch = make_branch()
    data = form_of(client.get(url(m.Branch, "change", branch.pk)))
    data.pop("always_open")
    set_hours(data, "working_hours", {"mon": [("09:00", "18:00")]})
    data.pop("working_hours_tue_closed")
    data["working_hours_wed_0_open"], data["working_hours_wed_0_close"] = "09:00", "12:00"  # and ticked closed
    errors = errors_of(client.post(url(m.Branch, "change", branch.pk), data))
    assert "Tuesday: enter the opening and closing times, or tick closed." in errors
    assert "Wednesday: ticked closed, yet times are filled in" in errors
    branch.refresh_from_db()
    assert branch.working_hours == {}


def test_branch_holiday_calendar_is_a_known_country(client):
    branch = make_branch()
    data = form_of(client.get(url(m.Branch, "change", branch.pk)))
    data["holiday_calendar"] = "XX"
    assert "XX is not a country with a holiday calendar" in errors_of(
        client.post(url(m.Branch, "change", branch.pk), data)
    )
    data["holiday_calendar"] = "ru"
    assert client.post(url(m.Branch, "change", branch.pk), data).status_code == 302
    branch.refresh_from_db()
    assert branch.holiday_calendar == "RU"


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"monday": "9-5"}, '"monday" is not a weekday'),
        ({"mon": "9-5"}, 'Monday: a list of [opening, closing] times is required, not "9-5".'),
        ({"mon": [["09:00", "25:00"]]}, 'Monday: "25:00" is not a time'),
        ({"mon": [["09:00"]]}, 'Monday: ["09:00"] is not an [opening, closing] pair'),
        ([["09:00", "18:00"]], "Working hours must map weekdays"),
    ],
)
def test_invalid_branch_hours_are_never_stored_whoever_saves(hours, message):
    """The shell, a script, an API: ``Branch.save`` applies the same check as the admin."""
    with pytest.raises(ValidationError) as refused:
        m.Branch.objects.create(name="Bad", working_hours=hours)
    assert message in str(refused.value.message_dict["working_hours"])
    branch = make_branch()
    branch.working_hours = hours
    with pytest.raises(ValidationError):
        branch.full_clean()
    with pytest.raises(ValidationError):
        branch.save()
    with pytest.raises(ValidationError):
        branch.save(update_fields=["working_hours"])
    branch.save(update_fields=["is_active"])  # a save that does not write the hours is not refused
    branch.refresh_from_db()
    assert branch.working_hours == {}


def test_unknown_time_zone_is_never_stored():
    with pytest.raises(ValidationError) as refused:
        m.Branch.objects.create(name="Mars", timezone="Mars/Olympus")
    assert "timezone" in refused.value.message_dict


# --- Bad rows already stored ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "hours",
    [
        {"monday": "9-5"},  # the issue's: no weekday key at all
        {"mon": "9-5", "tue": [["09:00", "18:00"]]},
        {"mon": [["09:00", "25:00"]], "tue": [["09:00", "18:00"]]},  # the "25:00"
        {"mon": [["18:00", "09:00"]], "tue": [["09:00", "18:00"]]},
        {"mon": [["9am", "5pm"]], "tue": [["09:00", "18:00"]]},
        {"mon": [[9, 17]], "tue": [["09:00", "18:00"]]},
        ["09:00", "18:00"],
        "9-5",
    ],
)
def test_hours_stored_before_the_check_close_the_bad_day_with_a_warning(caplog, hours):
    branch = make_branch(timezone="UTC")
    m.Branch.objects.filter(pk=branch.pk).update(working_hours=hours)  # as an old row
    branch.refresh_from_db()
    hours_module._compiled.cache_clear()
    with caplog.at_level(logging.WARNING, logger="messenger.routing.hours"):
        assert branch_is_open(branch, MONDAY_10) is False
        tuesday_open = branch_is_open(branch, MONDAY_10.replace(day=3))
    assert tuesday_open is (isinstance(hours, dict) and hours.get("tue") == [["09:00", "18:00"]])
    assert f"invalid working hours of branch {branch.pk}" in caplog.text
    # The reports' open-time sum reads the schedule the same way.
    week = schedule_open_seconds(hours, [], "UTC", MONDAY_10.replace(hour=0), MONDAY_10.replace(day=9, hour=0))
    assert week == (9 * 3600 if tuesday_open else 0)


def test_inbox_hours_stored_before_the_check_close_the_bad_day(caplog):
    inbox = make_inbox(make_branch(), settings={"working_hours": {"enabled": True, "timezone": "UTC"}})
    days = {"mon": [["09:00", "25:00"]], "tue": [["09:00", "13:00"], ["12:00", "18:00"]], "wed": [["09:00", "18:00"]]}
    stored = {**inbox.settings, "working_hours": {**inbox.settings["working_hours"], "days": days}}
    m.Inbox.objects.filter(pk=inbox.pk).update(settings=stored)  # as an old row
    inbox.refresh_from_db()
    hours_module._compiled.cache_clear()
    with caplog.at_level(logging.WARNING, logger="messenger.routing.hours"):
        assert inbox_is_open(inbox, MONDAY_10) is False  # "25:00"
        assert inbox_is_open(inbox, MONDAY_10.replace(day=3)) is False  # overlapping intervals
        assert inbox_is_open(inbox, MONDAY_10.replace(day=4)) is True  # Wednesday is valid
    assert f"invalid working hours of inbox {inbox.pk}" in caplog.text
    assert "Tuesday: 09:00–13:00 and 12:00–18:00 overlap." in caplog.text


def test_inbox_following_a_branch_with_bad_stored_hours_answers(caplog):
    branch = make_branch(timezone="UTC")
    m.Branch.objects.filter(pk=branch.pk).update(working_hours={"mon": [["09:00", "25:00"]]}, timezone="Mars/Olympus")
    inbox = make_inbox(branch, settings={"working_hours": {"enabled": True, "use_branch_hours": True}})
    inbox = m.Inbox.objects.select_related("branch").get(pk=inbox.pk)
    with caplog.at_level(logging.WARNING, logger="messenger.routing.hours"):
        assert inbox_is_open(inbox, MONDAY_10) is False
    assert "unknown time zone" in caplog.text or "Mars/Olympus" in caplog.text


def test_bad_stored_hours_are_shown_on_the_branch_page_and_replaced_on_save(client):
    branch = make_branch()
    m.Branch.objects.filter(pk=branch.pk).update(working_hours={"monday": "9-5"})
    page = client.get(url(m.Branch, "change", branch.pk))
    assert b"The stored hours are not valid" in page.content
    assert b"&quot;monday&quot; is not a weekday" in page.content
    data = form_of(page)
    set_hours(data, "working_hours", {day: [("09:00", "17:00")] for day in ("mon", "tue", "wed", "thu", "fri")})
    assert client.post(url(m.Branch, "change", branch.pk), data).status_code == 302
    branch.refresh_from_db()
    assert branch.working_hours["mon"] == [["09:00", "17:00"]] and branch.working_hours["sat"] == []


# --- Inbox settings -------------------------------------------------------------------------------


def test_inbox_page_round_trip_keeps_the_settings(client):
    """Opened and saved without a change, an inbox keeps exactly what was stored."""
    settings = {
        "working_hours": {"enabled": True, "timezone": "Europe/Berlin", "days": {"mon": [["09:00", "18:00"]]}},
        "features": {"pre_chat_form": True, "emoji": False, "later_switch": True},
        "pre_chat": {
            "fields": [
                {"name": "name", "type": "text", "required": True},
                {"name": "topic", "label": "Topic", "type": "select", "required": False, "options": ["Sales", "Help"]},
            ]
        },
        "attachments": {"max_size": 1000, "allowed_types": ["image/png", "application/x-custom"]},
        "offline": {"collect_contact": False},
        "automation": {"out_of_hours_reply": "We are closed"},
    }
    inbox = make_inbox(make_branch(), settings=settings)
    before = inbox.effective_settings
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    response = client.post(url(m.Inbox, "change", inbox.pk), data)
    assert response.status_code == 302, errors_of(response)
    inbox.refresh_from_db()
    after = inbox.effective_settings
    assert after == before
    assert after["attachments"] == {"max_size": 1000, "allowed_types": ["image/png", "application/x-custom"]}
    assert after["features"]["later_switch"] is True  # a key no field knows is kept


def test_inbox_form_writes_what_the_server_reads(client):
    branch = make_branch()
    inbox = make_inbox(branch)
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    set_hours(data, "hours", {"mon": [("09:00", "13:00"), ("14:00", "18:00")], "fri": [("10:00", "16:00")]})
    data.update(
        {
            "working_hours_enabled": "on",
            "working_hours_timezone": "UTC",
            "features": ["attachments", "pre_chat_form"],
            "attachments_max_size": "2.5",
            "attachments_allowed_types": ["image/png", "application/pdf"],
            "pre_chat_fields_0_name": "email",
            "pre_chat_fields_0_label": "Your e-mail",
            "pre_chat_fields_0_type": "email",
            "pre_chat_fields_0_required": "on",
            "pre_chat_fields_1_name": "plan",
            "pre_chat_fields_1_type": "select",
            "pre_chat_fields_1_options": "Free\r\nPro\r\n",
            "offline_collect_contact": "on",
            "out_of_hours_reply": "Back at nine",
        }
    )
    response = client.post(url(m.Inbox, "change", inbox.pk), data)
    assert response.status_code == 302, errors_of(response)
    inbox.refresh_from_db()
    stored = inbox.settings
    validate_settings(stored)
    assert stored["working_hours"]["days"] == {
        "mon": [["09:00", "13:00"], ["14:00", "18:00"]],
        "fri": [["10:00", "16:00"]],
    }
    assert stored["features"] == {
        "attachments": True,
        "emoji": False,
        "pre_chat_form": True,
        "queue_position": False,
        "typing_preview": False,
    }
    assert stored["pre_chat"]["fields"] == [
        {"name": "email", "label": "Your e-mail", "type": "email", "required": True},
        {"name": "plan", "type": "select", "required": False, "options": ["Free", "Pro"]},
    ]
    assert stored["attachments"] == {"max_size": 2621440, "allowed_types": ["image/png", "application/pdf"]}
    # What the server does with them.
    assert inbox_is_open(inbox, MONDAY_10)
    assert not inbox_is_open(inbox, MONDAY_10.replace(hour=13, minute=30))
    assert required_pre_chat_fields(inbox) == ["email"]
    assert limits(inbox) == (2621440, ["image/png", "application/pdf"])
    assert inbox.effective_settings["automation"]["out_of_hours_reply"] == "Back at nine"

    # Removing a pre-chat row and emptying the size (the server's limit).
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    assert data["pre_chat_fields_1_options"] == "Free\nPro"
    data.update({"pre_chat_fields_0_remove": "on", "attachments_max_size": ""})
    assert client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302
    inbox.refresh_from_db()
    assert [field["name"] for field in inbox.settings["pre_chat"]["fields"]] == ["plan"]
    assert "max_size" not in inbox.settings["attachments"]


def test_what_the_inbox_form_saves_is_what_the_widget_is_given(client):
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data.update(
        {
            "features": ["pre_chat_form", "emoji"],
            "pre_chat_fields_0_name": "order_number",
            "pre_chat_fields_0_label": "Order <b>no.</b>",
            "pre_chat_fields_0_required": "on",
            "pre_chat_fields_1_name": "email",
            "pre_chat_fields_1_type": "email",
            "attachments_allowed_types": ["image/png"],
        }
    )
    response = client.post(url(m.Inbox, "change", inbox.pk), data)
    assert response.status_code == 302, errors_of(response)
    settings = bootstrap(m.Inbox.objects.get(pk=inbox.pk))["settings"]
    assert settings["pre_chat"]["fields"] == [
        {"name": "order_number", "label": "Order <b>no.</b>", "type": "text", "required": True},
        {"name": "email", "type": "email", "required": False},
    ]
    assert settings["features"]["pre_chat_form"] is True and settings["features"]["attachments"] is False
    assert settings["attachments"]["allowed_types"] == ["image/png"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"hours_mon_closed": None, "hours_mon_0_open": "25:00", "hours_mon_0_close": "26:00"},
            '"25:00" is not a time',
        ),
        ({"hours_mon_closed": None, "hours_mon_0_open": "18:00", "hours_mon_0_close": "09:00"}, "Monday: 18:00–09:00"),
        ({"pre_chat_fields_0_name": "First Name"}, 'Pre-chat field "First Name": the name must be'),
        ({"pre_chat_fields_0_name": "plan", "pre_chat_fields_0_type": "select"}, "a select needs at least one option"),
        ({"pre_chat_fields_0_name": "size", "pre_chat_fields_0_options": "S\nM"}, "only a select has options"),
        (
            {"pre_chat_fields_0_name": "topic", "pre_chat_fields_1_name": "topic", "pre_chat_fields_1_label": "x"},
            "the name is used twice",
        ),
        ({"pre_chat_fields_0_label": "Company"}, "Pre-chat row 1: a name is required."),
        ({"pre_chat_fields_0_name": "x", "pre_chat_fields_0_type": "date"}, "the type must be one of"),
        ({"attachments_max_size": "0"}, "At least 0.01 MB."),
        ({"attachments_max_size": "11"}, "At most 10.00 MB"),
        ({"attachments_allowed_types": []}, "Tick at least one type"),
        ({"attachments_allowed_types": ["text/html"]}, "Select a valid choice"),
        ({"features": ["teleport"]}, "Select a valid choice"),
        ({"escalation_timeout": "1000000000000"}, "less than or equal to 604800"),  # past year 9999
    ],
)
@override_settings(MESSENGER_ATTACHMENT_MAX_SIZE=10 * 1024 * 1024)
def test_inbox_form_errors_are_clear_and_nothing_is_saved(client, changes, message):
    inbox = make_inbox(make_branch(), settings={"features": {"typing_preview": True}})
    before = inbox.settings
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)  # a box left unticked
        else:
            data[key] = value
    response = client.post(url(m.Inbox, "change", inbox.pk), data)
    assert message in errors_of(response).replace("&quot;", '"')
    inbox.refresh_from_db()
    assert inbox.settings == before


def test_inbox_settings_from_any_path_pass_the_same_check():
    """What the form refuses, ``Inbox.save`` refuses too (a shell, a script, an API)."""
    for bad in (
        {"working_hours": {"days": {"mon": [["18:00", "09:00"]]}}},
        {"working_hours": {"days": {"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}}},
        {"working_hours": {"days": {"mon": [["24:00", "24:30"]]}}},
        {"pre_chat": {"fields": [{"name": "a", "type": "select"}]}},
        {"pre_chat": {"fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "email"}]}},
        {"escalation": {"timeout_seconds": 10**12}},
    ):
        with pytest.raises(ValidationError):
            m.Inbox.objects.create(name="Bad", settings=bad)
    with pytest.raises(ValidationError) as refused:
        validate_settings({"working_hours": {"days": {"monday": "9-5"}}})
    assert refused.value.messages == [
        'working_hours.days: "monday" is not a weekday: use mon, tue, wed, thu, fri, sat or sun.'
    ]


def test_new_inbox_from_the_add_page(client):
    branch = make_branch()
    data = form_of(client.get(url(m.Inbox, "add")))
    data.update({"name": "Shop", "branch": str(branch.pk), "allowed_domains": "shop.example.com"})
    response = client.post(url(m.Inbox, "add"), data)
    assert response.status_code == 302, errors_of(response)
    inbox = m.Inbox.objects.get(name="Shop")
    effective = inbox.effective_settings
    defaults = m.Inbox(settings={}).effective_settings
    assert effective["features"] == defaults["features"]
    assert effective["attachments"] == defaults["attachments"]
    assert effective["working_hours"]["days"] == {}
    assert effective["pre_chat"] == {"fields": []}


def test_allowed_domains_are_stored_as_the_hosts_browsers_send(client):
    """The widget compares the Origin's host: an international name arrives in its ASCII form,
    and a lone * matched no site at all while looking like "every site"."""
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data["allowed_domains"] = "Магазин.рф\r\nhttps://Shop.Example.com:8443/\r\n*.example.org\r\nshop.example.com"
    response = client.post(url(m.Inbox, "change", inbox.pk), data)
    assert response.status_code == 302, errors_of(response)
    inbox.refresh_from_db()
    assert inbox.allowed_domains == ["xn--80aairftm.xn--p1ai", "shop.example.com", "*.example.org"]
    assert domain_allowed(inbox.allowed_domains, "https://xn--80aairftm.xn--p1ai")
    for wrong in ("*", "*.*", "shop.example.com/chat", "http://shop.example.com:port", "two words.com"):
        data["allowed_domains"] = wrong
        assert f"{wrong} is not a host name" in errors_of(client.post(url(m.Inbox, "change", inbox.pk), data))
    inbox.refresh_from_db()
    assert inbox.allowed_domains == ["xn--80aairftm.xn--p1ai", "shop.example.com", "*.example.org"]


def test_notification_emails_name_the_addresses_that_are_not(client):
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data["notification_emails"] = "desk@example.com, sales@example, boss@example.com\r\nfront desk"
    errors = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data))
    assert "Not e-mail addresses: sales@example, front, desk." in errors
    inbox.refresh_from_db()
    assert inbox.notification_emails == ""


def test_staff_who_may_only_view_see_the_settings_as_the_form_shows_them():
    user = get_user_model().objects.create_user("viewer", "viewer@example.com", "pw", is_staff=True)
    for codename in ("view_inbox", "view_branch", "view_region", "view_webhook"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    viewer = Client()
    viewer.force_login(user)
    branch = make_branch(working_hours={"mon": [["09:00", "18:00"]]})
    inbox = make_inbox(
        branch,
        settings={
            "widget": {"title": "Hello shop"},
            "working_hours": {"enabled": True, "days": {"tue": [["10:00", "14:00"]]}},
        },
    )
    region = m.Region.objects.create(name="East", geoip_codes=["RU", "BY"])
    webhook = m.Webhook.objects.create(inbox=inbox, url="https://hooks.example.com/in", events=["rating.created"])
    pages = {
        "webhook": client_page(viewer, url(m.Webhook, "change", webhook.pk)),
        "inbox": client_page(viewer, url(m.Inbox, "change", inbox.pk)),
        "branch": client_page(viewer, url(m.Branch, "change", branch.pk)),
        "region": client_page(viewer, url(m.Region, "change", region.pk)),
    }
    data = form_of_page(pages["inbox"])
    assert (data["widget_title"], data["hours_tue_0_open"], data["hours_tue_0_close"]) == (
        "Hello shop",
        "10:00",
        "14:00",
    )
    assert form_of_page(pages["branch"])["working_hours_mon_0_open"] == "09:00"
    assert form_of_page(pages["region"])["geoip_codes"] == "RU, BY"
    assert form_of_page(pages["webhook"])["events"] == "rating.created"
    for name, page in pages.items():
        assert '<div class="readonly">None</div>' not in page, name
        assert "&quot;09:00&quot;" not in page and "[&#x27;RU&#x27;" not in page, name
        assert 'name="_save"' not in page, name
    assert '<fieldset disabled class="messenger-read-only"><table class="messenger-hours"' in pages["inbox"]
    assert 'name="widget_title" value="Hello shop"' in pages["inbox"] and "disabled" in pages["inbox"]
    # And nothing a viewer posts is stored.
    assert viewer.post(url(m.Inbox, "change", inbox.pk), data).status_code == 403


def client_page(client: Client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200
    return response.content.decode()


def form_of_page(page: str) -> dict[str, Any]:
    reader = FormReader()
    reader.feed(page)
    return {key: values if len(values) > 1 else values[0] for key, values in reader.data.items()}


# --- Regions --------------------------------------------------------------------------------------


def test_region_codes_are_typed_as_text_not_json(client):
    data = form_of(client.get(url(m.Region, "add")))
    data.update({"name": "East", "geoip_codes": "ru, by\r\nRU-MOW ru"})
    response = client.post(url(m.Region, "add"), data)
    assert response.status_code == 302, errors_of(response)
    region = m.Region.objects.get(name="East")
    assert region.geoip_codes == ["RU", "BY", "RU-MOW"]
    assert form_of(client.get(url(m.Region, "change", region.pk)))["geoip_codes"] == "RU, BY, RU-MOW"

    data = form_of(client.get(url(m.Region, "add")))
    data.update({"name": "West", "geoip_codes": "Germany, DE, by"})
    errors = errors_of(client.post(url(m.Region, "add"), data))
    assert "GERMANY: not a country code (RU) or a region code (RU-MOW)." in errors
    data["geoip_codes"] = "DE, by"  # BY would match either region: the first by name would win
    assert "Already in another region, which would decide alone: BY (East)." in errors_of(
        client.post(url(m.Region, "add"), data)
    )
    assert not m.Region.objects.filter(name="West").exists()


# --- Webhooks -------------------------------------------------------------------------------------


@override_settings(MESSENGER_WEBHOOK_ALLOW_PRIVATE=True)
def test_webhook_events_are_boxes_and_none_means_every_event(client):
    inbox = make_inbox(make_branch())
    page = client.get(url(m.Webhook, "add"))
    assert b'type="checkbox" name="events" value="message.created"' in page.content
    assert b"None ticked: every event" in page.content
    data = form_of(page)
    data.update(
        {"inbox": str(inbox.pk), "url": "https://hooks.example.com/in", "events": ["rating.created", "message.created"]}
    )
    assert client.post(url(m.Webhook, "add"), data).status_code == 302
    webhook = m.Webhook.objects.get()
    assert sorted(webhook.events) == ["message.created", "rating.created"]
    assert webhook.event_filter == ",message.created,rating.created,"

    data = form_of(client.get(url(m.Webhook, "change", webhook.pk)))
    assert sorted(data["events"]) == ["message.created", "rating.created"]
    data.pop("events")
    assert client.post(url(m.Webhook, "change", webhook.pk), data).status_code == 302
    webhook.refresh_from_db()
    assert (webhook.events, webhook.event_filter) == ([], "*")

    data["events"] = "message.deleted"
    assert "Select a valid choice" in errors_of(client.post(url(m.Webhook, "change", webhook.pk), data))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ftp://hooks.example.com/in", "only http and https URLs are allowed."),
        ("https://user:secret@hooks.example.com/in", "credentials in the URL are not allowed."),
        ("https://hooks.example.com:99999/in", "the URL's port is not valid."),
    ],
)
@override_settings(MESSENGER_WEBHOOK_ALLOW_PRIVATE=False)
def test_a_webhook_url_refused_for_its_form_names_no_setting_that_would_not_allow_it(client, target, message):
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Webhook, "add")))
    data.update({"inbox": str(inbox.pk), "url": target})
    errors = errors_of(client.post(url(m.Webhook, "add"), data)).replace("&#x27;", "'")
    assert message in errors
    assert "MESSENGER_WEBHOOK_ALLOW_PRIVATE" not in errors
    assert not m.Webhook.objects.exists()
    data["url"] = "http://10.0.0.1/in"  # an address: the setting that allows it is named
    assert "MESSENGER_WEBHOOK_ALLOW_PRIVATE=1 allows private targets" in errors_of(
        client.post(url(m.Webhook, "add"), data)
    )


def test_the_webhook_list_shows_the_events_delivered_whatever_was_stored_before_the_check(client):
    inbox = make_inbox(make_branch())
    chosen = m.Webhook.objects.create(inbox=inbox, url="https://a.example.com/in", events=["rating.created"])
    legacy = m.Webhook.objects.create(inbox=inbox, url="https://b.example.com/in", events=[])
    m.Webhook.objects.filter(pk=legacy.pk).update(events=[1, None])  # a shell, before the check
    page = client.get(url(m.Webhook, "changelist"))
    assert page.status_code == 200
    cells = [cell.split("</td>")[0] for cell in page.content.decode().split('class="field-event_list">')[1:]]
    assert sorted(cells) == ["every event", "rating.created"]
    assert chosen.event_filter == ",rating.created,"


# --- The index ------------------------------------------------------------------------------------


def test_index_is_grouped_by_what_people_do(client):
    page = client.get(reverse("admin:index"))
    groups = {str(app["name"]): [entry["object_name"] for entry in app["models"]] for app in page.context["app_list"]}
    assert list(groups)[:4] == ["Configuration", "Staff and access", "Conversations and contacts", "Logs"]
    assert groups["Configuration"] == [
        "Inbox", "ProactiveTrigger", "Branch", "Region", "RoutingRule", "CannedResponse", "Label", "Webhook",
    ]  # fmt: skip
    assert groups["Staff and access"] == ["User", "Group", "AgentProfile", "ApiToken"]
    assert groups["Conversations and contacts"] == ["Conversation", "Message", "Attachment", "Contact", "ContactInbox"]
    assert groups["Logs"] == [
        "ActivityEvent", "ConversationEvent", "WebhookDelivery", "OutgoingEmail", "PresencePeriod", "AgentConnection",
    ]  # fmt: skip
    placed = [name for models in groups.values() for name in models]
    assert len(placed) == len(set(placed))  # every model once
    # An application's own page still lists its models as Django does.
    messenger_page = client.get(reverse("admin:app_list", args=["messenger"]))
    assert [str(app["name"]) for app in messenger_page.context["app_list"]] == ["Messenger"]


def test_index_groups_speak_russian(client):
    client.cookies["django_language"] = "ru"
    page = client.get(reverse("admin:index")).content.decode()
    for title in ("Настройка", "Сотрудники и доступ", "Диалоги и контакты", "Журналы"):
        assert title in page
    inbox = make_inbox(make_branch())
    form = client.get(url(m.Inbox, "change", inbox.pk)).content.decode()
    assert "Рабочие часы" in form and "Понедельник" in form and "Поля анкеты перед чатом" in form


# --- Settings stored before the check -------------------------------------------------------------


@pytest.mark.parametrize(
    "legacy",
    [
        {"attachments": None},
        {"attachments": []},
        {"working_hours": "9-5"},
        {"features": ["emoji"]},
        {"pre_chat": None},
        {"security": None},
        {"widget": None},
        {"automation": {"auto_reply": None}},
        {"greeting": "Hi", "widget": {"colour": "#ffffff"}},
        ["not", "an", "object"],
    ],
)
def test_inbox_settings_stored_before_the_check_open_with_a_warning_and_save(client, legacy):
    inbox = make_inbox(make_branch())
    m.Inbox.objects.filter(pk=inbox.pk).update(settings=legacy)
    page = client.get(url(m.Inbox, "change", inbox.pk))
    assert b"The stored settings are not valid" in page.content
    response = client.post(url(m.Inbox, "change", inbox.pk), form_of(page))
    assert response.status_code == 302, errors_of(response)
    inbox.refresh_from_db()
    validate_settings(inbox.settings)
    assert b"The stored settings are not valid" not in client.get(url(m.Inbox, "change", inbox.pk)).content


def test_the_inbox_list_opens_with_a_row_whose_settings_predate_the_check(client):
    """One such row made the whole list fail (its "allowed domains" column), and with it the
    way to the page that repairs it; the server reads the defaults for what it cannot read."""
    good = make_inbox(make_branch(), settings={"security": {"allowed_domains": ["shop.example.com"]}})
    for legacy in ({"security": None}, {"security": {"allowed_domains": ["a.example"]}, "widget": []}, "x"):
        inbox = make_inbox(make_branch())
        m.Inbox.objects.filter(pk=inbox.pk).update(settings=legacy)
        inbox.refresh_from_db()
        assert inbox.effective_settings["widget"]["position"] == "right"
    page = client.get(url(m.Inbox, "changelist"))
    assert page.status_code == 200
    assert b"shop.example.com" in page.content and b"a.example" in page.content
    assert good.allowed_domains == ["shop.example.com"]


def test_a_lone_text_stored_for_a_list_is_one_line_not_a_line_per_character(client):
    inbox = make_inbox(make_branch())
    m.Inbox.objects.filter(pk=inbox.pk).update(
        settings={"security": {"allowed_domains": "shop.example.com"}, "working_hours": {"holidays": "2025-01-01"}}
    )
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    assert (data["allowed_domains"], data["holidays"]) == ("shop.example.com", "2025-01-01")
    assert client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302
    inbox.refresh_from_db()
    assert inbox.settings["security"]["allowed_domains"] == ["shop.example.com"]
    assert inbox.settings["working_hours"]["holidays"] == ["2025-01-01"]


# --- Pre-chat fields a visitor can actually send ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "options"),
    [("email", "phone", ""), ("phone", "email", ""), ("name", "select", "Ann\nBob"), ("email", "text", "")],
)
def test_the_contact_fields_keep_their_own_type(client, name, kind, options):
    """A field named phone typed e-mail would make the widget ask for an address the server then
    refuses as a phone number: the visitor could never send the form."""
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data.update({"pre_chat_fields_0_name": name, "pre_chat_fields_0_type": kind, "pre_chat_fields_0_options": options})
    message = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data)).replace("&quot;", '"')
    assert f'Pre-chat field "{name}" fills the contact\'s {name}, which takes the type' in message
    inbox.refresh_from_db()
    assert inbox.settings.get("pre_chat", {}).get("fields", []) == []


def test_no_more_pre_chat_fields_than_a_visitor_may_send(client):
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    names = ["name", "email", "phone", *(f"field_{number}" for number in range(30))]
    for index, name in enumerate(names):
        data[f"pre_chat_fields_{index}_name"] = name
        data[f"pre_chat_fields_{index}_type"] = {"email": "email", "phone": "phone"}.get(name, "text")
    assert client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302
    inbox.refresh_from_db()
    assert len(inbox.settings["pre_chat"]["fields"]) == 33
    # All of them filled in: the widget's contact.update, which the server takes.
    assert check_visitor_fields({"name": "Ann", "custom": {name: "x" * 500 for name in names[3:]}})

    data["pre_chat_fields_33_name"] = "one_more"
    data["pre_chat_fields_33_type"] = "text"
    message = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data))
    assert "31 pre-chat fields besides name, email and phone: at most 30" in message
    with pytest.raises(InvalidInput):  # what the widget would have sent
        check_visitor_fields({"custom": {f"field_{number}": "x" for number in range(30)} | {"one_more": "x"}})
    inbox.refresh_from_db()
    assert len(inbox.settings["pre_chat"]["fields"]) == 33


def test_a_select_option_fits_what_a_visitor_may_send(client):
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data.update(
        {"pre_chat_fields_0_name": "plan", "pre_chat_fields_0_type": "select", "pre_chat_fields_0_options": "x" * 501}
    )
    message = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data)).replace("&quot;", '"')
    assert 'Pre-chat field "plan": an option is longer than 500 characters.' in message


def test_a_pre_chat_label_is_at_most_what_the_admin_input_takes(client):
    """The input's maxlength is the browser's courtesy; a longer label posted anyway (and sent
    to every visitor's bootstrap) is refused in words, not echoed back by the schema."""
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data.update({"pre_chat_fields_0_name": "topic", "pre_chat_fields_0_label": "x" * 201})
    message = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data)).replace("&quot;", '"')
    assert message == 'Pre-chat field "topic": the label is longer than 200 characters.'
    data["pre_chat_fields_0_label"] = "x" * 200
    assert client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302


# --- Hours that would never open ---------------------------------------------------------------------


def test_inbox_hours_switched_on_with_every_day_closed_are_refused(client):
    """A new inbox shows every day ticked closed: ticking "Working hours enabled" alone would
    have closed the inbox for good."""
    inbox = make_inbox(make_branch())
    data = form_of(client.get(url(m.Inbox, "change", inbox.pk)))
    data["working_hours_enabled"] = "on"
    message = errors_of(client.post(url(m.Inbox, "change", inbox.pk), data))
    assert "Working hours are on, yet every day is ticked closed" in message
    inbox.refresh_from_db()
    assert inbox_is_open(inbox, MONDAY_10)
    data["working_hours_use_branch"] = "on"  # the branch's hours: its own rows do not count
    assert client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302


def test_branch_with_every_day_closed_is_refused(client):
    branch = make_branch()
    data = form_of(client.get(url(m.Branch, "change", branch.pk)))
    data.pop("always_open")
    message = errors_of(client.post(url(m.Branch, "change", branch.pk), data))
    assert "Every day is ticked closed: the branch would never take a chat." in message
    branch.refresh_from_db()
    assert branch.working_hours == {} and branch_is_open(branch, MONDAY_10)
