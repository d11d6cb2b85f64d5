"""One write shape, every driver: each send scenario runs through the event loop's driver
(PostgreSQL), a database thread (PostgreSQL), and a database thread on SQLite, and what each one
stores (the message, the conversation's columns, the events, the audit rows, the webhook outbox)
and sends (every frame, with its groups) is compared field by field with one expected outcome,
``tests/send_parity.json``.

The loop's driver is driven as production drives it (``messages._astore``): a path it cannot
finish (a step that needs Django's connection) falls back to a thread, where nothing was written
yet. Ids are the same on every run (``reset_sequences``); times are replaced by ``<time>``.

``MESSENGER_WRITE_PARITY=1`` writes the expected outcome anew (from the run's first driver): read
the diff before committing it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from messenger import formatting
from messenger.actions import messages
from messenger.db import steps
from messenger.errors import MessengerError
from messenger.models import (
    ActivityEvent,
    Attachment,
    Contact,
    ContactInbox,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Message,
    Webhook,
    WebhookDelivery,
)
from messenger.realtime import broadcast
from messenger.throttle import VisitorLimits
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

EXPECTED = Path(__file__).with_name("send_parity.json")

SCENARIOS = [
    "visitor",
    "visitor_limited",
    "operator",
    "note",
    "resend",
    "blocked",
    "resolved_meanwhile",
    "moved_meanwhile",
    "reassigned_meanwhile",
    "attachments",
    "snoozed_wake_up",
]


def _world() -> dict[str, Any]:
    branch, other_branch = make_branch("North"), make_branch("South")
    inbox = make_inbox(branch, name="Site")
    operator = make_user("olga", branch=branch, first_name="Olga")
    colleague = make_user("ivan", branch=branch, first_name="Ivan")
    contact = Contact.objects.create(name="Vera")
    contact_inbox = ContactInbox.objects.create(contact=contact, inbox=inbox)
    # The send writes the webhook outbox with its event: a row for the subscriber, none for the other.
    Webhook.objects.create(inbox=inbox, url="https://hooks.example.com/messages", events=["message.created"])
    Webhook.objects.create(inbox=inbox, url="https://hooks.example.com/ratings", events=["rating.created"])
    now = timezone.now()
    conversation = Conversation.objects.create(
        identifier="parity",
        inbox=inbox,
        contact=contact,
        contact_inbox=contact_inbox,
        branch=branch,
        assignee=operator,
        status=ConversationStatus.OPEN,
        last_activity_at=now,
        assignee_assigned_at=now,
    )
    return {
        "operator": operator,
        "colleague": colleague,
        "other_branch": other_branch,
        "contact_inbox": ContactInbox.objects.select_related("contact", "inbox").get(pk=contact_inbox.pk),
        "conversation": _read(conversation.pk),
    }


def _read(conversation_id: int) -> Conversation:
    from messenger.access import CONVERSATION_RELATED

    return Conversation.objects.select_related(*CONVERSATION_RELATED).get(pk=conversation_id)


def _visitor(world: dict[str, Any], client_id: str, body: str, **extra: Any) -> dict[str, Any]:
    ci = world["contact_inbox"]
    checks = messages.WriteChecks(
        client_id=client_id, contact_inbox_id=ci.pk, contact_id=ci.contact_id, limits=extra.pop("limits", None)
    )
    fields = messages._visitor_fields(
        ci, world["conversation"], body, formatting.render(body), client_id, extra.pop("attachment_ids", []), checks
    )
    return fields


def _operator(world: dict[str, Any], client_id: str, body: str, *, private: bool = False, attachment_ids=()):
    return messages._operator_fields(
        world["conversation"],
        world["operator"],
        body,
        formatting.render(body),
        client_id,
        private,
        list(attachment_ids),
    )


def _arrange(scenario: str, world: dict[str, Any]) -> dict[str, Any]:
    """The scenario's state before the send, and the send's fields (as the callers build them)."""
    conversation = world["conversation"]
    if scenario == "visitor":
        return _visitor(world, "v-1", "Hello, **is anyone there**?")
    if scenario == "visitor_limited":
        return _visitor(world, "v-1", "Hello", limits=VisitorLimits(ip="203.0.113.9"))
    if scenario == "operator":
        return _operator(world, "o-1", "Yes, _how can I help_?")
    if scenario == "note":
        return _operator(world, "o-1", "VIP customer", private=True)
    if scenario == "resend":
        messages._store_message(**_visitor(world, "v-1", "first"))
        world["conversation"] = _read(conversation.pk)
        return _visitor(world, "v-1", "first, again")
    if scenario == "blocked":
        Contact.objects.filter(pk=world["contact_inbox"].contact_id).update(blocked=True)
        return _visitor(world, "v-1", "let me in")
    if scenario == "resolved_meanwhile":
        Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.RESOLVED)
        return _visitor(world, "v-1", "are you there?")
    if scenario == "moved_meanwhile":
        Conversation.objects.filter(pk=conversation.pk).update(branch=world["other_branch"], assignee=None)
        return _operator(world, "o-1", "one moment")
    if scenario == "reassigned_meanwhile":
        Conversation.objects.filter(pk=conversation.pk).update(assignee=world["colleague"])
        return _visitor(world, "v-1", "hello?")
    if scenario == "attachments":
        upload = Attachment.objects.create(
            conversation=conversation,
            file="attachments/parity.txt",
            original_name="parity.txt",
            content_type="text/plain",
            size=5,
            uploaded_by_user=world["operator"],
        )
        return _operator(world, "o-1", "the file", attachment_ids=[upload.pk])
    if scenario == "snoozed_wake_up":
        until = timezone.now() + timedelta(hours=1)
        Conversation.objects.filter(pk=conversation.pk).update(status=ConversationStatus.SNOOZED, snoozed_until=until)
        world["conversation"] = _read(conversation.pk)
        return _visitor(world, "v-1", "I'm back")
    raise AssertionError(scenario)


def _send(driver: str, fields: dict[str, Any]) -> Any:
    """The send through ``driver``; its message, or the exception it raised."""
    try:
        if driver == "loop":
            result = asyncio.run(steps.arun(messages._message_steps(**fields), name="parity"))
            if result is not steps.FALLBACK:
                return result
            # As production does (``messages._astore``): a thread takes it, nothing was written.
        return messages._store_message(**fields)
    except (MessengerError, messages.AlreadyStored, messages.StaleConversation) as refused:
        return refused


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")


def _plain(value: Any) -> Any:
    """JSON-comparable, with every time replaced by ``<time>`` (and ``None`` kept)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "isoformat"):
        return "<time>"
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        return re.sub(r"\?t=[^\"&]+", "?t=<token>", value)
    return value


