"""Webhooks and e-mail as an integrator meets them, from docs/integrations.md only: what a
receiver written from the docs and a plain mailbox see, on the embedded default (SQLite) and on
PostgreSQL, and what a hostile receiver or visitor can do to them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

from messenger import jobs, webhook_http
from messenger.actions import webhooks as actions
from messenger.actions.base import Actor
from messenger.models import WebhookDelivery
from tests.conftest import visitor_rows
from tests.factories import make_branch, make_inbox
from tests.mailserver import Mailbox, mailbox_fixture  # noqa: F401 — the fixture
from tests.test_webhooks import (  # noqa: F401 — the fixtures
    DELIVERED,
    PENDING,
    allow_private,
    conversation_of,
    deliver_due,
    make_webhook,
    receiver,
)

# --- a raw socket receiver, to answer what http.server would not ---------------------------------


def raw_receiver(answer) -> tuple[str, socket.socket, list[bytes]]:  # noqa: ANN001
    """A loopback listener that runs ``answer(connection)`` for each connection it accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(b"")

            def one(connection: socket.socket = connection) -> None:
                try:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = connection.recv(65536)
                        if not chunk:
                            return
                        data += chunk
                    answer(connection)
                except OSError:
                    pass
                finally:
                    connection.close()

            threading.Thread(target=one, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook", listener, accepted


@pytest.fixture
def listeners() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for listener in opened:
        listener.close()


# --- the payload as documented --------------------------------------------------------------------


def is_utc_iso(value: str) -> bool:
    """Docs: "Times are ISO 8601 in UTC (`2026-12-05T14:20:03.750000Z`)"."""
    parsed = parse_datetime(value)
    return isinstance(parsed, datetime) and parsed.utcoffset() is not None and value.endswith("Z")


@pytest.mark.django_db
def test_every_time_in_a_message_delivery_is_utc_with_its_zone(receiver, allow_private):  # noqa: F811
    """On SQLite the conversation's times the send returns (RETURNING) came back naive, so the
    webhook body (and the staff frame) said ``"waiting_since": "2026-12-05T14:56:27.212743"``:
    no zone, read as local time by a receiver (``new Date(…)`` in Node)."""
    inbox = make_inbox(make_branch())
    make_webhook(receiver.url, inbox=inbox, events=["message.created"])
    conversation_of(inbox, "hello")
    deliver_due()
    (request,) = [r for r in receiver.requests if r.headers["x-messenger-event"] == "message.created"]
    body = json.loads(request.body)
    conversation, message = body["data"]["conversation"], body["data"]["message"]
    times = {
        "created_at": body["created_at"],
        "message.created_at": message["created_at"],
        "conversation.created_at": conversation["created_at"],
        "conversation.waiting_since": conversation["waiting_since"],
        "conversation.last_activity_at": conversation["last_activity_at"],
    }
    assert {name: value for name, value in times.items() if not is_utc_iso(value)} == {}


@pytest.mark.django_db
def test_delivery_ids_are_uuids_as_the_docs_show_them(allow_private):  # noqa: F811
    """The docs show ``X-Messenger-Delivery: 0f5d1c3e-8a2b-4a57-9a86-…``, a version 4 UUID; on
    SQLite the outbox made 32 random hex digits, which a receiver validating a UUID refuses."""
    inbox = make_inbox(make_branch())
    make_webhook("http://127.0.0.1:9/", inbox=inbox)
    # As with DEBUG on (``make run``): every statement is also formatted for the log.
    with CaptureQueriesContext(connection):
        conversation_of(inbox)
    rows = list(WebhookDelivery.objects.exclude(event="webhook.test"))
    assert {row.event for row in rows} >= {"message.created", "conversation.created", "contact.created"}
    for row in rows:
        parsed = uuid.UUID(str(row.delivery_id))
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122), row.delivery_id


