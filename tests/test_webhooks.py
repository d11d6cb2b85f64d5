"""Webhooks end to end (docs/integrations.md, "Webhooks"): the outbox row written with its event,
the signed POST to a real HTTP receiver on loopback, retries, disabling, SSRF refusals, secret
rotation, and the verification snippets of the docs run against what we send.

Time is driven by passing ``now``: no test waits for a backoff.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client
from django.utils import timezone

from messenger import webhook_http
from messenger.actions import webhooks as actions
from messenger.actions.base import Actor
from messenger.actions.contacts import do_update_contact_from_visitor
from messenger.actions.conversations import do_change_priority, do_change_status
from messenger.actions.intake import send_visitor_message
from messenger.models import ContactInbox, Conversation, Webhook, WebhookDelivery
from messenger.models.webhook import WEBHOOK_EVENTS
from messenger.scheduler import run_due_jobs
from messenger.webhooks import webhook_events_for
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_rows, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

DOC = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


# --- a real receiver ------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # What to answer, in order: (status, headers, body); the last one repeats.
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=lambda: [(200, {}, b"ok")])

    def answer(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.script = list(answers)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers, reply = state.script.pop(0) if len(state.script) > 1 else state.script[0]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_private(settings):
    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = True


# --- the docs' snippets ---------------------------------------------------------------------------


def doc_snippet(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    return blocks[0]


def python_verifier():
    namespace: dict[str, Any] = {}
    exec(doc_snippet("python"), namespace)  # the snippet exactly as documented
    return namespace["verify_messenger_webhook"]


def verifies(request: Received, secret: str) -> bool:
    return python_verifier()(
        secret, request.body, request.headers["x-messenger-timestamp"], request.headers["x-messenger-signature"]
    )


# --- worlds ---------------------------------------------------------------------------------------


def conversation_of(inbox, body: str = "hello") -> Conversation:
    contact_inbox = visitor_rows(bootstrap(inbox))
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body=body, actor=Actor(contact=contact_inbox.contact)
    )
    return Conversation.objects.select_related("inbox", "branch", "contact", "assignee").get(pk=result.conversation.pk)


def make_webhook(url: str, **fields: Any) -> tuple[Webhook, WebhookDelivery]:
    webhook = Webhook.objects.create(inbox=fields.pop("inbox", None) or make_inbox(make_branch()), url=url, **fields)
    return webhook, actions.do_send_test_event(webhook=webhook, actor=Actor.system("test"))


def deliver_due(now=None) -> int:
    """One tick's worth of the outbox: the tick's job (its jobs run inline under tests), or, to
    drive the clock, its two steps with ``now``."""
    if now is None:
        return actions.do_send_due_deliveries()
    claimed = actions.do_claim_due_deliveries(now=now)
    for delivery_pk, attempts in claimed:
        actions.do_deliver(delivery_pk=delivery_pk, attempts=attempts, now=now)
    return len(claimed)


# --- subscriptions --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_are_validated_on_the_model_and_in_the_admin(settings):
    inbox = make_inbox(make_branch())
    bad = Webhook(inbox=inbox, url="https://hooks.example.com/x", events=["no.such.event", 42])
    with pytest.raises(ValidationError) as raised:
        bad.full_clean()
    text = " ".join(raised.value.message_dict["events"])
    assert "42" in text
    for events in (["no.such.event"], "message.created", [{"x": 1}]):
        with pytest.raises(ValidationError):
            Webhook(inbox=inbox, url="https://hooks.example.com/x", events=events).full_clean()
    ok = Webhook(inbox=inbox, url="https://hooks.example.com/x", events=["message.created", "assignment.transferred"])
    ok.full_clean()
    Webhook(inbox=inbox, url="https://hooks.example.com/x", events=[]).full_clean()

    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = True  # the URL is not what this part tests
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    form = {"inbox": inbox.pk, "url": "https://hooks.example.com/x", "is_active": "on"}
    # The admin offers a box per event type: anything else is not one of them.
    response = client.post("/admin/messenger/webhook/add/", {**form, "events": ["message.created", "no.such.event"]})
    assert response.status_code == 200
    assert "Select a valid choice. no.such.event is not one of the available choices." in response.content.decode()
    assert not Webhook.objects.exists()
    response = client.post("/admin/messenger/webhook/add/", {**form, "events": ["message.created"]})
    assert response.status_code == 302
    assert Webhook.objects.get().event_filter == ",message.created,"


def test_the_mapping_covers_every_webhook_event_that_comes_from_a_conversation():
    reported = {
        *webhook_events_for("message.created", {}),
        *webhook_events_for("conversation.created", {"changes": []}),
        *webhook_events_for("conversation.updated", {"changes": ["status", "rating"]}),
        *(name for name in WEBHOOK_EVENTS if webhook_events_for(name, {}) == (name,)),
    }
    assert reported | {"contact.created", "contact.updated"} == set(WEBHOOK_EVENTS)
    assert webhook_events_for("conversation.updated", {"changes": ["priority"]}) == ("conversation.updated",)
    assert webhook_events_for("message.updated", {}) == ()
    assert webhook_events_for("conversation.read", {}) == ()


@pytest.mark.django_db
def test_only_active_subscribed_webhooks_of_the_inbox_get_rows():
    branch = make_branch()
    inbox, other_inbox = make_inbox(branch), make_inbox(branch)
    everything = Webhook.objects.create(inbox=inbox, url="https://a.example.com/", events=[])
    statuses = Webhook.objects.create(inbox=inbox, url="https://b.example.com/", events=["conversation.status_changed"])
    ratings = Webhook.objects.create(inbox=inbox, url="https://c.example.com/", events=["rating.created"])
    Webhook.objects.create(inbox=inbox, url="https://d.example.com/", events=[], is_active=False)
    Webhook.objects.create(inbox=other_inbox, url="https://e.example.com/", events=[])
    make_user(branch=branch)
    conversation = conversation_of(inbox)
    WebhookDelivery.objects.all().delete()  # the start's own rows: counted in the socket test

    do_change_priority(conversation=conversation, priority=3, actor=Actor.system())
    assert list(WebhookDelivery.objects.values_list("webhook", "event")) == [(everything.pk, "conversation.updated")]
    assert not ratings.deliveries.exists()

    WebhookDelivery.objects.all().delete()
    with transaction.atomic():
        do_change_status(conversation=conversation, status="resolved", actor=Actor.system())
    rows = sorted(WebhookDelivery.objects.values_list("webhook", "event", "conversation_id"))
    assert rows == sorted(
        [
            (everything.pk, "conversation.updated", conversation.pk),
            (everything.pk, "conversation.status_changed", conversation.pk),
            (statuses.pk, "conversation.status_changed", conversation.pk),
        ]
    )
    delivery = WebhookDelivery.objects.get(webhook=statuses)
    envelope = json.loads(delivery.payload)
    assert envelope["event"] == "conversation.status_changed"
    assert envelope["event_id"] == delivery.event_seq
    assert envelope["data"]["changes"] == ["status"]
    assert envelope["data"]["conversation"]["status"] == "resolved"


@pytest.mark.django_db
def test_nothing_is_written_for_a_change_that_rolls_back():
    branch = make_branch()
    inbox = make_inbox(branch)
    Webhook.objects.create(inbox=inbox, url="https://a.example.com/", events=["conversation.updated"])
    conversation = conversation_of(inbox)

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        do_change_priority(conversation=conversation, priority=4, actor=Actor.system())
        assert WebhookDelivery.objects.count() == 1  # written inside the change's transaction
        raise Undo
    assert WebhookDelivery.objects.count() == 0
    conversation.refresh_from_db()
    do_change_priority(conversation=conversation, priority=4, actor=Actor.system())
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_contact_events_are_written_by_the_contact_actions():
    inbox = make_inbox(make_branch())
    hook = Webhook.objects.create(
        inbox=inbox, url="https://a.example.com/", events=["contact.updated", "contact.created"]
    )
    contact_inbox = visitor_rows(bootstrap(inbox))
    assert list(hook.deliveries.values_list("event", flat=True)) == ["contact.created"]
    do_update_contact_from_visitor(
        contact_inbox=contact_inbox, fields={"name": "Anna", "email": "anna@example.com"}, actor=Actor.system()
    )
    update = hook.deliveries.get(event="contact.updated")
    data = json.loads(update.payload)["data"]
    assert data["changes"] == ["email", "name"]
    assert data["contact"]["email"] == "anna@example.com"
    assert update.conversation_id is None


@pytest.mark.django_db
def test_anonymising_a_contact_scrubs_the_webhook_log():
    from messenger.actions.privacy import do_anonymise_contact

    branch = make_branch()
    inbox = make_inbox(branch)
    make_user(branch=branch)
    Webhook.objects.create(inbox=inbox, url="https://a.example.com/", events=[])
    conversation = conversation_of(inbox, body="my card is 4111 1111")
    contact_inbox = ContactInbox.objects.select_related("contact", "inbox").get(pk=conversation.contact_inbox_id)
    do_update_contact_from_visitor(
        contact_inbox=contact_inbox,
        fields={"name": "Anna Secret", "email": "anna@example.com", "custom": {"plan": "gold-secret"}},
        actor=Actor.system(),
    )
    payloads = " ".join(WebhookDelivery.objects.values_list("payload", flat=True))
    assert "4111 1111" in payloads and "anna@example.com" in payloads and "gold-secret" in payloads
    do_anonymise_contact(contact_id=contact_inbox.contact_id, actor=Actor.system())
    payloads = " ".join(WebhookDelivery.objects.values_list("payload", flat=True))
    for secret in ("4111 1111", "Anna Secret", "anna@example.com", "gold-secret"):
        assert secret not in payloads
    for delivery in WebhookDelivery.objects.all():
        assert json.loads(delivery.payload)["event"] == delivery.event


# --- the send path, through the real socket -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_visitor_message_through_the_socket_is_delivered_once_signed(receiver, allow_private):
    branch = await db(make_branch)()
    inbox = await db(make_inbox)(branch)
    operator = await db(make_user)(branch=branch)
    webhook = await db(Webhook.objects.create)(inbox=inbox, url=receiver.url, events=["message.created"])
    staff = await operator_socket(operator)
    assert (await staff.connect())[0]
    await staff.expect("hello")
    boot = await db(bootstrap)(inbox)
    visitor = visitor_socket(inbox, boot)
    assert (await visitor.connect())[0]
    await visitor.expect("hello")
    ack = await visitor.command("message.send", client_id=new_client_id(), body="Is anyone there?")
    assert ack["type"] == "ack", ack
    conversation_id = ack["data"]["conversation_id"]
    # Once the conversation exists, the next send runs on the event loop's driver.
    second = await visitor.command("message.send", client_id=new_client_id(), body="Hello?")
    assert second["type"] == "ack", second

    rows = await db(lambda: list(WebhookDelivery.objects.order_by("id")))()
    assert [(r.event, r.conversation_id, r.status) for r in rows] == [("message.created", conversation_id, PENDING)] * 2
    assert await db(deliver_due)() == 2
    assert await db(deliver_due)() == 0
    assert len(receiver.requests) == 2
    by_message = {}
    for request, row in zip(receiver.requests, rows, strict=True):
        assert request.path == "/hook"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("Messenger-Webhooks/")
        assert request.headers["x-messenger-event"] == "message.created"
        assert request.headers["x-messenger-delivery"] == str(row.delivery_id)
        assert verifies(request, webhook.secret)
        assert not verifies(request, "another secret")
        envelope = json.loads(request.body)
        assert envelope["id"] == str(row.delivery_id)
        assert envelope["event"] == "message.created"
        assert envelope["conversation_id"] == conversation_id
        assert envelope["event_id"] == row.event_seq
        by_message[envelope["data"]["message"]["body"]] = envelope
    assert set(by_message) == {"Is anyone there?", "Hello?"}
    assert by_message["Hello?"]["event_id"] > by_message["Is anyone there?"]["event_id"]
    # The staff payload, exactly as the event log stores it.
    stored = await db(lambda: {e.seq: e.payload for e in Conversation.objects.get(pk=conversation_id).events.all()})()
    assert by_message["Hello?"]["data"] == stored[by_message["Hello?"]["event_id"]]
    done = await db(lambda: list(WebhookDelivery.objects.values_list("status", "response_status", "attempts")))()
    assert done == [(DELIVERED, 200, 1)] * 2
    await visitor.close()
    await staff.close()


@pytest.mark.django_db
def test_an_internal_note_is_sent_marked_internal(receiver, allow_private):
    from messenger.actions.messages import send_operator_message

    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    conversation = conversation_of(inbox)
    Webhook.objects.create(inbox=inbox, url=receiver.url, events=["message.created"])
    send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="VIP", private=True)
    deliver_due()
    (request,) = receiver.requests
    assert json.loads(request.body)["data"]["message"]["direction"] == "internal"


# --- retries, failures, disabling ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_500_is_retried_later_with_the_same_id_and_body(receiver, allow_private):
    receiver.answer((500, {}, b"oops"), (200, {}, b"fine"))
    _webhook, delivery = make_webhook(receiver.url)
    now = timezone.now()
    assert deliver_due(now) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status, delivery.response_body) == (
        PENDING,
        1,
        500,
        "oops",
    )
    assert delivery.last_error == "HTTP 500"
    assert delivery.duration_ms is not None
    assert now + timedelta(seconds=20) <= delivery.next_attempt_at <= now + timedelta(seconds=40)
    assert deliver_due(now + timedelta(seconds=10)) == 0  # not due yet
    assert deliver_due(delivery.next_attempt_at) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == (DELIVERED, 2, 200)
    assert delivery.next_attempt_at is None and delivery.delivered_at is not None
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["x-messenger-delivery"] == second.headers["x-messenger-delivery"] == str(delivery.delivery_id)


@pytest.mark.django_db
@pytest.mark.parametrize("retry_after, seconds", [("120", 120), ("date+300", 300), ("99999", 3600)])
def test_a_429_waits_as_retry_after_says(receiver, allow_private, retry_after, seconds):
    _webhook, delivery = make_webhook(receiver.url)
    now = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
    if retry_after.startswith("date+"):
        retry_after = format_datetime(now + timedelta(seconds=int(retry_after[5:])), usegmt=True)
    receiver.answer((429, {"Retry-After": retry_after}, b""))
    deliver_due(now)
    delivery.refresh_from_db()
    assert delivery.status == PENDING and delivery.response_status == 429
    assert delivery.next_attempt_at == now + timedelta(seconds=seconds)


@pytest.mark.django_db
def test_retries_stop_a_day_after_the_event(receiver, allow_private):
    receiver.answer((503, {}, b""))
    _webhook, delivery = make_webhook(receiver.url)
    deliver_due(delivery.created_at + timedelta(hours=23, minutes=59, seconds=50))
    delivery.refresh_from_db()
    assert delivery.status == FAILED
    assert "gave up after 1 attempts" in delivery.last_error


@pytest.mark.django_db
def test_failures_in_a_row_disable_the_webhook_and_a_re_enable_resets_them(receiver, allow_private, settings):
    settings.MESSENGER_WEBHOOK_DISABLE_AFTER = 3
    receiver.answer((404, {}, b"gone"))
    webhook, _ = make_webhook(receiver.url)
    for _ in range(3):
        actions.do_send_test_event(webhook=webhook, actor=Actor.system())
    now = timezone.now()
    assert deliver_due(now) == 4  # claimed; the last one is not sent, the webhook is disabled by then
    webhook.refresh_from_db()
    assert not webhook.is_active
    assert webhook.disabled_at == now
    assert "3 deliveries in a row failed" in webhook.disabled_reason and "HTTP 404" in webhook.disabled_reason
    # A failure is final at once for a 404; the remaining delivery waits for the webhook.
    assert sorted(webhook.deliveries.values_list("status", flat=True)) == [FAILED, FAILED, FAILED, PENDING]
    assert deliver_due(now + timedelta(minutes=1)) == 0
    assert len(receiver.requests) == 3

    receiver.answer((204, {}, b""))
    actions.do_enable_webhook(webhook=webhook, actor=Actor.system())
    webhook.refresh_from_db()
    assert (webhook.is_active, webhook.consecutive_failures, webhook.disabled_reason) == (True, 0, "")
    assert deliver_due(now + timedelta(minutes=1)) == 1
    assert sorted(webhook.deliveries.values_list("status", flat=True)) == [DELIVERED, FAILED, FAILED, FAILED]


@pytest.mark.django_db
def test_a_success_ends_the_run_of_failures(receiver, allow_private, settings):
    settings.MESSENGER_WEBHOOK_DISABLE_AFTER = 2
    receiver.answer((400, {}, b""), (200, {}, b""), (400, {}, b""))
    webhook, _ = make_webhook(receiver.url)
    for _ in range(2):
        actions.do_send_test_event(webhook=webhook, actor=Actor.system())
    deliver_due()
    webhook.refresh_from_db()
    assert webhook.is_active and webhook.consecutive_failures == 1


@pytest.mark.django_db
def test_a_redirect_is_not_followed(receiver, allow_private):
    receiver.answer((302, {"Location": receiver.url + "/elsewhere"}, b""))
    _webhook, delivery = make_webhook(receiver.url)
    deliver_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_status) == (FAILED, 302)
    assert "redirects are not followed" in delivery.last_error
    assert [r.path for r in receiver.requests] == ["/hook"]


@pytest.mark.django_db
def test_a_slow_receiver_times_out_and_is_retried(allow_private, settings):
    settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS = 1
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection, never answers
    try:
        _webhook, delivery = make_webhook(f"http://127.0.0.1:{listener.getsockname()[1]}/")
        deliver_due()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.last_error, delivery.attempts) == (PENDING, "timed out", 1)
        assert delivery.next_attempt_at > timezone.now()
    finally:
        listener.close()


@pytest.mark.django_db
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_https_connects_to_the_checked_address_and_verifies_the_name(allow_private, tmp_path):
    import socket
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
        + ["-days", "1", "-subj", "/CN=localhost"],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    # Where the send connects: the first address "localhost" resolves to.
    family, _, _, _, address = socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)[0]
    listener = socket.socket(family)
    listener.bind((address[0], 0))
    listener.listen()
    seen: list[str | None] = []

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with context.wrap_socket(connection, server_side=True) as tls:
                seen.append("handshake")
                tls.recv(1)
        except (ssl.SSLError, OSError) as error:
            seen.append(type(error).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    _webhook, delivery = make_webhook(f"https://localhost:{listener.getsockname()[1]}/hook")
    deliver_due()
    thread.join(5)
    listener.close()
    delivery.refresh_from_db()
    # The self-signed certificate is refused (verification is on); retried as a connection error.
    assert delivery.status == PENDING
    assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert seen and seen[0] != "handshake"


@pytest.mark.django_db
def test_a_closed_port_is_a_connection_error_retried(allow_private):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _webhook, delivery = make_webhook(f"http://127.0.0.1:{port}/")
    deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == PENDING and delivery.response_status is None
    assert "ConnectionRefused" in delivery.last_error


@pytest.mark.django_db
def test_a_claimed_row_is_claimed_once_and_a_job_run_twice_sends_once(receiver, allow_private):
    _webhook, delivery = make_webhook(receiver.url)
    now = timezone.now()
    claimed = actions.do_claim_due_deliveries(now=now)
    assert claimed == [(delivery.pk, 0)]
    assert actions.do_claim_due_deliveries(now=now) == []  # leased
    assert actions.do_deliver(delivery_pk=delivery.pk, attempts=0, now=now) == DELIVERED
    assert actions.do_deliver(delivery_pk=delivery.pk, attempts=0, now=now) is None
    assert len(receiver.requests) == 1
    # A lease a dead worker left behind runs out.
    _webhook, stuck = make_webhook(receiver.url)
    now = timezone.now()
    assert actions.do_claim_due_deliveries(now=now) == [(stuck.pk, 0)]
    assert actions.do_claim_due_deliveries(now=now + actions.LEASE + timedelta(seconds=1)) == [(stuck.pk, 0)]


@pytest.mark.django_db
def test_finished_deliveries_leave_the_log_after_the_retention_days(settings):
    settings.MESSENGER_WEBHOOK_LOG_DAYS = 30
    webhook = Webhook.objects.create(inbox=make_inbox(make_branch()), url="https://a.example.com/")
    old = timezone.now() - timedelta(days=31)
    rows = {
        status: WebhookDelivery.objects.create(webhook=webhook, event="webhook.test", status=status, created_at=old)
        for status in (DELIVERED, FAILED, PENDING)
    }
    recent = WebhookDelivery.objects.create(webhook=webhook, event="webhook.test", status=DELIVERED)
    assert actions.do_purge_delivery_log() == 2
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {rows[PENDING].pk, recent.pk}
    settings.MESSENGER_WEBHOOK_LOG_DAYS = 0
    assert actions.do_purge_delivery_log(now=timezone.now() + timedelta(days=365)) == 0


@pytest.mark.django_db
def test_the_tick_sends_the_due_deliveries(receiver, allow_private):
    make_webhook(receiver.url)
    assert run_due_jobs()["webhooks"] == 1
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0].body)["event"] == "webhook.test"


# --- SSRF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8000/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://0.0.0.0/",
        "http://240.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http://user:pw@example.com/",
    ],
)
def test_non_public_targets_are_refused(url, settings):
    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(webhook_http.UnsafeTarget):
        webhook_http.check_url(url)
    if url.startswith("http:") and "@" not in url:
        with pytest.raises(webhook_http.UnsafeTarget):
            webhook_http.resolve(url)


def test_public_addresses_pass():
    assert webhook_http.address_refused("93.184.216.34") is None
    assert webhook_http.address_refused("2606:2800:220:1:248:1893:25c8:1946") is None
    assert webhook_http.address_refused("::ffff:10.0.0.1") is not None


@pytest.mark.django_db
def test_loopback_is_refused_at_send_time_without_the_setting(receiver, settings):
    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = False
    port = receiver.url.split(":")[2].split("/")[0]
    for url in (receiver.url, f"http://localhost:{port}/hook"):
        _webhook, delivery = make_webhook(url)
        deliver_due()
        delivery.refresh_from_db()
        assert delivery.status == FAILED
        assert delivery.last_error.startswith("refused:") and "loopback" in delivery.last_error
    assert receiver.requests == []


@pytest.mark.django_db
def test_the_admin_refuses_a_loopback_url(settings):
    settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE = False
    inbox = make_inbox(make_branch())
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    for url in ("http://localhost/hook", "http://127.0.0.1:9/", "http://[::ffff:7f00:1]/"):
        response = client.post("/admin/messenger/webhook/add/", {"inbox": inbox.pk, "url": url, "is_active": "on"})
        assert response.status_code == 200, url
        assert "MESSENGER_WEBHOOK_ALLOW_PRIVATE" in response.content.decode()
    assert not Webhook.objects.exists()


# --- secret rotation and the docs' verifiers ------------------------------------------------------


@pytest.mark.django_db
def test_during_a_rotation_both_signatures_verify(receiver, allow_private):
    webhook, _ = make_webhook(receiver.url)
    old_secret = webhook.secret
    webhook = actions.do_rotate_secret(webhook=webhook, actor=Actor.system())
    assert webhook.secret != old_secret and webhook.previous_secret == old_secret
    deliver_due()
    (request,) = receiver.requests
    signatures = request.headers["x-messenger-signature"].split(",")
    assert len(signatures) == 2 and all(s.startswith("sha256=") for s in signatures)
    assert verifies(request, webhook.secret)
    assert verifies(request, old_secret)

    later = timezone.now() + timedelta(hours=24, minutes=1)
    actions.do_send_test_event(webhook=webhook, actor=Actor.system(), now=later)
    deliver_due(later)
    headers = receiver.requests[1].headers
    assert "," not in headers["x-messenger-signature"]
    assert headers["x-messenger-timestamp"] == str(int(later.timestamp()))


def test_the_python_verifier_refuses_a_stale_timestamp_and_a_tampered_body():
    import time

    from messenger.webhooks import signature_header

    verify = python_verifier()
    body = b'{"id":"x"}'
    now = int(time.time())
    header = signature_header(["s3cret"], now, body)
    assert verify("s3cret", body, str(now), header)
    assert not verify("s3cret", body + b" ", str(now), header)
    assert not verify("s3cret", body, str(now - 600), signature_header(["s3cret"], now - 600, body))
    assert not verify("s3cret", body, "soon", header)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_verifier_of_the_docs_accepts_our_signature():
    import time

    from messenger.webhooks import signature_header

    body = '{"id":"0f5d","event":"webhook.test","data":{"text":"привет"}}'
    now = int(time.time())
    header = signature_header(["new-secret", "old-secret"], now, body.encode())
    script = doc_snippet("javascript") + (
        "\nconst [body, ts, header] = process.argv.slice(1);"
        "\nconst raw = Buffer.from(body, 'utf8');"
        "\nconsole.log(JSON.stringify(["
        "verifyMessengerWebhook('new-secret', raw, ts, header),"
        "verifyMessengerWebhook('old-secret', raw, ts, header),"
        "verifyMessengerWebhook('wrong', raw, ts, header),"
        "verifyMessengerWebhook('new-secret', Buffer.from(body + ' '), ts, header),"
        "verifyMessengerWebhook('new-secret', raw, String(Number(ts) - 3600), header)]));"
    )
    output = subprocess.run(
        ["node", "-e", script, body, str(now), header], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(output.stdout) == [True, True, False, False, False]


@pytest.mark.django_db
def test_admin_actions_call_the_actions(receiver, allow_private):
    webhook, delivery = make_webhook(receiver.url)
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    old_secret = webhook.secret
    for action in ("send_test_event", "rotate_secret"):
        response = client.post(
            "/admin/messenger/webhook/", {"action": action, "_selected_action": [webhook.pk]}, follow=True
        )
        assert response.status_code == 200
    webhook.refresh_from_db()
    assert webhook.previous_secret == old_secret and webhook.previous_secret_expires_at is not None
    assert webhook.deliveries.filter(event="webhook.test").count() == 2
    response = client.post(
        "/admin/messenger/webhookdelivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}, follow=True
    )
    assert response.status_code == 200
    assert webhook.deliveries.count() == 3
    copy = webhook.deliveries.order_by("-id").first()
    assert copy.payload == delivery.payload and copy.delivery_id != delivery.delivery_id
    listing = client.get("/admin/messenger/webhookdelivery/?status__exact=pending")
    assert listing.status_code == 200
    # Disabled: the reason shows; ticking "active" again forgets the failures.
    Webhook.objects.filter(pk=webhook.pk).update(
        is_active=False,
        consecutive_failures=10,
        disabled_reason="10 deliveries in a row failed",
        disabled_at=timezone.now(),
    )
    assert "10 deliveries in a row failed" in client.get("/admin/messenger/webhook/").content.decode()
    response = client.post(
        f"/admin/messenger/webhook/{webhook.pk}/change/",
        {"inbox": webhook.inbox_id, "url": webhook.url, "is_active": "on"},
    )
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert webhook.is_active and webhook.consecutive_failures == 0 and webhook.disabled_at is None


@pytest.mark.django_db(transaction=True)
def test_two_ticks_racing_claim_each_row_once():
    from django.db import connection as django_connection

    webhook = Webhook.objects.create(inbox=make_inbox(make_branch()), url="https://a.example.com/")
    for _ in range(40):
        actions.do_send_test_event(webhook=webhook, actor=Actor.system())
    now = timezone.now()
    barrier = threading.Barrier(2)
    claimed: list[list[tuple[int, int]]] = []

    def tick() -> None:
        try:
            barrier.wait()
            claimed.append(actions.do_claim_due_deliveries(now=now, limit=30))
        finally:
            django_connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = ({pk for pk, _ in rows} for rows in claimed)
    assert not first & second
    assert len(first | second) == 40
