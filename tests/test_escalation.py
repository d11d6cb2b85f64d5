"""Escalation with a controlled clock: the chain, opening stops it, supervisors alerted, the
fallback branch, parallel sweeps on PostgreSQL, and one real ``qcluster`` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from messenger.actions.assignment import do_escalate_due
from messenger.actions.conversations import do_mark_opened
from messenger.actions.locks import lock_conversation
from messenger.actions.messages import send_operator_message
from messenger.models import ActivityEvent, Conversation, ConversationEvent, Message
from messenger.realtime.groups import STAFF_ALL, branch_group
from tests.factories import make_branch, make_inbox, make_user
from tests.live import ROOT, server_env
from tests.test_routing_helpers import capture_broadcasts, connect, heartbeat_all, is_postgres, start


def due_time(conversation: Conversation, seconds: float = 1):
    conversation.refresh_from_db()
    return conversation.escalation_deadline + timedelta(seconds=seconds)


@pytest.mark.django_db
def test_not_opened_in_time_goes_to_the_next_operator(monkeypatch, django_capture_on_commit_callbacks):
    branch = make_branch()
    inbox = make_inbox(branch)
    first, second = make_user(branch=branch), make_user(branch=branch)
    connect(first)
    conversation = start(inbox)
    assert conversation.assignee == first
    assert conversation.escalation_deadline == conversation.assignee_assigned_at + timedelta(seconds=240)
    connect(second)
    assert do_escalate_due(now=conversation.escalation_deadline - timedelta(seconds=1)) == 0
    now = due_time(conversation)
    heartbeat_all(now)
    frames = capture_broadcasts(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        assert do_escalate_due(now=now) == 1
    conversation.refresh_from_db()
    assert conversation.assignee == second and conversation.escalation_count == 1
    assert conversation.escalation_deadline == now + timedelta(seconds=240)
    entry = conversation.routing_log[-1]
    assert entry["step"] == "escalated" and entry["escalation_step"] == 1 and entry["excluded"] == [first.pk]
    assert entry["reason"] == "not opened within 240 s" and entry["from"]["id"] == first.pk
    audit = ActivityEvent.objects.get(verb="assignment.escalated", conversation=conversation)
    assert audit.actor_label == "escalation"
    sent = frames.of_type("assignment.escalated")
    assert branch_group(branch.pk) in {group for groups, _ in sent for group in groups}
    frame = sent[0][1]
    assert frame["data"]["step"] == 1 and frame["data"]["to"]["id"] == second.pk
    note = Message.objects.get(conversation=conversation, content_attributes__kind="escalation")
    assert note.direction == "internal" and "not opened within 240 s" in note.body
    # The same pass again (another worker, a retry) changes nothing.
    assert do_escalate_due(now=now) == 0


@pytest.mark.django_db
def test_opening_or_replying_stops_escalation_for_good():
    branch = make_branch()
    inbox = make_inbox(branch)
    first, second = make_user(branch=branch), make_user(branch=branch)
    connect(first)
    opened, answered = start(inbox), start(inbox)
    connect(second)
    do_mark_opened(conversation=lock_conversation(opened.pk), user=first)
    send_operator_message(conversation=lock_conversation(answered.pk), user=first, client_id="r1", body="Hello")
    later = timezone.now() + timedelta(hours=5)
    heartbeat_all(later)
    assert do_escalate_due(now=later) == 0
    for conversation in (opened, answered):
        conversation.refresh_from_db()
        assert conversation.assignee == first and conversation.escalation_deadline is None


@pytest.mark.django_db
def test_inbox_timeout_setting():
    branch = make_branch()
    inbox = make_inbox(branch, settings={"escalation": {"timeout_seconds": 30}})
    operator = make_user(branch=branch)
    connect(operator)
    conversation = start(inbox)
    assert (conversation.escalation_deadline - conversation.assignee_assigned_at).total_seconds() == 30


@pytest.mark.django_db
def test_nobody_eligible_queues_and_alerts_supervisors(monkeypatch, django_capture_on_commit_callbacks):
    branch = make_branch()
    inbox = make_inbox(branch)
    only = make_user(branch=branch)
    connect(only)
    conversation = start(inbox)
    now = due_time(conversation)
    heartbeat_all(now)
    frames = capture_broadcasts(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        assert do_escalate_due(now=now) == 1
    conversation.refresh_from_db()
    assert conversation.assignee is None and conversation.escalation_deadline is None
    assert conversation.routing_log[-1]["step"] == "escalation_queued"
    assert conversation.routing_log[-1]["why"] == "no eligible operator"
    [(groups, alert)] = frames.of_type("supervisor.alert")
    assert groups == [STAFF_ALL]
    assert alert["data"] == {
        "kind": "escalation",
        "conversation_id": conversation.pk,
        "branch_id": branch.pk,
        "step": 1,
        "reason": "no eligible operator",
    }
    assert ActivityEvent.objects.filter(verb="assignment.escalation_queued", conversation=conversation).exists()
    # The backlog does not hand it straight back to the operator who let it lapse.
    from messenger.actions.assignment import do_backlog_sweep

    assert do_backlog_sweep(branch_id=branch.pk, now=now) == 0
    other = make_user(branch=branch)
    connect(other, at=now)
    assert do_backlog_sweep(branch_id=branch.pk, now=now) == 1
    conversation.refresh_from_db()
    assert conversation.assignee == other


@pytest.mark.django_db
def test_chain_max_steps_then_queue_then_fallback_branch(settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.MESSENGER_ESCALATION_MAX_STEPS = 2
    night = make_branch("Night")
    day = make_branch("Day", fallback_branch=night)
    inbox = make_inbox(day)
    a, b, c = (make_user(branch=day) for _ in range(3))
    rescuer = make_user(branch=night)
    for user in (a, b, c, rescuer):
        connect(user)
    conversation = start(inbox)
    chain = [conversation.assignee_id]
    frames = capture_broadcasts(monkeypatch)
    for _step in range(2):
        now = due_time(conversation)
        heartbeat_all(now)
        assert do_escalate_due(now=now) == 1
        conversation.refresh_from_db()
        chain.append(conversation.assignee_id)
    assert all(x != y for x, y in zip(chain, chain[1:], strict=False))  # never the same one twice in a row
    assert conversation.escalation_count == 2
    now = due_time(conversation)
    heartbeat_all(now)
    with django_capture_on_commit_callbacks(execute=True):
        assert do_escalate_due(now=now) == 1
    conversation.refresh_from_db()
    steps = [entry["step"] for entry in conversation.routing_log]
    assert steps[-2:] == ["escalation_queued", "transferred"]
    assert conversation.branch == night and conversation.assignee == rescuer
    assert conversation.routing_log[-1]["reason"] == "escalation fallback"
    [(_, alert)] = frames.of_type("supervisor.alert")
    assert alert["data"]["step"] == 3 and alert["data"]["reason"] == "2 escalation steps without an answer"
    # Back in a chain in the fallback branch, it never bounces back.
    now = due_time(conversation)
    heartbeat_all(now)
    assert do_escalate_due(now=now) == 1
    conversation.refresh_from_db()
    assert conversation.branch == night and conversation.assignee is None


@pytest.mark.django_db
def test_operator_disconnecting_releases_unopened_chats_at_once():
    from messenger.actions.presence import do_disconnect

    branch = make_branch()
    inbox = make_inbox(branch)
    leaving, staying = make_user(branch=branch), make_user(branch=branch)
    socket = connect(leaving)
    conversation = start(inbox)
    connect(staying)
    do_disconnect(user=leaving, channel_name=socket.channel_name)
    conversation.refresh_from_db()
    assert conversation.assignee == staying and conversation.routing_log[-1]["step"] == "reassigned"


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_parallel_sweeps_escalate_once():
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    branch = make_branch()
    inbox = make_inbox(branch)
    operators = [make_user(branch=branch, max_concurrent=50) for _ in range(4)]
    connect(operators[0])
    conversations = [start(inbox) for _ in range(20)]
    for user in operators[1:]:
        connect(user)
    now = max(due_time(c) for c in conversations)
    heartbeat_all(now)
    barrier, results, errors = threading.Barrier(6), [], []

    def sweep() -> None:
        try:
            barrier.wait()
            results.append(do_escalate_due(now=now))
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=sweep) for _ in range(6)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == [] and sum(results) == 20
    for conversation in conversations:
        conversation.refresh_from_db()
        assert conversation.escalation_count == 1 and conversation.assignee_id != operators[0].pk
    assert ActivityEvent.objects.filter(verb="assignment.escalated").count() == 20
    assert ConversationEvent.objects.filter(type="assignment.escalated").count() == 20


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_real_qcluster_escalates_within_seconds_of_the_deadline():
    if not is_postgres() or not os.environ.get("REDIS_URL"):
        pytest.skip("needs PostgreSQL and Redis: the cluster is a separate process sharing both")
    from django.core.cache import cache

    from messenger.tasks import LAST_TICK_KEY

    call_command("setup_schedules")
    branch = make_branch()
    inbox = make_inbox(branch, settings={"escalation": {"timeout_seconds": 10}})
    first, second = make_user(branch=branch), make_user(branch=branch)
    connect(first)
    env = server_env(
        {"MESSENGER_TICK_SECONDS": "1", "MESSENGER_Q_WORKERS": "2", "MESSENGER_PRESENCE_TIMEOUT_SECONDS": "600"}
    )
    log_path = ROOT / "artifacts" / "qcluster-escalation.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers are children: stopped together below
        )
    try:
        cache.delete(LAST_TICK_KEY)
        deadline_for_tick = time.monotonic() + 75  # q2 polls its schedules every 30 s
        while cache.get(LAST_TICK_KEY) is None:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline_for_tick, "no tick from the cluster"
            time.sleep(0.5)
        conversation = start(inbox)
        connect(second)
        assert conversation.assignee == first
        waited_until = time.monotonic() + 10 + 15
        while time.monotonic() < waited_until:
            conversation.refresh_from_db()
            if conversation.escalation_count:
                break
            time.sleep(0.2)
        assert conversation.assignee == second, "not escalated within 15 s of the deadline"
        escalated_at = ActivityEvent.objects.get(verb="assignment.escalated", conversation=conversation).created_at
        entry = conversation.routing_log[-1]
        assert entry["escalation_step"] == 1
        lateness = (escalated_at - datetime.fromisoformat(entry["deadline"])).total_seconds()
        print(f"\nESCALATION LATENESS {lateness:.2f} s")
        assert 0 <= lateness <= 15
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(1)  # the workers' database sessions end with them
