"""The visitor's one door (messenger/actions/intake.py): a message and a file start a conversation
through the same gates, a visitor has one active conversation whatever the race, and a
``client_id`` is stored once per visitor, the loser of a race getting the stored message's ack."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, override_settings

from messenger import throttle
from messenger.actions import conversations
from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.actions.locks import lock_conversation
from messenger.errors import CaptchaRequired, Conflict
from messenger.models import ActivityEvent, Attachment, ContactInbox, Conversation, ConversationEvent, Message
from messenger.throttle import NEW_CONVERSATION_WINDOW, VisitorLimits
from tests.conftest import Socket, bootstrap, new_client_id, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.test_captcha import payload
from tests.test_realtime_protocol import _operator
from tests.test_throttle import visitor_socket_from

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
IP = "127.0.0.1"  # the test client's address, and the sockets'


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):  # noqa: ANN001
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def _small_work() -> Iterator[None]:
    with override_settings(MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER=2_000):
        yield


def _visitor_of(boot: dict[str, Any]) -> ContactInbox:
    return visitor_rows(boot)


def _upload(inbox: Any, boot: dict[str, Any], **fields: Any) -> Any:
    return Client().post(
        "/api/widget/attachments/",
        {
            "widget_token": inbox.widget_token,
            "token": boot["session_token"],
            "file": SimpleUploadedFile("shot.png", PNG, content_type="image/png"),
            **fields,
        },
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )


def _conversations_from_ip() -> int:
    return throttle.count("conversations-ip", IP, NEW_CONVERSATION_WINDOW)


# --- two tabs at the same instant ------------------------------------------------------------------


class _Together:
    """Holds each tab's send at ``VisitorLimits.<method>`` until both got there: the two sends
    then race from the same point, every time (the old code started two conversations there)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
        self.barrier = threading.Barrier(2)
        self.met = threading.Event()
        original = getattr(VisitorLimits, method)

        def held(limits: VisitorLimits, *args: Any, **kwargs: Any) -> Any:
            try:
                self.barrier.wait(timeout=5)
                self.met.set()
            except threading.BrokenBarrierError:
                pass
            return original(limits, *args, **kwargs)

        monkeypatch.setattr(VisitorLimits, method, held)


async def _tabs(inbox: Any, boot: dict[str, Any], count: int = 2) -> list[Socket]:
    tabs = []
    for _ in range(count):
        socket = visitor_socket_from(inbox, boot, IP)
        connected, _ = await socket.connect()
        assert connected
        await socket.expect("hello")
        tabs.append(socket)
    return tabs


async def _send_together(tabs: list[Socket], client_ids: list[str]) -> list[dict[str, Any]]:
    return list(
        await asyncio.gather(
            *(
                tab.command("message.send", client_id=client_id, body="hello")
                for tab, client_id in zip(tabs, client_ids)
            )
        )
    )


def _world() -> dict[str, Any]:
    branch = make_branch()
    inbox = make_inbox(branch)
    make_user(branch=branch)
    return {"inbox": inbox, "boot": bootstrap(inbox)}


@pytest.mark.django_db(transaction=True)
async def test_two_tabs_sending_their_first_message_at_once_get_one_conversation(monkeypatch):
    world = await db(_world)()
    together = _Together(monkeypatch, "check_new_conversation")
    tabs = await _tabs(world["inbox"], world["boot"])
    acks = await _send_together(tabs, [new_client_id(), new_client_id()])
    assert [ack["type"] for ack in acks] == ["ack", "ack"], acks
    assert together.met.is_set()  # both had found no conversation: the race happened
    assert acks[0]["data"]["conversation_id"] == acks[1]["data"]["conversation_id"]
    conversation_id = acks[0]["data"]["conversation_id"]

    def stored() -> tuple[Any, ...]:
        contact_inbox = _visitor_of(world["boot"])
        return (
            list(Conversation.objects.filter(contact_inbox=contact_inbox).values_list("pk", flat=True)),
            Message.objects.filter(conversation_id=conversation_id, direction="in").count(),
            ActivityEvent.objects.filter(verb="conversation.created").count(),
            ConversationEvent.objects.filter(conversation_id=conversation_id, type="conversation.created").count(),
            _conversations_from_ip(),
        )

    # One conversation, both messages in it, created (audited, announced, counted) once.
    assert await db(stored)() == ([conversation_id], 2, 1, 1, 1)
    for tab in tabs:
        await tab.close()


