"""E-mail (docs/integrations.md): the outbox, its sending job, and what fills it, against a real SMTP
server on loopback (tests/mailserver.py)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from messenger.actions import mail
from messenger.models import Conversation, EmailKind, EmailStatus, OutgoingEmail
from messenger.scheduler import TICK_JOBS
from project.settings import parse_email_url
from tests.conftest import visitor_rows
from tests.mailserver import Mailbox, free_port, mailbox_fixture, smtp_settings  # noqa: F401 — the fixture

pytestmark = pytest.mark.django_db(transaction=True)


def queue(key: str = "k1", **fields) -> OutgoingEmail:
    values = {
        "kind": EmailKind.TRANSCRIPT,
        "to": ["visitor@example.com"],
        "subject": "Hello",
        "text": "plain text",
        "html": "<p>html text</p>",
        "dedupe_key": key,
    }
    values.update(fields)
    email = mail.do_queue_email(**values)
    assert email is not None
    return email


def tick() -> int:
    return TICK_JOBS["email"]()


# --- settings -------------------------------------------------------------------------------------


def test_email_url_forms():
    assert parse_email_url("smtp+tls://user%40example.com:p%3Ass@mail.example.com:587") == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "user@example.com",
        "EMAIL_HOST_PASSWORD": "p:ss",
        "EMAIL_USE_TLS": True,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 10,
    }
    ssl = parse_email_url("smtp+ssl://u:p@mail.example.com?timeout=3")
    assert (ssl["EMAIL_PORT"], ssl["EMAIL_USE_SSL"], ssl["EMAIL_USE_TLS"], ssl["EMAIL_TIMEOUT"]) == (
        465,
        True,
        False,
        3,
    )
    plain = parse_email_url("smtp://relay")
    assert (plain["EMAIL_HOST"], plain["EMAIL_PORT"], plain["EMAIL_HOST_USER"]) == ("relay", 25, "")
    assert parse_email_url("console://") == {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        parse_email_url("imap://x")


# --- the outbox -----------------------------------------------------------------------------------


def test_an_email_is_sent_once_with_both_parts(mailbox: Mailbox):
    email = queue()
    assert (
        mail.do_queue_email(kind=EmailKind.TRANSCRIPT, to=["other@example.com"], subject="x", text="x", dedupe_key="k1")
        is None
    ), "the same dedupe key writes nothing"
    assert tick() == 1
    received = mailbox.wait_for(1)
    assert len(received) == 1
    assert received[0].recipients == ["visitor@example.com"]
    assert received[0].sender == "chat@example.com"
    assert received[0].subject == "Hello"
    assert received[0].message["Auto-Submitted"] == "auto-generated"
    assert received[0].part("text/plain").strip() == "plain text"
    assert received[0].part("text/html").strip() == "<p>html text</p>"
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (EmailStatus.SENT, 1, "")
    assert email.sent_at is not None
    # The job run again (a q2 retry), and later ticks: nothing more.
    assert mail.do_send_email(email.pk).status == "skipped"
    assert tick() == 0
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1


def test_two_jobs_at_once_send_one_email(mailbox: Mailbox):
    email = queue()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        from django.db import connection

        barrier.wait()
        try:
            outcomes.append(mail.do_send_email(email.pk).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["sent", "skipped", "skipped", "skipped"]
    assert len(mailbox.wait_for(2, timeout=0.5)) == 1


def test_two_ticks_at_once_queue_each_email_once(mailbox: Mailbox):
    for n in range(5):
        queue(f"k{n}", to=[f"v{n}@example.com"])
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def run() -> None:
        from django.db import connection

        barrier.wait()
        try:
            counts.append(tick())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 5
    received = mailbox.wait_for(6, timeout=1)
    assert sorted(r.recipients[0] for r in received) == [f"v{n}@example.com" for n in range(5)]


def test_a_refused_connection_is_retried_later_not_lost():
    closed = free_port()
    email = queue()
    with override_settings(**smtp_settings(closed)):
        assert tick() == 1
    email.refresh_from_db()
    assert email.status == EmailStatus.PENDING
    assert email.attempts == 1
    assert "Connection refused" in email.last_error or "ConnectionRefusedError" in email.last_error
    assert timedelta(seconds=50) < email.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    assert tick() == 0, "not before its next attempt"

    # The server is back when the pause is over: sent, once.
    box = Mailbox(port=closed)
    from aiosmtpd.controller import Controller

    controller = Controller(box, hostname="127.0.0.1", port=closed)
    controller.start()
    try:
        with override_settings(**smtp_settings(closed)):
            assert mail.do_claim_due_emails(now=timezone.now() + timedelta(seconds=61)) == 1
        assert len(box.wait_for(1)) == 1
    finally:
        controller.stop()
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (EmailStatus.SENT, 2, "")


def test_the_retries_back_off_and_give_up_after_a_day():
    assert [mail.retry_delay_seconds(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    attempts = next(n for n in range(1, 100) if mail.gives_up_after(n))
    total = sum(mail.retry_delay_seconds(n) for n in range(1, attempts + 1))
    assert 24 * 3600 <= total < 25 * 3600
    email = queue()
    OutgoingEmail.objects.filter(pk=email.pk).update(attempts=attempts - 1)
    with override_settings(**smtp_settings(free_port())):
        tick()
    email.refresh_from_db()
    assert email.status == EmailStatus.FAILED
    assert "refused" in email.last_error.lower()
    assert tick() == 0, "a failed e-mail is not tried again by itself"


def test_a_job_that_died_while_sending_is_tried_again(mailbox: Mailbox):
    email = queue()
    OutgoingEmail.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING, lease_until=timezone.now() + timedelta(minutes=1), attempts=1
    )
    assert tick() == 0, "held by a live lease"
    assert mail.do_claim_due_emails(now=timezone.now() + timedelta(minutes=2)) == 1
    assert len(mailbox.wait_for(1)) == 1


def test_the_admin_lists_emails_and_sends_one_again(client, mailbox: Mailbox):
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    email = queue()
    OutgoingEmail.objects.filter(pk=email.pk).update(status=EmailStatus.FAILED, last_error="SMTPDataError: no")
    page = client.get("/admin/messenger/outgoingemail/")
    assert page.status_code == 200
    assert b"SMTPDataError: no" in page.content and b"visitor@example.com" in page.content
    page = client.get(f"/admin/messenger/outgoingemail/{email.pk}/change/")
    assert page.status_code == 200 and b"plain text" in page.content
    reset = queue("reset", kind=EmailKind.PASSWORD_RESET, text="https://x/accounts/reset/secret-token/")
    page = client.get(f"/admin/messenger/outgoingemail/{reset.pk}/change/")
    assert page.status_code == 200 and b"secret-token" not in page.content
    reset.delete()
    response = client.post("/admin/messenger/outgoingemail/", {"action": "send_again", "_selected_action": [email.pk]})
    assert response.status_code == 302
    email.refresh_from_db()
    assert (email.status, email.attempts, email.last_error) == (EmailStatus.PENDING, 0, "")
    assert tick() == 1
    assert len(mailbox.wait_for(1)) == 1


# --- staff password reset -------------------------------------------------------------------------


def reset_link(received) -> str:
    import re

    text = received.part("text/plain")
    html = received.part("text/html")
    link = re.search(r"http://testserver(/accounts/reset/[^\s]+/)", text).group(1)
    assert f"http://testserver{link}" in html
    return link


def test_password_reset_end_to_end(client, mailbox: Mailbox):
    from tests.factories import make_user

    user = make_user("olga", email="olga@example.com")
    login_page = client.get("/accounts/login/")
    assert b'href="/accounts/password_reset/"' in login_page.content
    assert client.get("/accounts/password_reset/").status_code == 200

    response = client.post("/accounts/password_reset/", {"email": "OLGA@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert mailbox.received == [], "nothing is sent on the request"
    assert OutgoingEmail.objects.get().kind == EmailKind.PASSWORD_RESET
    assert tick() == 1
    (received,) = mailbox.wait_for(1)
    assert received.recipients == ["olga@example.com"]
    assert received.subject == "Reset your Messenger password"

    row = OutgoingEmail.objects.get()
    assert (row.status, row.text, row.html) == (EmailStatus.SENT, mail.SECRET_REMOVED, ""), "the link is not kept"

    confirm = client.get(reset_link(received), follow=True)
    assert confirm.status_code == 200 and b'name="new_password1"' in confirm.content
    done = client.post(
        confirm.redirect_chain[-1][0],
        {"new_password1": "a new long secret 42", "new_password2": "a new long secret 42"},
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert b"Your new password is set." in client.get("/accounts/reset/done/").content

    client.logout()
    login = client.post("/accounts/login/", {"username": "olga", "password": "a new long secret 42"})
    assert login.status_code == 302 and login["Location"] == "/dashboard/"
    user.refresh_from_db()
    assert user.check_password("a new long secret 42")
    # The link is spent.
    assert b"reset-invalid" in client.get(reset_link(received), follow=True).content


def test_password_reset_does_not_say_whether_the_address_exists(client, mailbox: Mailbox):
    from tests.factories import make_user

    make_user("olga", email="olga@example.com")
    known = client.post("/accounts/password_reset/", {"email": "olga@example.com"})
    unknown = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    tick()
    assert [r.recipients for r in mailbox.wait_for(2, timeout=0.5)] == [["olga@example.com"]]


@override_settings(MESSENGER_PASSWORD_RESET_RATE_PER_EMAIL="1/h", MESSENGER_PASSWORD_RESET_RATE_PER_IP="4/h")
def test_password_reset_is_throttled_per_address_and_per_client(client, mailbox: Mailbox):
    from tests.factories import make_user

    make_user("olga", email="olga@example.com")
    for _ in range(3):
        response = client.post("/accounts/password_reset/", {"email": "olga@example.com"})
        assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert OutgoingEmail.objects.count() == 1, "past the per-address limit nothing is written"
    assert client.post("/accounts/password_reset/", {"email": "other@example.com"}).status_code == 302
    refused = client.post("/accounts/password_reset/", {"email": "olga@example.com"})
    assert refused.status_code == 429
    assert b"Too many password reset requests" in refused.content
    assert int(refused["Retry-After"]) > 0


# --- transcript -----------------------------------------------------------------------------------


def transcript_world():
    """A conversation: the visitor's messages (one with markup), a reply, an internal note, a file."""
    from messenger.actions.base import Actor
    from messenger.actions.intake import send_visitor_message
    from messenger.actions.messages import send_operator_message
    from messenger.models import Attachment
    from tests.conftest import bootstrap, new_client_id
    from tests.factories import make_branch, make_inbox, make_user
    from tests.test_routing_helpers import connect

    branch = make_branch("Sales")
    inbox = make_inbox(branch, name="Acme shop")
    operator = make_user("olga", branch=branch, first_name="Olga", last_name="Ivanova")
    connect(operator)
    boot = bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    contact_inbox.contact.name = "Anna"
    contact_inbox.contact.save(update_fields=["name"])
    first = send_visitor_message(
        contact_inbox=contact_inbox,
        client_id=new_client_id(),
        body="Hello <script>alert(1)</script> & bye",
        actor=Actor(contact=contact_inbox.contact),
    )
    conversation = first.conversation
    reply = send_operator_message(
        conversation=conversation, user=operator, client_id=new_client_id(), body="Hi Anna, how can I help?"
    )
    Attachment.objects.create(
        conversation=conversation,
        message=reply.message,
        file="attachments/price.pdf",
        original_name="price-list.pdf",
        content_type="application/pdf",
        size=3,
    )
    send_operator_message(
        conversation=conversation, user=operator, client_id=new_client_id(), body="SECRET NOTE", private=True
    )
    return inbox, boot, conversation


