"""Scheduler jobs: snooze wake-up, retention, the tick loop and its lock, setup_schedules."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from messenger import tasks
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_status
from messenger.actions.locks import lock_conversation
from messenger.actions.schedule import do_close_resolved, do_purge_anonymous, do_wake_snoozed
from messenger.models import ActivityEvent, Contact, Conversation, Message
from messenger.scheduler import run_due_jobs
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import connect, is_postgres, start


@pytest.mark.django_db
def test_snoozed_conversation_wakes_up_once():
    inbox = make_inbox(make_branch())
    conversation = start(inbox)
    until = timezone.now() + timedelta(hours=1)
    do_change_status(
        conversation=lock_conversation(conversation.pk), status="snoozed", actor=Actor.system(), snoozed_until=until
    )
    assert do_wake_snoozed(now=until - timedelta(seconds=1)) == 0
    assert do_wake_snoozed(now=until) == 1
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snoozed_until is None
    audit = ActivityEvent.objects.get(verb="conversation.status", conversation=conversation, payload__to="open")
    assert audit.actor_label == "snooze"
    assert do_wake_snoozed(now=until + timedelta(hours=1)) == 0


@pytest.mark.django_db
def test_resolved_become_closed_after_the_configured_days(settings):
    settings.MESSENGER_RETENTION_CLOSE_AFTER_DAYS = 7
    inbox = make_inbox(make_branch())
    old, fresh = start(inbox), start(inbox)
    for conversation in (old, fresh):
        do_change_status(conversation=lock_conversation(conversation.pk), status="resolved", actor=Actor.system())
    Conversation.objects.filter(pk=old.pk).update(resolved_at=timezone.now() - timedelta(days=8))
    assert do_close_resolved() == 1
    assert do_close_resolved() == 0
    assert Conversation.objects.get(pk=old.pk).status == "closed"
    assert Conversation.objects.get(pk=fresh.pk).status == "resolved"
    assert (
        ActivityEvent.objects.get(conversation=old, verb="conversation.status", payload__to="closed").actor_label
        == "retention"
    )


@pytest.mark.django_db
def test_old_closed_conversations_of_anonymous_visitors_are_purged(settings):
    settings.MESSENGER_RETENTION_PURGE_AFTER_MONTHS = 12
    inbox = make_inbox(make_branch())
    anonymous, named, recent = start(inbox), start(inbox, name="Anna"), start(inbox)
    Message.objects.create(
        conversation=anonymous, direction="in", sender_type="contact", body="hi", created_at=timezone.now()
    )
    long_ago = timezone.now() - timedelta(days=400)
    for conversation in (anonymous, named, recent):
        do_change_status(conversation=lock_conversation(conversation.pk), status="closed", actor=Actor.system())
    Conversation.objects.filter(pk__in=[anonymous.pk, named.pk]).update(last_activity_at=long_ago)
    assert do_purge_anonymous() == 1
    assert not Conversation.objects.filter(pk=anonymous.pk).exists()
    assert not Contact.objects.filter(pk=anonymous.contact_id).exists()
    assert not Message.objects.filter(conversation_id=anonymous.pk).exists()
    assert Conversation.objects.filter(pk__in=[named.pk, recent.pk]).count() == 2
    assert ActivityEvent.objects.get(verb="retention.purged").payload == {"conversations": 1, "older_than_months": 12}
    assert do_purge_anonymous() == 0
    settings.MESSENGER_RETENTION_PURGE_AFTER_MONTHS = 0  # off
    Conversation.objects.filter(pk=recent.pk).update(last_activity_at=long_ago)
    assert do_purge_anonymous() == 0


@pytest.mark.django_db
def test_run_due_jobs_reports_every_job():
    assert set(run_due_jobs()) == {
        "presence",
        "escalation",
        "snooze",
        "backlog",
        "queue_places",
        "email_unread",
        "email",
        "webhooks",
        "report_facts",
        "retention_closed",
        "retention_purged",
        "retention_unused_contacts",
        "retention_emails",
        "retention_webhook_deliveries",
        "retention_presence_log",
    }
    assert set(run_due_jobs()) == {
        "presence",
        "escalation",
        "snooze",
        "backlog",
        "queue_places",
        "email_unread",
        "email",
        "webhooks",
        "report_facts",
    }  # retention: once an hour
    assert set(tasks.retention()) == {
        "retention_closed",
        "retention_purged",
        "retention_unused_contacts",
        "retention_emails",
        "retention_webhook_deliveries",
        "retention_presence_log",
    }


@pytest.mark.django_db
def test_backlog_sweep_job_assigns_waiting_conversations():
    branch = make_branch()
    inbox = make_inbox(branch)
    waiting = start(inbox)
    assert waiting.assignee is None
    operator = make_user(branch=branch)
    connect(operator)
    assert run_due_jobs()["backlog"] == 1
    waiting.refresh_from_db()
    assert waiting.assignee == operator


@pytest.mark.django_db
def test_tick_runs_passes_and_hands_over(settings):
    settings.MESSENGER_TICK_SECONDS = 0.2
    result = tasks.tick(run_seconds=0.5)
    assert result["passes"] >= 2 and cache.get(tasks.TICK_LOCK_KEY) is None
    assert cache.get(tasks.LAST_TICK_KEY)
    # A running tick (the lock is held) is asked to hand over; a tick that cannot get it gives up.
    cache.add(tasks.TICK_LOCK_KEY, "someone-else", timeout=60)
    assert tasks.tick(run_seconds=0.5) == {"passes": 0, "skipped": True}
    assert cache.get(tasks.TICK_HANDOVER_KEY)
    cache.delete(tasks.TICK_LOCK_KEY)


@pytest.mark.django_db
def test_setup_schedules_is_idempotent():
    from django_q.models import Schedule

    out = StringIO()
    call_command("setup_schedules", stdout=out)
    call_command("setup_schedules", stdout=out)
    assert Schedule.objects.filter(name__startswith="messenger.").count() == 3
    assert out.getvalue().count("unchanged") == 3
    tick = Schedule.objects.get(name="messenger.tick")
    assert (tick.func, tick.schedule_type, tick.minutes, tick.repeats) == ("messenger.tasks.tick", "I", 1, -1)
    Schedule.objects.filter(name="messenger.retention").update(func="old.path")
    call_command("setup_schedules", stdout=out)
    assert Schedule.objects.get(name="messenger.retention").func == "messenger.tasks.retention"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_jobs_are_safe_to_run_concurrently(settings):
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    inbox = make_inbox(make_branch())
    until = timezone.now() + timedelta(minutes=5)
    snoozed = [start(inbox) for _ in range(10)]
    resolved = [start(inbox) for _ in range(10)]
    with transaction.atomic():
        for conversation in snoozed:
            do_change_status(
                conversation=lock_conversation(conversation.pk),
                status="snoozed",
                actor=Actor.system(),
                snoozed_until=until,
            )
        for conversation in resolved:
            do_change_status(conversation=lock_conversation(conversation.pk), status="resolved", actor=Actor.system())
    Conversation.objects.filter(pk__in=[c.pk for c in resolved]).update(resolved_at=timezone.now() - timedelta(days=30))
    barrier, totals, errors = threading.Barrier(4), [], []

    def worker() -> None:
        try:
            barrier.wait()
            totals.append((do_wake_snoozed(now=until), do_close_resolved()))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    assert sum(t[0] for t in totals) == 10 and sum(t[1] for t in totals) == 10
    assert ActivityEvent.objects.filter(verb="conversation.status", payload__to="closed").count() == 10
    assert ActivityEvent.objects.filter(verb="conversation.status", actor_label="snooze").count() == 10