@pytest.mark.django_db(transaction=True)
async def test_one_client_id_from_two_tabs_of_a_new_visitor_is_stored_once(monkeypatch):
    world = await db(_world)()
    together = _Together(monkeypatch, "check_new_conversation")
    tabs = await _tabs(world["inbox"], world["boot"])
    client_id = new_client_id()
    acks = await _send_together(tabs, [client_id, client_id])
    assert [ack["type"] for ack in acks] == ["ack", "ack"], acks  # never server_error
    assert together.met.is_set()
    assert acks[0]["data"]["message"]["id"] == acks[1]["data"]["message"]["id"]
    assert acks[0]["data"]["conversation_id"] == acks[1]["data"]["conversation_id"]
    assert sorted(ack["data"]["created"] for ack in acks) == [False, True]

    def stored() -> tuple[int, int]:
        contact_inbox = _visitor_of(world["boot"])
        return (
            Conversation.objects.filter(contact_inbox=contact_inbox).count(),
            Message.objects.filter(client_id=client_id).count(),
        )

    assert await db(stored)() == (1, 1)
    for tab in tabs:
        await tab.close()


@pytest.mark.django_db(transaction=True)
async def test_one_client_id_from_two_tabs_into_an_existing_conversation_acks_the_stored_message(monkeypatch):
    world = await db(_world)()
    operator = await _operator(await db(lambda: make_user(branch=world["inbox"].branch))())
    first, *_ = await _tabs(world["inbox"], world["boot"], 1)
    started = await first.command("message.send", client_id=new_client_id(), body="hi")
    assert started["type"] == "ack", started
    conversation_id = started["data"]["conversation_id"]
    # Two more tabs (their sockets know no conversation yet): both find it and pass the resend check.
    together = _Together(monkeypatch, "check_send")
    tabs = await _tabs(world["inbox"], world["boot"])
    client_id = new_client_id()
    acks = await _send_together(tabs, [client_id, client_id])
    assert [ack["type"] for ack in acks] == ["ack", "ack"], acks  # the loser: not server_error
    assert together.met.is_set()
    assert acks[0]["data"]["message"]["id"] == acks[1]["data"]["message"]["id"]
    assert {ack["data"]["conversation_id"] for ack in acks} == {conversation_id}
    assert sorted(ack["data"]["created"] for ack in acks) == [False, True]
    assert await db(Message.objects.filter(client_id=client_id).count)() == 1
    # Staff saw the message once.
    frames = [
        frame
        for frame in await operator.drain(0.5)
        if frame["type"] == "message.created" and frame["data"]["message"]["id"] == acks[0]["data"]["message"]["id"]
    ]
    assert len(frames) == 1
    for socket in (first, *tabs, operator):
        await socket.close()


@pytest.mark.django_db
def test_a_start_that_loses_the_race_joins_the_winners_conversation():
    """What the second of two racing starts meets once the first committed: the unique index."""
    world = _world()
    contact_inbox = _visitor_of(world["boot"])
    actor = Actor(contact=contact_inbox.contact)
    won, started = conversations.do_start_conversation(contact_inbox=contact_inbox, actor=actor)
    assert started
    before = (ActivityEvent.objects.count(), ConversationEvent.objects.count())
    with transaction.atomic():  # the savepoint leaves a surrounding transaction usable
        joined, started = conversations.do_start_conversation(contact_inbox=contact_inbox, actor=actor)
        assert Conversation.objects.filter(contact_inbox=contact_inbox).count() == 1
    assert (joined.pk, started) == (won.pk, False)
    assert (ActivityEvent.objects.count(), ConversationEvent.objects.count()) == before