# --- hostile receivers ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_nul_byte_in_the_answer_is_recorded_not_a_crash(receiver, allow_private):  # noqa: F811
    """PostgreSQL text cannot hold NUL: a receiver answering ``ok\\0`` made recording the outcome
    raise, the row stayed leased and pending, and the receiver got the same delivery again and
    again with nothing in the log."""
    receiver.answer((200, {}, b"ok\x00done"))
    _webhook, delivery = make_webhook(receiver.url)
    deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == (DELIVERED, 200)
    assert delivery.response_body.startswith("ok") and "\x00" not in delivery.response_body


@pytest.mark.django_db
def test_a_garbage_status_line_with_a_nul_is_a_recorded_error(allow_private, listeners):  # noqa: F811
    url, listener, _ = raw_receiver(lambda connection: connection.sendall(b"\x00garbage\r\n\r\n"))
    listeners.append(listener)
    _webhook, delivery = make_webhook(url)
    deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == PENDING and delivery.attempts == 1
    assert "BadStatusLine" in delivery.last_error and "\x00" not in delivery.last_error


@pytest.mark.django_db
def test_a_receiver_that_drips_its_answer_is_cut_off_at_a_total_deadline(allow_private, settings, listeners):  # noqa: F811
    """A read timeout alone lets a receiver that sends a header line every few seconds hold the
    worker for as long as it likes, past the claim's lease, when the tick sends the same delivery
    a second time in parallel. The whole request has a deadline."""
    settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS = 1

    def drip(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(60):
            connection.sendall(b"X-Slow: 1\r\n")
            time.sleep(0.5)

    url, listener, _ = raw_receiver(drip)
    listeners.append(listener)
    _webhook, delivery = make_webhook(url)
    started = time.monotonic()
    deliver_due()
    took = time.monotonic() - started
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (PENDING, "timed out")
    assert took < 3 * settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS + 2, took
    assert actions.lease_for_request().total_seconds() > webhook_http.total_deadline(1)


def test_the_lease_outlasts_the_request_whatever_the_timeout(settings):
    settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS = 60
    assert actions.lease_for_request().total_seconds() > webhook_http.total_deadline(60)


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    ],
)
def test_ipv6_forms_that_carry_a_private_ipv4_are_refused(address):
    assert webhook_http.address_refused(address) is not None


def test_a_6to4_address_of_a_public_ipv4_passes():
    assert webhook_http.address_refused("2002:5db8:d822::1") is None  # 93.184.216.34


# --- e-mail ---------------------------------------------------------------------------------------


def test_a_mistyped_email_url_names_the_setting():
    """``?timeout=abc`` or a port out of range stopped the start with a bare ``ValueError``
    from deep in the settings; it is a configuration error that names ``EMAIL_URL``."""
    from django.core.exceptions import ImproperlyConfigured

    from project.settings import parse_email_url

    for url in ("smtp://mail.example.com?timeout=abc", "smtp://mail.example.com:99999", "smtp+tls://u:p@h:port"):
        with pytest.raises(ImproperlyConfigured, match="EMAIL_URL"):
            parse_email_url(url)
    # The documented forms, a password with a raw or an encoded "@" alike.
    for url in (
        "smtp+tls://alerts%40example.com:p%40ss@mail.example.com:587",
        "smtp+tls://alerts@example.com:p@ss@mail.example.com:587",
    ):
        parsed = parse_email_url(url)
        assert (parsed["EMAIL_HOST_USER"], parsed["EMAIL_HOST_PASSWORD"], parsed["EMAIL_HOST"]) == (
            "alerts@example.com",
            "p@ss",
            "mail.example.com",
        )


@pytest.mark.django_db(transaction=True)
async def test_a_transcript_address_cannot_carry_headers_or_surrogates(mailbox: Mailbox):
    from channels.db import database_sync_to_async

    from messenger.models import EmailKind, OutgoingEmail
    from tests.conftest import visitor_socket
    from tests.test_email import transcript_world

    inbox, boot, conversation = await database_sync_to_async(transcript_world)()
    socket_ = visitor_socket(inbox, boot)
    assert (await socket_.connect())[0]
    try:
        for address in (
            "a@b.co\r\nBcc: x@y.z",
            "a@b.co\nBcc: x@y.z",
            "a@b.co,x@y.z",
            "Anna <a@b.co>",
            "\ud800@b.co",
            "a@b.co\x00",
        ):
            refused = await socket_.command("conversation.transcript", conversation_id=conversation.pk, email=address)
            assert (refused["type"], refused["code"]) == ("error", "invalid"), (address, refused)
    finally:
        await socket_.close()
    count = OutgoingEmail.objects.filter(kind=EmailKind.TRANSCRIPT).count
    assert await database_sync_to_async(count)() == 0


