"""Working hours: inbox and branch schedules, time zones across daylight-saving changes,
holidays and the production calendar, closed branches routed to their fallback, the offline reply."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from messenger.actions.assignment import do_backlog_sweep_all
from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.actions.widget import availability
from messenger.models import Message
from messenger.routing import route_new_conversation
from messenger.routing.hours import branch_is_open, inbox_is_open, is_calendar_holiday, schedule_is_open
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import connect, heartbeat_all, start, visitor

pytestmark = pytest.mark.django_db

WEEKDAYS_9_18 = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_berlin_spring_forward():
    # 2025-03-30 is the last Sunday of March: Berlin moves from UTC+1 to UTC+2.
    days = {"sat": [["09:00", "18:00"]], "sun": [["09:00", "18:00"]], "mon": [["09:00", "18:00"]]}
    assert schedule_is_open(days, [], "Europe/Berlin", utc(2025, 3, 29, 8, 0))  # Sat 09:00 CET
    assert not schedule_is_open(days, [], "Europe/Berlin", utc(2025, 3, 29, 7, 59))
    assert schedule_is_open(days, [], "Europe/Berlin", utc(2025, 3, 30, 7, 0))  # Sun 09:00 CEST
    assert not schedule_is_open(days, [], "Europe/Berlin", utc(2025, 3, 30, 6, 59))
    assert not schedule_is_open(days, [], "Europe/Berlin", utc(2025, 3, 30, 16, 0))  # Sun 18:00 CEST
    # The skipped hour 02:00–03:00 does not exist: 01:00 UTC is already 03:00 local.
    assert schedule_is_open({"sun": [["03:00", "04:00"]]}, [], "Europe/Berlin", utc(2025, 3, 30, 1, 0))


def test_berlin_fall_back():
    # 2025-10-26 is the last Sunday of October: Berlin moves from UTC+2 back to UTC+1.
    days = {"sat": [["09:00", "18:00"]], "sun": [["09:00", "18:00"]]}
    assert schedule_is_open(days, [], "Europe/Berlin", utc(2025, 10, 25, 7, 0))  # Sat 09:00 CEST
    assert not schedule_is_open(days, [], "Europe/Berlin", utc(2025, 10, 26, 7, 0))  # Sun 08:00 CET
    assert schedule_is_open(days, [], "Europe/Berlin", utc(2025, 10, 26, 8, 0))  # Sun 09:00 CET
    # The repeated hour 02:00–03:00 happens twice; both are inside an interval covering it.
    night = {"sun": [["02:00", "03:00"]]}
    assert schedule_is_open(night, [], "Europe/Berlin", utc(2025, 10, 26, 0, 30))
    assert schedule_is_open(night, [], "Europe/Berlin", utc(2025, 10, 26, 1, 30))
    assert not schedule_is_open(night, [], "Europe/Berlin", utc(2025, 10, 26, 2, 0))


def test_holidays_and_end_of_day():
    days = {"wed": [["00:00", "24:00"]]}
    assert schedule_is_open(days, [], "UTC", utc(2025, 1, 1, 23, 59))
    assert not schedule_is_open(days, ["2025-01-01"], "UTC", utc(2025, 1, 1, 12))
    # The holiday is the local date: 2024-12-31 23:30 UTC is already 1 January in Moscow.
    assert not schedule_is_open(
        {"tue": [["00:00", "24:00"]], "wed": days["wed"]}, ["2025-01-01"], "Europe/Moscow", utc(2024, 12, 31, 23, 30)
    )


def test_production_calendar():
    assert is_calendar_holiday("RU", date(2025, 1, 7))  # Orthodox Christmas
    assert is_calendar_holiday("DE", date(2025, 10, 3))  # German Unity Day
    assert not is_calendar_holiday("RU", date(2025, 1, 15))
    assert not is_calendar_holiday("", date(2025, 1, 7))
    assert not is_calendar_holiday("XX", date(2025, 1, 7))  # unknown code: no holidays, no error
    moscow = make_branch(timezone="Europe/Moscow", working_hours=WEEKDAYS_9_18, holiday_calendar="RU")
    assert not branch_is_open(moscow, utc(2025, 1, 7, 9))  # a Tuesday, but a public holiday
    assert branch_is_open(moscow, utc(2025, 1, 14, 9))  # 12:00 Moscow
    assert not branch_is_open(moscow, utc(2025, 1, 14, 16))  # 19:00 Moscow
    assert branch_is_open(make_branch(), utc(2025, 1, 7, 3))  # no hours: always open


def test_inbox_follows_branch_hours_only_when_asked():
    branch = make_branch(timezone="Asia/Vladivostok", working_hours=WEEKDAYS_9_18)
    own = make_inbox(
        branch, settings={"working_hours": {"enabled": True, "timezone": "UTC", "days": {"sun": [["00:00", "24:00"]]}}}
    )
    follows = make_inbox(branch, settings={"working_hours": {"enabled": True, "use_branch_hours": True}})
    sunday_noon_utc = utc(2025, 6, 1, 12)
    monday_10_local = utc(2025, 6, 2, 0)  # Vladivostok is UTC+10
    assert inbox_is_open(own, sunday_noon_utc) and not inbox_is_open(own, monday_10_local)
    assert not inbox_is_open(follows, sunday_noon_utc) and inbox_is_open(follows, monday_10_local)
    assert inbox_is_open(make_inbox(branch), sunday_noon_utc)  # hours disabled: always open


def test_closed_branch_routes_to_open_fallback_else_waits():
    # Berlin is closed at 20:00 local; New York (14:00 local) is open.
    new_york = make_branch("New York", timezone="America/New_York", working_hours=WEEKDAYS_9_18)
    berlin = make_branch("Berlin", timezone="Europe/Berlin", working_hours=WEEKDAYS_9_18, fallback_branch=new_york)
    inbox = make_inbox(berlin, settings={"working_hours": {"enabled": True, "use_branch_hours": True}})
    evening = utc(2025, 7, 1, 18)
    decision = route_new_conversation(inbox=inbox, ip=None, now=evening)
    assert decision.branch == new_york
    assert decision.log["hours"] == {"closed": "Berlin", "fallback": "New York", "decision": "fallback branch"}
    night = utc(2025, 7, 2, 2)  # both closed: waits in Berlin
    decision = route_new_conversation(inbox=inbox, ip=None, now=night)
    assert decision.branch == berlin and decision.log["hours"]["decision"] == "wait"
    # An inbox with its own hours does not consult branch hours.
    decision = route_new_conversation(inbox=make_inbox(berlin), ip=None, now=evening)
    assert decision.branch == berlin and "hours" not in decision.log


def test_outside_hours_no_assignment_offline_reply_and_assigned_when_hours_open():
    branch = make_branch(timezone="UTC")
    hours = {
        "enabled": True,
        "timezone": "UTC",
        "days": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    }
    inbox = make_inbox(
        branch,
        settings={
            "working_hours": {**hours, "holidays": [datetime.now(UTC).date().isoformat()]},
            "automation": {"out_of_hours_reply": "Back tomorrow", "auto_reply": {"enabled": True, "message": "Hi!"}},
        },
    )
    operator = make_user(branch=branch)
    connect(operator)
    assert availability(inbox)["within_working_hours"] is False
    contact_inbox = visitor(inbox)
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id="c1", body="hello?", actor=Actor(contact=contact_inbox.contact)
    )
    conversation = result.conversation
    conversation.refresh_from_db()
    assert conversation.assignee is None
    replies = list(
        Message.objects.filter(conversation=conversation, direction="out").values_list("body", "content_attributes")
    )
    assert replies == [("Back tomorrow", {"kind": "out_of_hours"})]  # only the offline reply, not the auto-reply too
    assert conversation.first_reply_created_at is None and conversation.waiting_since is not None
    # A second message gets no second offline reply.
    send_visitor_message(
        contact_inbox=contact_inbox, client_id="c2", body="anyone?", actor=Actor(contact=contact_inbox.contact)
    )
    assert Message.objects.filter(conversation=conversation, direction="out").count() == 1
    # Hours open (the holiday is removed): the sweep of the scheduler assigns it.
    assert do_backlog_sweep_all() == 0
    inbox.settings = {**inbox.settings, "working_hours": hours}
    inbox.save()
    heartbeat_all(datetime.now(UTC))
    assert do_backlog_sweep_all() == 1
    conversation.refresh_from_db()
    assert conversation.assignee == operator
    assert conversation.routing_log[-1]["sweep"] == "backlog"


def test_started_conversation_in_closed_branch_hours_waits(settings):
    berlin = make_branch("Berlin", timezone="Europe/Berlin", working_hours={})
    inbox = make_inbox(berlin, settings={"working_hours": {"enabled": True, "use_branch_hours": True}})
    operator = make_user(branch=berlin)
    connect(operator)
    assert start(inbox).assignee == operator  # a branch without hours is always open
    berlin.working_hours = {"mon": []}  # hours set, no interval: closed
    berlin.save()
    conversation = start(inbox)
    assert conversation.assignee is None
