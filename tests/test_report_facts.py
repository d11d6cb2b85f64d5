"""The reports' per-conversation facts (docs/analytics.md, "Where the figures come from"): what the
actions keep as things happen equals what ``do_rebuild_report_facts`` computes from the messages
and the audit log, on both send paths; the scheduler job fills the working-hours first response;
the management command rebuilds."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import transaction

from messenger.actions.assignment import do_transfer
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_status, do_rate
from messenger.actions.locks import lock_conversation
from messenger.actions.messages import send_automatic_message
from messenger.actions.report_facts import do_fill_working_seconds, do_rebuild_report_facts, pending_working_seconds
from messenger.models import Branch, Conversation
from messenger.scheduler import TICK_JOBS
from tests.factories import make_branch, make_conversation, make_inbox, make_message, make_user
from tests.test_events import DRIVERS, _on_driver, make_world, operator_send, visitor_send

pytestmark = pytest.mark.django_db

FACTS = (
    "first_visitor_message_at",
    "first_reply_created_at",
    "counted_messages",
    "first_assigned_at",
    "first_resolved_at",
)


def facts(conversation_id: int) -> dict:
    return Conversation.objects.filter(pk=conversation_id).values(*FACTS).get()


def change(conversation_id: int, action, **fields):
    with transaction.atomic():
        return action(conversation=lock_conversation(conversation_id), **fields)


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_actions_keep_what_a_rebuild_computes(driver):
    _on_driver(driver)
    world = make_world()  # the visitor's first message started it; routing assigned the operator
    cid = world.conversation_id
    started = facts(cid)
    assert started["first_visitor_message_at"] is not None
    assert started["first_assigned_at"] is not None and started["counted_messages"] == 1
    assert started["first_reply_created_at"] is None and started["first_resolved_at"] is None

    send_automatic_message(conversation=world.conversation(), body="We will answer soon")  # a bot: not counted
    operator_send(world, driver, private=True)  # a note: not counted, not a reply
    assert facts(cid)["first_reply_created_at"] is None and facts(cid)["counted_messages"] == 1
    reply = operator_send(world, driver)
    visitor_send(world, driver)
    operator_send(world, driver)
    kept = facts(cid)
    assert kept["first_reply_created_at"] == reply.message.created_at
    assert kept["first_visitor_message_at"] == started["first_visitor_message_at"]
    assert kept["counted_messages"] == 4

    operator = Actor(user=world.operator)
    change(cid, do_transfer, actor=operator, assignee_id=world.colleague.pk)
    change(cid, do_change_status, status="resolved", actor=operator)
    first_resolved = facts(cid)["first_resolved_at"]
    assert first_resolved is not None
    change(cid, do_rate, score=4, comment="ok", actor=Actor(contact=world.contact_inbox().contact))
    change(cid, do_change_status, status="open", actor=operator)
    change(cid, do_change_status, status="resolved", actor=operator)
    kept = facts(cid)
    assert kept["first_resolved_at"] == first_resolved  # the first resolution, not the last
    assert kept["first_assigned_at"] == started["first_assigned_at"]

    do_rebuild_report_facts(Conversation.objects.filter(pk=cid))
    rebuilt = facts(cid)
    # The same facts; an assignment or a resolution is stamped by its action a moment before its
    # audit row (the rebuild's source) is written.
    for name in FACTS:
        if name in ("first_assigned_at", "first_resolved_at"):
            assert abs((rebuilt[name] - kept[name]).total_seconds()) < 1, name
        else:
            assert rebuilt[name] == kept[name], name


def test_the_job_fills_the_working_hours_first_response(caplog):
    """Mon–Fri 09:00–18:00 Berlin: asked Friday 17:30 CET, answered Monday 09:15 CEST → 2 700 s.
    A reply before the visitor wrote has no first response: 0. A schedule the server cannot read
    (stored before validation) counts as open, with a warning, rather than stopping the job."""
    days = {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    inbox = make_inbox(
        make_branch(timezone="Europe/Berlin"),
        settings={"working_hours": {"enabled": True, "timezone": "Europe/Berlin", "days": days}},
    )
    operator = make_user("op-facts")
    asked, answered = datetime(2026, 3, 27, 16, 30, tzinfo=UTC), datetime(2026, 3, 30, 7, 15, tzinfo=UTC)
    regular = make_conversation(inbox, at=asked, assignee=operator)
    make_message(regular, at=asked)
    make_message(regular, at=answered, direction="out", user=operator)
    proactive = make_conversation(inbox, at=asked, assignee=operator)
    make_message(proactive, at=asked, direction="out", user=operator)
    make_message(proactive, at=answered)
    broken_branch = make_branch(timezone="Europe/Berlin")
    Branch.objects.filter(pk=broken_branch.pk).update(working_hours={"mon": [["09:00", "25:00"]]})
    broken = make_conversation(
        make_inbox(broken_branch, settings={"working_hours": {"enabled": True, "use_branch_hours": True}}),
        at=asked,
        assignee=operator,
    )
    make_message(broken, at=asked)
    make_message(broken, at=answered, direction="out", user=operator)
    unanswered = make_conversation(inbox, at=asked)
    make_message(unanswered, at=asked)
    do_rebuild_report_facts()
    assert set(pending_working_seconds().values_list("pk", flat=True)) == {regular.pk, proactive.pk, broken.pk}

    with caplog.at_level(logging.WARNING):
        assert TICK_JOBS["report_facts"]() == 3
    stored = dict(Conversation.objects.values_list("pk", "first_response_working_seconds"))
    assert stored[regular.pk] == 2700.0
    assert stored[proactive.pk] == 0.0
    assert stored[broken.pk] == 0.0  # its only day, Monday, is invalid: closed
    assert "invalid working hours" in caplog.text
    assert stored[unanswered.pk] is None
    assert do_fill_working_seconds() == 0  # nothing left: the next tick writes nothing


def test_the_job_works_in_batches():
    inbox = make_inbox(make_branch())
    operator = make_user("op-batch")
    for minute in range(5):
        at = datetime(2026, 3, 2, 10, minute, tzinfo=UTC)
        conversation = make_conversation(inbox, at=at, assignee=operator)
        make_message(conversation, at=at)
        make_message(conversation, at=at.replace(second=30), direction="out", user=operator)
    do_rebuild_report_facts()
    assert [do_fill_working_seconds(limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert set(Conversation.objects.values_list("first_response_working_seconds", flat=True)) == {30.0}


def test_the_command_rebuilds_after_an_import(capsys):
    inbox = make_inbox(make_branch())
    operator = make_user("op-import")
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    conversation = make_conversation(inbox, at=at, assignee=operator)
    make_message(conversation, at=at)
    make_message(conversation, at=at.replace(minute=2), direction="out", user=operator)
    make_message(
        conversation, at=at.replace(minute=3), direction="out", user=operator, content_attributes={"deleted": True}
    )
    call_command("rebuild_report_facts", "--working-hours")
    assert "1 conversations rebuilt" in capsys.readouterr().out
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.first_visitor_message_at, row.first_reply_created_at) == (at, at.replace(minute=2))
    assert row.counted_messages == 2  # the deleted reply still answered, but is not counted
    assert row.first_response_working_seconds == 120.0


def test_the_migration_rebuilds_with_its_historical_models():
    """0011's RunPython on the rows stored before it: the same function, with the models as they
    were at that migration (what ``migrate`` hands it)."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    inbox = make_inbox(make_branch())
    operator = make_user("op-migration")
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    conversation = make_conversation(inbox, at=at, assignee=operator)
    make_message(conversation, at=at)
    make_message(conversation, at=at.replace(minute=5), direction="out", user=operator)
    historical = MigrationLoader(connection).project_state(("messenger", "0011_report_facts")).apps
    importlib.import_module("messenger.migrations.0011_report_facts").rebuild(historical, None)
    row = Conversation.objects.get(pk=conversation.pk)
    assert (row.first_visitor_message_at, row.first_reply_created_at, row.counted_messages) == (
        at,
        at.replace(minute=5),
        2,
    )