async def test_a_visitor_gets_the_transcript_by_email_once_limited(mailbox: Mailbox):
    from channels.db import database_sync_to_async

    from tests.conftest import visitor_socket

    inbox, boot, conversation = await database_sync_to_async(transcript_world)()
    socket = visitor_socket(inbox, boot)
    assert (await socket.connect())[0]
    try:
        with override_settings(MESSENGER_TRANSCRIPT_RATE_PER_VISITOR="2/h"):
            bad = await socket.command(
                "conversation.transcript", conversation_id=conversation.pk, email="not-an-address"
            )
            assert (bad["type"], bad["code"], bad["fields"]) == ("error", "invalid", ["email"])
            missing = await socket.command("conversation.transcript", conversation_id=conversation.pk)
            assert (missing["code"], missing["fields"]) == ("invalid", ["email"]), "no address known or typed"
            ack = await socket.command(
                "conversation.transcript", conversation_id=conversation.pk, email="anna@example.com"
            )
            assert ack == {"type": "ack", "ref": ack["ref"], "data": {"transcript": {"email": "anna@example.com"}}}
            assert mailbox.received == [], "queued, not sent on the socket command"
            await database_sync_to_async(tick)()
            (received,) = mailbox.wait_for(1)

            again = await socket.command("conversation.transcript", conversation_id=conversation.pk, email="a@b.co")
            assert again["type"] == "ack"
            refused = await socket.command(
                "conversation.transcript", conversation_id=conversation.pk, email="anna@example.com"
            )
            assert refused["type"] == "error" and refused["code"] == "rate_limited"
            assert refused["retry_after"] > 0 and "too many transcripts" in refused["message"]
            other = await socket.command("conversation.transcript", conversation_id=conversation.pk + 999)
            assert other["code"] == "not_found"
    finally:
        await socket.close()
    assert await database_sync_to_async(OutgoingEmail.objects.filter(kind=EmailKind.TRANSCRIPT).count)() == 2

    assert received.recipients == ["anna@example.com"]
    assert received.subject == "Your conversation with Acme shop"
    text, html = received.part("text/plain"), received.part("text/html")
    for part in (text, html):
        assert "Anna" in part and "Olga Ivanova" in part and "price-list.pdf" in part
        assert "Hi Anna, how can I help?" in part
        assert "SECRET NOTE" not in part
        assert conversation.created_at.strftime("%Y-%m-%d") in part
    assert "Hello <script>alert(1)</script> & bye" in text
    assert "<script>" not in html
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt; &amp; bye" in html