_CONVERSATION_COLUMNS = [
    "status",
    "snoozed_until",
    "assignee_id",
    "branch_id",
    "unread_for_agent",
    "unread_for_contact",
    "waiting_since",
    "first_reply_created_at",
    "assignee_opened_at",
    "escalation_deadline",
    "last_activity_at",
    "contact_last_seen_at",
    "agent_last_seen_at",
    "last_message_preview",
    "last_seq",
    "last_public_seq",
]


def _outcome(result: Any, conversation_id: int, frames: list[tuple[list[str], str]]) -> dict[str, Any]:
    # Message ids by rank: a send the loop hands to a thread has taken an id from PostgreSQL's
    # sequence, which a rollback does not give back (ids may have gaps; event numbers may not).
    rank = {pk: index for index, pk in enumerate(Message.objects.order_by("id").values_list("id", flat=True), 1)}

    def message(data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("message"), dict):
            data["message"]["id"] = rank.get(data["message"]["id"])
        return data

    if isinstance(result, Message):
        answer: Any = {"created": rank.get(result.pk)}
    elif isinstance(result, messages.AlreadyStored):
        answer = {"already_stored": rank.get(result.message_id)}
    else:
        answer = {"refused": type(result).__name__, "code": getattr(result, "code", None)}
    stored = [{**row, "id": rank[row["id"]]} for row in Message.objects.order_by("id").values()]
    events = list(ConversationEvent.objects.order_by("id").values())
    for event in events:
        message(event["payload"])
        if event["public_payload"]:
            message(event["public_payload"]["data"])
    audit = list(ActivityEvent.objects.order_by("id").values("verb", "target_type", "target_id", "conversation_id"))
    for row in audit:
        if row["target_type"] == "message":
            row["target_id"] = rank.get(int(row["target_id"]))
    deliveries = list(
        WebhookDelivery.objects.order_by("id").values(
            "webhook_id", "event", "payload", "conversation_id", "event_seq", "status", "attempts"
        )
    )
    for row in deliveries:
        row["payload"] = json.loads(row["payload"])
        message(row["payload"]["data"])
    sent = []
    for groups, text in frames:
        frame = json.loads(text)
        message(frame.get("data", {}))
        sent.append({"groups": sorted(groups), "frame": frame})
    return _plain(
        {
            "answer": answer,
            "conversation": Conversation.objects.filter(pk=conversation_id).values(*_CONVERSATION_COLUMNS).get(),
            "messages": stored,
            "attachments": [
                {**row, "message_id": rank.get(row["message_id"])}
                for row in Attachment.objects.order_by("id").values("id", "message_id", "conversation_id")
            ],
            "events": events,
            "audit": audit,
            "webhook_deliveries": deliveries,
            "frames": sent,
        }
    )