@pytest.mark.django_db
def test_a_transcript_with_a_message_of_the_longest_length_arrives_whole(mailbox: Mailbox, settings):
    from messenger.actions import mail
    from messenger.actions.intake import send_visitor_message
    from messenger.models import Conversation
    from messenger.scheduler import TICK_JOBS
    from tests.conftest import bootstrap, new_client_id

    inbox = make_inbox(make_branch())
    contact_inbox = visitor_rows(bootstrap(inbox))
    body = ("Привет, <b>мир</b> & 🙂 " * 10_000)[: settings.MESSENGER_MESSAGE_MAX_LENGTH]
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body=body, actor=Actor(contact=contact_inbox.contact)
    )
    conversation = Conversation.objects.select_related("inbox").get(pk=result.conversation.pk)
    mail.do_queue_transcript(conversation=conversation, email="anna@example.com")
    TICK_JOBS["email"]()
    (received,) = mailbox.wait_for(1)
    text, html = received.part("text/plain"), received.part("text/html")
    assert body in text
    assert body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in html


# --- ordering and duplicates, as the docs say -----------------------------------------------------


@pytest.mark.django_db
def test_event_ids_have_gaps_and_one_change_shares_its_event_id(receiver, allow_private):  # noqa: F811
    """The docs said the ``event_id`` a receiver sees is gapless ("can tell that it missed one")
    and that ``(conversation_id, event_id)`` identifies an event for deduplication. Receipts
    take numbers that are never sent, and a status change is two deliveries with one number: a
    receiver following the old text raised false alarms and dropped ``conversation.status_changed``."""
    from messenger.actions.conversations import do_change_status
    from messenger.actions.messages import mark_delivered, send_operator_message
    from tests.conftest import new_client_id
    from tests.factories import make_user

    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    make_webhook(receiver.url, inbox=inbox)
    conversation = conversation_of(inbox)
    reply = send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="hi")
    mark_delivered(conversation=conversation, reader="contact", up_to_message_id=reply.message.pk)
    conversation.refresh_from_db()
    send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="again")
    conversation.refresh_from_db()
    do_change_status(conversation=conversation, status="resolved", actor=Actor(user=operator))
    deliver_due()
    bodies = [json.loads(r.body) for r in receiver.requests if r.headers["x-messenger-event"] != "webhook.test"]
    numbers = sorted({b["event_id"] for b in bodies if b["conversation_id"] == conversation.pk})
    assert numbers != list(range(numbers[0], numbers[-1] + 1)), "a receipt's number is not sent"
    status = [b for b in bodies if b["event"] in ("conversation.updated", "conversation.status_changed")]
    assert len({(b["conversation_id"], b["event_id"]) for b in status}) == 1 and len(status) == 2
    assert len({(b["event"], b["conversation_id"], b["event_id"]) for b in status}) == 2

    text = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text()
    assert "can tell that it missed one" not in text
    assert "a gap does not mean a lost request" in text
    assert "the same `event`, `conversation_id` and `event_id`" in text