# --- offline messages -----------------------------------------------------------------------------


def visitor_writes(inbox, body: str, *, new_visitor: bool = True, boot=None):
    from messenger.actions.base import Actor
    from messenger.actions.intake import send_visitor_message
    from tests.conftest import bootstrap, new_client_id

    boot = boot or bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    result = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body=body, actor=Actor(contact=contact_inbox.contact)
    )
    return boot, result


def test_a_conversation_nobody_can_answer_notifies_the_inbox_once(mailbox: Mailbox):
    from tests.factories import make_branch, make_inbox

    inbox = make_inbox(make_branch(), name="Acme shop", notification_emails="sales@example.com,\nboss@example.com")
    boot, first = visitor_writes(inbox, "Do you ship <b>abroad</b>?")
    visitor_writes(inbox, "Hello?", boot=boot)  # the same conversation: not a new notice
    assert tick() == 1
    (received,) = mailbox.wait_for(1)
    assert received.recipients == ["sales@example.com", "boss@example.com"]
    assert received.subject == "New message in Acme shop while nobody was there"
    assert "Do you ship <b>abroad</b>?" in received.part("text/plain")
    assert "Do you ship &lt;b&gt;abroad&lt;/b&gt;?" in received.part("text/html")
    assert "Hello?" not in received.part("text/plain")

    # The visitor's next conversation within MESSENGER_OFFLINE_NOTIFY_MINUTES: no second notice.
    Conversation.objects.filter(pk=first.conversation.pk).update(status="resolved")
    _, second = visitor_writes(inbox, "Anyone?", boot=boot)
    assert second.conversation.pk != first.conversation.pk
    assert tick() == 0
    # Another visitor: a notice of its own.
    visitor_writes(inbox, "Hi from Bob")
    assert tick() == 1
    assert len(mailbox.wait_for(2)) == 2