# --- a file starts a conversation through the same gates as a message ------------------------------


@pytest.mark.django_db
@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=1)
def test_an_upload_past_the_captcha_threshold_is_refused_like_a_message(_small_work):
    inbox = make_inbox(make_branch())
    assert _upload(inbox, bootstrap(inbox)).status_code == 201  # the IP's first conversation
    boot = bootstrap(inbox)
    before = (Conversation.objects.count(), Attachment.objects.count())

    refused = _upload(inbox, boot)
    assert refused.status_code == 403
    body = refused.json()
    assert body["code"] == "captcha_required" and body["reason"] == "missing"
    assert (Conversation.objects.count(), Attachment.objects.count()) == before  # nothing stored
    # A message from the same visitor meets the same gate.
    contact_inbox = _visitor_of(boot)
    with pytest.raises(CaptchaRequired):
        send_visitor_message(
            contact_inbox=contact_inbox,
            client_id=new_client_id(),
            body="hi",
            actor=Actor(contact=contact_inbox.contact, ip=IP),
            limits=VisitorLimits(ip=IP),
        )

    solved = _upload(inbox, boot, captcha=payload(body["challenge"]))
    assert solved.status_code == 201, solved.json()
    attachment = Attachment.objects.get(pk=solved.json()["attachment"]["id"])
    assert attachment.conversation.contact_inbox_id == contact_inbox.pk
    assert _upload(inbox, boot).status_code == 201  # into that conversation: no new gate
    assert Conversation.objects.filter(contact_inbox=contact_inbox).count() == 1


@pytest.mark.django_db
@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=1)
def test_the_per_ip_counter_counts_conversations_started_by_an_upload():
    inbox = make_inbox(make_branch())
    boot = bootstrap(inbox)
    assert _upload(inbox, boot).status_code == 201
    assert _conversations_from_ip() == 1
    assert _upload(inbox, boot).status_code == 201  # the same conversation: not counted again
    assert _conversations_from_ip() == 1

    # Past the threshold now: another visitor on that IP must solve the CAPTCHA to write.
    other = _visitor_of(bootstrap(inbox))
    with pytest.raises(CaptchaRequired):
        send_visitor_message(
            contact_inbox=other,
            client_id=new_client_id(),
            body="hi",
            actor=Actor(contact=other.contact, ip=IP),
            limits=VisitorLimits(ip=IP),
        )
    assert not Conversation.objects.filter(contact_inbox=other).exists()


# --- reopening beside another active conversation ----------------------------------------------------


def _resolved_then_new(inbox: Any) -> tuple[Conversation, Conversation]:
    contact_inbox = _visitor_of(bootstrap(inbox))

    def send() -> Conversation:
        return send_visitor_message(
            contact_inbox=contact_inbox,
            client_id=new_client_id(),
            body="hi",
            actor=Actor(contact=contact_inbox.contact),
        ).conversation

    old = send()
    with transaction.atomic():
        conversations.do_change_status(conversation=lock_conversation(old.pk), status="resolved", actor=Actor.system())
    new = send()
    assert new.pk != old.pk
    return old, new


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["open", "pending", "snoozed"])
def test_reopening_beside_another_active_conversation_is_a_conflict(status):
    from datetime import timedelta

    from django.utils import timezone

    old, new = _resolved_then_new(make_inbox(make_branch()))
    before = (ActivityEvent.objects.count(), ConversationEvent.objects.filter(conversation=old).count())
    until = timezone.now() + timedelta(hours=1) if status == "snoozed" else None
    with pytest.raises(Conflict) as refused, transaction.atomic():
        conversation = lock_conversation(old.pk)
        conversations.do_change_status(
            conversation=conversation, status=status, actor=Actor.system(), snoozed_until=until
        )
    assert refused.value.code == "conflict"
    assert refused.value.extra == {"conversation_id": new.pk}
    assert f"#{new.pk}" in refused.value.message
    assert conversation.status == "resolved"  # the caller's copy is left as stored
    old.refresh_from_db()
    assert old.status == "resolved"
    assert (ActivityEvent.objects.count(), ConversationEvent.objects.filter(conversation=old).count()) == before

    # Once the newer one is resolved, the old one reopens.
    with transaction.atomic():
        conversations.do_change_status(conversation=lock_conversation(new.pk), status="resolved", actor=Actor.system())
    with transaction.atomic():
        reopened = conversations.do_change_status(
            conversation=lock_conversation(old.pk),
            status=status,
            actor=Actor.system(),
            snoozed_until=until,
        )
    assert reopened.status == status