def _frames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], str]]:
    """Every frame published after a commit: a thread's (``transaction.on_commit``) and the loop's."""
    sent: list[tuple[list[str], str]] = []
    monkeypatch.setattr(broadcast, "_send", lambda groups, text: sent.append((list(groups), text)))
    monkeypatch.setattr(broadcast, "_enqueue", lambda groups, text: sent.append((list(groups), text)))
    return sent


def _drivers() -> list[str]:
    return ["loop", "thread"] if connection.vendor == "postgresql" else ["thread"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_driver_stores_and_sends_the_same(scenario: str, monkeypatch: pytest.MonkeyPatch):
    from django.core.management import call_command

    outcomes = {}
    for driver in _drivers():
        if outcomes:
            # The next driver starts from the same empty database, with the same ids.
            call_command("flush", verbosity=0, interactive=False, reset_sequences=True)
            steps.close_all()
        world = _world()
        fields = _arrange(scenario, world)
        frames = _frames(monkeypatch)
        result = _send(driver, fields)
        outcomes[driver] = _outcome(result, world["conversation"].pk, frames)
        monkeypatch.undo()

    expected = json.loads(EXPECTED.read_text()) if EXPECTED.exists() else {}
    if os.environ.get("MESSENGER_WRITE_PARITY") == "1":
        expected[scenario] = next(iter(outcomes.values()))
        EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    for driver, outcome in outcomes.items():
        if os.environ.get("MESSENGER_PARITY_DUMP"):
            Path(f"/tmp/parity-{scenario}-{driver}.json").write_text(json.dumps(outcome, indent=1, sort_keys=True))
        assert outcome == expected[scenario], f"{scenario} through {driver} ({connection.vendor})"


def test_the_expected_outcomes_say_what_a_send_means():
    """The recorded outcome, read as a user would: not a snapshot of whatever the code did."""
    expected = json.loads(EXPECTED.read_text())
    assert set(expected) == set(SCENARIOS)
    for scenario, outcome in expected.items():
        created = "created" in outcome["answer"]
        events = [e for e in outcome["events"] if e["type"] == "message.created"]
        assert len(events) == (1 if created or scenario == "resend" else 0), scenario  # resend: the first
        if not created:
            assert outcome["frames"] == [], scenario
            continue
        event = events[-1]
        staff = next(f["frame"] for f in outcome["frames"] if "conversation" in f["frame"]["data"])
        # The conversation's summary names the event that carries it.
        assert staff["id"] == event["seq"] == staff["data"]["conversation"]["last_seq"], scenario
        assert outcome["conversation"]["last_seq"] == event["seq"], scenario
        assert staff["data"]["message"]["id"] == outcome["answer"]["created"], scenario
    woken = next(f["frame"] for f in expected["snoozed_wake_up"]["frames"] if "conversation" in f["frame"]["data"])
    assert woken["data"]["conversation"]["status"] == "open"
    assert woken["data"]["conversation"]["snoozed_until"] is None
    assert expected["snoozed_wake_up"]["conversation"]["snoozed_until"] is None
    assert expected["resend"]["answer"] == {"already_stored": 1}
    assert expected["blocked"]["answer"] == {"refused": "Forbidden", "code": "blocked"}
    assert expected["resolved_meanwhile"]["answer"]["refused"] == "StaleConversation"
    assert expected["moved_meanwhile"]["answer"]["refused"] == "StaleConversation"
    reassigned = next(
        f["frame"] for f in expected["reassigned_meanwhile"]["frames"] if "conversation" in f["frame"]["data"]
    )
    assert reassigned["data"]["conversation"]["assignee"]["name"] == "Ivan"
    assert [a["verb"] for a in expected["note"]["audit"]] == ["message.note"]
    assert len(expected["note"]["frames"]) == 1  # staff only
    assert expected["attachments"]["attachments"] == [{"conversation_id": 1, "id": 1, "message_id": 1}]