@pytest.mark.django_db
def test_a_url_with_a_non_ascii_path_is_sent_percent_encoded(receiver, allow_private, settings):  # noqa: F811
    """The admin accepts ``https://hooks.example.com/réception`` (Django's URL field does); the
    request line must be ASCII, and ``http.client`` raised ``UnicodeEncodeError``, which no
    outcome caught: the row stayed leased, was claimed again every few minutes and never failed."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from messenger.models import Webhook

    inbox = make_inbox(make_branch())
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    url = receiver.url + "/réception?q=ü"
    response = client.post("/admin/messenger/webhook/add/", {"inbox": inbox.pk, "url": url, "is_active": "on"})
    assert response.status_code == 302
    webhook = Webhook.objects.get()
    delivery = actions.do_send_test_event(webhook=webhook, actor=Actor.system("test"))
    deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == DELIVERED
    assert [r.path for r in receiver.requests] == ["/hook/r%C3%A9ception?q=%C3%BC"]


@pytest.mark.django_db
def test_a_second_rotation_ends_the_first_secrets_overlap_as_documented(receiver, allow_private):  # noqa: F811
    from tests.test_webhooks import verifies

    webhook, _ = make_webhook(receiver.url)
    first = webhook.secret
    webhook = actions.do_rotate_secret(webhook=webhook, actor=Actor.system())
    second = webhook.secret
    webhook = actions.do_rotate_secret(webhook=webhook, actor=Actor.system())
    actions.do_send_test_event(webhook=webhook, actor=Actor.system())
    deliver_due()
    last = receiver.requests[-1]
    assert verifies(last, webhook.secret) and verifies(last, second)
    assert not verifies(last, first)
    text = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text()
    assert "rotating again, even within the overlap, ends the older one's overlap" in text


@pytest.mark.django_db
def test_the_transcript_html_shows_the_formatting_the_widget_shows(mailbox: Mailbox):
    """The HTML part printed ``**today**`` and ``[link](https://…)`` as typed, where the widget
    shows bold and a link; the text part keeps the text as typed."""
    from messenger.actions import mail
    from messenger.actions.intake import send_visitor_message
    from messenger.actions.messages import send_operator_message
    from messenger.models import Conversation
    from messenger.scheduler import TICK_JOBS
    from tests.conftest import bootstrap, new_client_id
    from tests.factories import make_user

    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    contact_inbox = visitor_rows(bootstrap(inbox))
    first = send_visitor_message(
        contact_inbox=contact_inbox,
        client_id=new_client_id(),
        body="Where is <b>it</b>?\nline two",
        actor=Actor(contact=contact_inbox.contact),
    )
    conversation = Conversation.objects.select_related("inbox").get(pk=first.conversation.pk)
    send_operator_message(
        conversation=conversation,
        user=operator,
        client_id=new_client_id(),
        body="It ships **today**, see [tracking](https://track.example.com/1)",
    )
    mail.do_queue_transcript(conversation=conversation, email="anna@example.com")
    TICK_JOBS["email"]()
    (received,) = mailbox.wait_for(1)
    text, html = received.part("text/plain"), received.part("text/html")
    assert "It ships **today**, see [tracking](https://track.example.com/1)" in text
    assert "<strong>today</strong>" in html and 'href="https://track.example.com/1"' in html
    assert "**today**" not in html
    assert "Where is &lt;b&gt;it&lt;/b&gt;?<br>line two" in html and "<b>it</b>" not in html


@pytest.mark.django_db
def test_a_huge_answer_is_read_no_further_than_the_log_keeps(allow_private, listeners):  # noqa: F811
    """A receiver answering a gigabyte: the first 2 KB are kept, the rest is never read."""
    sent: list[int] = []

    def flood(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        try:
            for _ in range(100_000):
                connection.sendall(b"x" * 10_000)
                sent.append(1)
        except OSError:
            pass

    url, listener, _ = raw_receiver(flood)
    listeners.append(listener)
    _webhook, delivery = make_webhook(url)
    deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == (DELIVERED, 200)
    assert delivery.response_body == "x" * webhook_http.RESPONSE_BODY_LIMIT
    time.sleep(0.2)
    assert len(sent) < 1000, "the sender was cut off long before a gigabyte"


def test_a_name_with_one_private_answer_is_refused_and_the_checked_address_is_the_one_used(monkeypatch, settings):
    """DNS is the system's (stubbed here: no network): a name resolving to 10.x, or to a public
    address and a private one, is refused; a public answer is the address connected to."""
    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = False
    answers = {
        "internal.example.com": ["10.0.0.5"],
        "mixed.example.com": ["93.184.216.34", "192.168.1.1"],
        "mapped.example.com": ["::ffff:10.1.2.3"],
        "sixtofour.example.com": ["2002:a00:1::1"],
        "public.example.com": ["93.184.216.34"],
    }

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for host in ("internal", "mixed", "mapped", "sixtofour"):
        with pytest.raises(webhook_http.UnsafeTarget):
            webhook_http.check_url(f"https://{host}.example.com/hook")
        with pytest.raises(webhook_http.UnsafeTarget):
            webhook_http.resolve(f"https://{host}.example.com/hook")
    target = webhook_http.resolve("https://public.example.com/hook?a=1")
    assert (target.address, target.host, target.port, target.path) == (
        "93.184.216.34",
        "public.example.com",
        443,
        "/hook?a=1",
    )


@pytest.mark.django_db(transaction=True)
def test_slow_webhook_receivers_do_not_hold_up_the_emails_in_the_embedded_default(
    mailbox: Mailbox,
    allow_private,  # noqa: F811
    settings,
    listeners,
):
    """``MESSENGER_JOBS=threads``: the webhook deliveries and the e-mails shared one pool, so a
    few receivers that never answer (each holding a thread until its timeout) delayed a password
    reset or a transcript by as long. Seen on the embedded default: a transcript 90 s late."""
    from messenger.models import EmailKind, EmailStatus, OutgoingEmail
    from messenger.scheduler import TICK_JOBS

    settings.MESSENGER_JOBS = "threads"
    settings.MESSENGER_JOB_THREADS = 1
    settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS = 3
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    listeners.append(silent)
    webhook, _ = make_webhook(f"http://127.0.0.1:{silent.getsockname()[1]}/")
    actions.do_send_test_event(webhook=webhook, actor=Actor.system("test"))
    assert actions.do_send_due_deliveries() == 2  # the webhook thread is busy for 2 × 3 s

    from messenger.actions import mail

    email = mail.do_queue_email(
        kind=EmailKind.TRANSCRIPT, to=["anna@example.com"], subject="Hi", text="t", html="", dedupe_key="k"
    )
    try:
        started = time.monotonic()
        TICK_JOBS["email"]()
        mailbox.wait_for(1, timeout=8)
        took = time.monotonic() - started
        assert OutgoingEmail.objects.get(pk=email.pk).status == EmailStatus.SENT
        assert took < 2, f"the e-mail waited {took:.1f} s behind the webhook deliveries"
    finally:
        # The deliveries still wait on the silent receiver: let them end before the database is
        # flushed (a job recording its outcome then would deadlock with the flush).
        silent.close()
        jobs.drain()


@pytest.mark.django_db
def test_a_staff_edit_through_the_api_is_a_contact_updated_that_carries_the_changed_fields(receiver, allow_private):  # noqa: F811
    """``PATCH /api/v1/contacts/{id}`` sends ``contact.updated`` (the docs named only the
    visitor's forms), and its ``changes`` could name ``external_id`` while the ``contact`` did not
    carry it."""
    from messenger.models import AgentRole
    from tests.conftest import bootstrap
    from tests.factories import make_user
    from tests.test_api_v1 import Api, token_for

    inbox = make_inbox(make_branch())
    make_webhook(receiver.url, inbox=inbox, events=["contact.updated"])
    contact = visitor_rows(bootstrap(inbox)).contact
    api = Api(token_for(make_user(role=AgentRole.SUPERVISOR)))
    answer = api.patch(f"contacts/{contact.pk}", {"external_id": "crm-42", "name": "Anna"})
    assert answer.status_code == 200, answer.content
    deliver_due()
    (request,) = [r for r in receiver.requests if r.headers["x-messenger-event"] == "contact.updated"]
    data = json.loads(request.body)["data"]
    assert data["changes"] == ["external_id", "name"]
    assert (data["contact"]["external_id"], data["contact"]["name"]) == ("crm-42", "Anna")
    assert set(data["contact"]) == {"id", "name", "email", "phone", "external_id", "custom_attributes", "created_at"}
    text = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text()
    assert "or staff change them (`PATCH /api/v1/contacts/{id}`" in text and '"external_id": ""' in text