def test_no_notice_when_an_operator_can_answer_and_one_outside_working_hours(mailbox: Mailbox):
    from tests.factories import make_branch, make_inbox, make_user
    from tests.test_routing_helpers import connect

    branch = make_branch()
    open_inbox = make_inbox(branch, notification_emails="sales@example.com")
    connect(make_user(branch=branch))
    visitor_writes(open_inbox, "Hi")
    assert OutgoingEmail.objects.count() == 0

    closed_inbox = make_inbox(
        branch,
        notification_emails="night@example.com",
        settings={"working_hours": {"enabled": True, "timezone": "UTC", "days": {}}},
    )
    visitor_writes(closed_inbox, "At night")
    assert tick() == 1
    assert mailbox.wait_for(1)[0].recipients == ["night@example.com"]

    silent_inbox = make_inbox(make_branch())  # no notification addresses
    visitor_writes(silent_inbox, "Hi")
    assert OutgoingEmail.objects.count() == 1


def test_notification_addresses_are_validated():
    from django.core.exceptions import ValidationError

    from tests.factories import make_branch, make_inbox

    inbox = make_inbox(make_branch(), notification_emails="a@example.com; b@example.com")
    assert inbox.notification_addresses == ["a@example.com", "b@example.com"]
    inbox.notification_emails = "a@example.com, not-an-address"
    with pytest.raises(ValidationError) as error:
        inbox.full_clean()
    assert "notification_emails" in error.value.message_dict