@pytest.mark.django_db(transaction=True)
async def test_an_operator_reopening_beside_another_active_conversation_gets_a_conflict_frame():
    world = await db(_world)()
    user = await db(lambda: make_user(branch=world["inbox"].branch, role="supervisor"))()
    old, new = await db(_resolved_then_new)(world["inbox"])
    operator = await _operator(user)
    error = await operator.command("conversation.status", conversation_id=old.pk, status="open")
    assert error["type"] == "error" and error["code"] == "conflict", error
    assert error["conversation_id"] == new.pk
    assert await db(lambda: Conversation.objects.get(pk=old.pk).status)() == "resolved"
    await operator.close()


# --- the migration that brings the constraints ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_resolves_older_active_conversations_and_clears_repeated_client_ids():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    inbox = make_inbox(make_branch())
    contact_inbox = _visitor_of(bootstrap(inbox))
    other = _visitor_of(bootstrap(inbox))
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("messenger")
    executor.migrate([("messenger", "0002_message_client_id_first")])
    # The tables as they were then: the models of that state (later migrations add columns).
    then = executor.loader.project_state(("messenger", "0002_message_client_id_first")).apps
    old_conversation, old_message = (then.get_model("messenger", name) for name in ("Conversation", "Message"))
    try:
        # What the races left before the constraints: three active conversations of one visitor
        # (and one of another), and one client_id stored in two of them.
        now = timezone.now()
        rows = [
            old_conversation.objects.create(
                inbox_id=inbox.pk, contact_id=contact_inbox.contact_id, contact_inbox_id=contact_inbox.pk, status=status
            )
            for status in ("snoozed", "open", "resolved", "pending")
        ]
        alone = old_conversation.objects.create(
            inbox_id=inbox.pk, contact_id=other.contact_id, contact_inbox_id=other.pk, status="open"
        )
        copies = [
            old_message.objects.create(
                conversation_id=conversation.pk,
                direction="in",
                sender_type="contact",
                sender_contact_id=contact_inbox.contact_id,
                body="hello",
                client_id="same",
                created_at=now,
            )
            for conversation in rows[:2]
        ]
    finally:
        MigrationExecutor(connection).migrate(latest)

    statuses = dict(Conversation.objects.values_list("pk", "status"))
    # The newest active one stays; the older active ones are resolved; the rest is untouched.
    assert [statuses[row.pk] for row in rows] == ["resolved", "resolved", "resolved", "pending"]
    assert statuses[alone.pk] == "open"
    audited = ActivityEvent.objects.filter(verb="conversation.status", actor_label="migration")
    assert sorted(audited.values_list("conversation_id", flat=True)) == sorted([rows[0].pk, rows[1].pk])
    assert {row.payload["from"] for row in audited} == {"snoozed", "open"}
    # Both messages are kept; the client_id stays on the first.
    assert [Message.objects.get(pk=m.pk).client_id for m in copies] == ["same", None]