def test_the_admin_edits_the_email_settings(client):
    from django.contrib.auth import get_user_model

    from tests.factories import make_branch, make_inbox, make_user

    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123"))
    inbox = make_inbox(make_branch())
    page = client.get(f"/admin/messenger/inbox/{inbox.pk}/change/")
    assert b'name="notification_emails"' in page.content
    operator = make_user("olga")
    page = client.get(f"/admin/messenger/agentprofile/{operator.agent.pk}/change/")
    assert b'name="email_when_unread"' in page.content and b'name="email_unread_minutes"' in page.content


# --- unread reminders -----------------------------------------------------------------------------


def unread_world(*, opted_in: bool = True, minutes: int | None = None):
    from messenger.models import AgentProfile
    from tests.factories import make_branch, make_inbox, make_user
    from tests.test_routing_helpers import connect

    branch = make_branch()
    inbox = make_inbox(branch, name="Acme shop")
    operator = make_user("olga", branch=branch, email="olga@example.com")
    AgentProfile.objects.filter(user=operator).update(email_when_unread=opted_in, email_unread_minutes=minutes)
    connect(operator)
    boot, result = visitor_writes(inbox, "Where is my <order>?")
    assert result.conversation.assignee_id == operator.pk
    return operator, boot, inbox, result.conversation


def unread_tick(at):
    mail.do_notify_unread_due(now=at)
    return mail.do_claim_due_emails(now=at)


def test_an_opted_in_operator_offline_gets_one_email_per_unread_run(mailbox: Mailbox):
    from messenger.actions.messages import mark_read

    operator, boot, inbox, conversation = unread_world()
    start = timezone.now()
    # Not yet ten minutes: nothing. (At +9 min the operator's last heartbeat is stale: offline.)
    assert unread_tick(start + timedelta(minutes=9)) == 0
    assert unread_tick(start + timedelta(minutes=11)) == 1
    (received,) = mailbox.wait_for(1)
    assert received.recipients == ["olga@example.com"]
    assert received.subject.startswith("Unread conversation with")
    assert "unread for 10 minutes" in received.part("text/plain")
    assert "Where is my <order>?" in received.part("text/plain")
    assert "Where is my &lt;order&gt;?" in received.part("text/html")
    # The next ticks of the same unread run: nothing more.
    for minutes in (12, 30, 90):
        assert unread_tick(start + timedelta(minutes=minutes)) == 0
    assert OutgoingEmail.objects.filter(kind=EmailKind.UNREAD_CONVERSATION).count() == 1

    # Read, then a new message stays unread: a new run, a new e-mail.
    conversation.refresh_from_db()
    up_to = conversation.messages.latest("id").pk
    mark_read(conversation=conversation, reader="agent", user=operator, up_to_message_id=up_to)
    later = timezone.now()
    visitor_writes(inbox, "Hello again", boot=boot)
    assert unread_tick(later + timedelta(minutes=11)) == 1
    assert len(mailbox.wait_for(2)) == 2
    assert "Hello again" in mailbox.received[1].part("text/plain")


def test_no_reminder_while_online_or_without_the_opt_in(mailbox: Mailbox):
    from messenger.models import AgentProfile
    from tests.test_routing_helpers import connect

    operator, _, _, _ = unread_world(minutes=5)
    at = timezone.now() + timedelta(minutes=6)
    connect(operator, at=at)  # a live socket then
    assert unread_tick(at) == 0
    AgentProfile.objects.filter(user=operator).update(status="offline")
    assert unread_tick(at) == 1, "manual status offline counts as offline, with its own delay (5 min)"
    assert len(mailbox.wait_for(1)) == 1

    OutgoingEmail.objects.all().delete()
    AgentProfile.objects.filter(user=operator).update(email_when_unread=False)
    assert unread_tick(at + timedelta(hours=1)) == 0


def test_without_email_url_the_embedded_default_writes_emails_to_the_log(capfd):
    """No EMAIL_URL: Django's console backend; the embedded default sends from its job threads."""
    import time

    from messenger import jobs

    email = queue(subject="Console subject", text="console body")
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.console.EmailBackend", MESSENGER_JOBS="threads"):
        assert tick() == 1
        deadline = time.monotonic() + 10
        while OutgoingEmail.objects.get(pk=email.pk).status != EmailStatus.SENT and time.monotonic() < deadline:
            time.sleep(0.05)
    assert OutgoingEmail.objects.get(pk=email.pk).status == EmailStatus.SENT
    out = capfd.readouterr().out
    assert "Subject: Console subject" in out and "console body" in out
    assert "messenger.tasks.send_email" in jobs._pools


@override_settings(MESSENGER_TRANSCRIPT_RATE_PER_IP="2/h")
def test_transcripts_are_limited_per_client_address_too():
    from messenger.actions.commands import VisitorContext, check_visitor_command
    from messenger.errors import RateLimited
    from messenger.models import ContactInbox
    from messenger.protocol import Command

    inbox, _, first = transcript_world()
    boot, second = visitor_writes(inbox, "Me too")

    def ask(conversation, ip: str):
        context = VisitorContext(contact_inbox=ContactInbox.objects.get(pk=conversation.contact_inbox_id), ip=ip)
        return check_visitor_command(
            context,
            Command(
                type="conversation.transcript", ref="r", fields={"conversation_id": conversation.pk, "email": "a@b.co"}
            ),
        )

    ask(first, "203.0.113.5")
    ask(second.conversation, "203.0.113.5")
    with pytest.raises(RateLimited):
        ask(first, "203.0.113.5")
    assert ask(second.conversation, "198.51.100.7")[0]["type"] == "ack", "another address, the same visitor: allowed"
    assert OutgoingEmail.objects.filter(kind=EmailKind.TRANSCRIPT).count() == 3


def test_the_reset_pages_and_emails_speak_russian(client):
    from django.utils import translation

    page = client.get("/accounts/password_reset/", HTTP_ACCEPT_LANGUAGE="ru")
    assert "Отправить ссылку" in page.content.decode()
    assert "Забыли пароль?" in client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    inbox, _, conversation = transcript_world()
    with translation.override("ru"):
        text, html = mail.render_email("transcript", {"inbox": inbox, "conversation": conversation, "lines": []})
    assert "Ваш диалог с Acme shop" in text and "Ваш диалог с Acme shop" in html


def test_old_sent_and_failed_emails_are_deleted_by_the_retention():
    from messenger.scheduler import RETENTION_JOBS

    old = timezone.now() - timedelta(days=31)
    for key, status in (("sent", EmailStatus.SENT), ("failed", EmailStatus.FAILED), ("pending", EmailStatus.PENDING)):
        email = queue(key)
        OutgoingEmail.objects.filter(pk=email.pk).update(status=status, created_at=old)
    recent = queue("recent")
    OutgoingEmail.objects.filter(pk=recent.pk).update(status=EmailStatus.SENT)
    assert RETENTION_JOBS["retention_emails"]() == 2
    assert sorted(OutgoingEmail.objects.values_list("dedupe_key", flat=True)) == ["pending", "recent"]
    with override_settings(MESSENGER_EMAIL_KEEP_DAYS=0):
        OutgoingEmail.objects.update(status=EmailStatus.SENT, created_at=old)
        assert RETENTION_JOBS["retention_emails"]() == 0


def test_anonymising_a_contact_deletes_the_emails_about_their_conversations():
    from messenger.actions.base import Actor
    from messenger.actions.privacy import do_anonymise_contact

    inbox, _, conversation = transcript_world()
    mail.do_queue_transcript(conversation=conversation, email="anna@example.com")
    unrelated = queue("unrelated")
    do_anonymise_contact(contact_id=conversation.contact_id, actor=Actor.system("admin"))
    assert list(OutgoingEmail.objects.values_list("pk", flat=True)) == [unrelated.pk]
