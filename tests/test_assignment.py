"""Fair assignment: fewest open conversations, round-robin ties, capacity, rate limit, backlog,
reassignment of reopened conversations, transfer; concurrency and fairness proven on PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.utils import timezone

from messenger.actions.assignment import (
    do_backlog_sweep,
    do_manual_assign,
    do_release_unopened,
    do_transfer,
    eligible_candidates,
)
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_status
from messenger.actions.locks import lock_conversation
from messenger.actions.presence import do_set_status
from messenger.errors import InvalidInput, NotFound
from messenger.models import ActivityEvent, AgentProfile, AgentStatus, Conversation, ConversationEvent, Message
from messenger.realtime.groups import branch_group
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import capture_broadcasts, connect, heartbeat_all, is_postgres, start


def load(user) -> int:
    return Conversation.objects.filter(assignee=user, status__in=["open", "pending"]).count()


@pytest.mark.django_db
def test_fewest_open_wins_then_round_robin():
    branch = make_branch()
    inbox = make_inbox(branch)
    a, b, c = (make_user(branch=branch, max_concurrent=10) for _ in range(3))
    busy = make_user(branch=branch, status=AgentStatus.BUSY)
    make_user(branch=branch)  # online but no socket: not available
    supervisor = make_user(branch=branch, role="supervisor")
    for user in (a, b, c, busy, supervisor):
        connect(user)
    first = [start(inbox).assignee for _ in range(3)]
    assert set(first) == {a, b, c}  # each once before anyone gets a second
    assert [start(inbox).assignee for _ in range(3)] == first  # then the same rotation
    do_change_status(
        conversation=Conversation.objects.filter(assignee=b).first(), status="resolved", actor=Actor.system()
    )
    conversation = start(inbox)
    assert conversation.assignee == b  # fewest open beats the rotation
    entry = conversation.routing_log[-1]
    assert [row["user_id"] for row in entry["candidates"]] == [b.pk, *[u.pk for u in first if u != b]]
    assert entry["candidates"][0] | {"last_assigned_at": None} == {
        "profile_id": b.agent.pk,
        "user_id": b.pk,
        "open": 1,
        "capacity": 10,
        "status": "online",
        "last_assigned_at": None,
    }
    assert entry["tie_break"] is None and entry["picked_index"] == 0
    assert ActivityEvent.objects.filter(verb="assignment.assigned", conversation=conversation).count() == 1


@pytest.mark.django_db
def test_capacity_is_respected_and_the_queue_is_oldest_first():
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch, max_concurrent=2)
    connect(operator)
    conversations = [start(inbox) for _ in range(4)]
    assert [c.assignee for c in conversations] == [operator, operator, None, None]
    Conversation.objects.filter(pk=conversations[3].pk).update(waiting_since=datetime(2025, 1, 1, tzinfo=UTC))
    Conversation.objects.filter(pk=conversations[2].pk).update(waiting_since=datetime(2025, 1, 2, tzinfo=UTC))
    with_lock = lock_conversation(conversations[0].pk)
    do_change_status(conversation=with_lock, status="resolved", actor=Actor.system())
    assert do_backlog_sweep(branch_id=branch.pk) == 1
    assert Conversation.objects.get(pk=conversations[3].pk).assignee == operator  # waited longest
    assert Conversation.objects.get(pk=conversations[2].pk).assignee is None


@pytest.mark.django_db
def test_resolving_frees_capacity_and_sweeps_the_queue(django_capture_on_commit_callbacks):
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch, max_concurrent=1)
    connect(operator)
    first, waiting = start(inbox), start(inbox)
    assert waiting.assignee is None
    with django_capture_on_commit_callbacks(execute=True):
        do_change_status(conversation=lock_conversation(first.pk), status="resolved", actor=Actor(user=operator))
    waiting.refresh_from_db()
    assert waiting.assignee == operator and waiting.routing_log[-1]["sweep"] == "backlog"


@pytest.mark.django_db
def test_operator_coming_online_takes_the_backlog():
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch, status=AgentStatus.AWAY)
    connect(operator)
    waiting = [start(inbox) for _ in range(2)]
    assert all(c.assignee is None for c in waiting)
    do_set_status(user=operator, status=AgentStatus.ONLINE, actor=Actor(user=operator))
    assert {c.assignee for c in Conversation.objects.filter(pk__in=[c.pk for c in waiting])} == {operator}


@pytest.mark.django_db
def test_reopened_conversation_of_an_offline_assignee_is_reassigned():
    branch = make_branch()
    inbox = make_inbox(branch)
    away, present = make_user(branch=branch), make_user(branch=branch)
    connect(away)
    conversation = start(inbox)
    assert conversation.assignee == away
    do_change_status(conversation=lock_conversation(conversation.pk), status="resolved", actor=Actor.system())
    do_set_status(user=away, status=AgentStatus.OFFLINE, actor=Actor(user=away))
    connect(present)
    do_change_status(conversation=lock_conversation(conversation.pk), status="open", actor=Actor.system())
    conversation.refresh_from_db()
    assert conversation.assignee == present
    assert conversation.routing_log[-1]["step"] == "reassigned" and conversation.routing_log[-1]["excluded"] == [
        away.pk
    ]
    # An available assignee keeps a reopened conversation.
    do_change_status(conversation=lock_conversation(conversation.pk), status="resolved", actor=Actor.system())
    do_change_status(conversation=lock_conversation(conversation.pk), status="open", actor=Actor.system())
    conversation.refresh_from_db()
    assert conversation.assignee == present


@pytest.mark.rate_window
@pytest.mark.django_db
def test_assignment_rate_limit_per_operator(settings):
    settings.MESSENGER_ASSIGNMENT_RATE_LIMIT = "2/min"
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch, max_concurrent=10)
    connect(operator)
    conversations = [start(inbox) for _ in range(3)]
    assert [c.assignee for c in conversations] == [operator, operator, None]
    later = datetime.now(UTC) + timedelta(seconds=61)
    heartbeat_all(later)
    assert do_backlog_sweep(branch_id=branch.pk, now=later) == 1
    settings.MESSENGER_ASSIGNMENT_RATE_LIMIT = ""
    assert eligible_candidates(branch.pk, now=later)[0]["user_id"] == operator.pk


@pytest.mark.django_db
def test_transfer_to_branch_and_to_named_operator(monkeypatch, django_capture_on_commit_callbacks):
    sales, support = make_branch("Sales"), make_branch("Support")
    inbox = make_inbox(sales)
    seller, helper, named = make_user(branch=sales), make_user(branch=support), make_user(branch=support)
    for user in (seller, helper):
        connect(user)
    conversation = start(inbox)
    assert conversation.assignee == seller
    frames = capture_broadcasts(monkeypatch)
    supervisor = make_user(role="supervisor")
    with django_capture_on_commit_callbacks(execute=True):
        do_transfer(conversation=lock_conversation(conversation.pk), actor=Actor(user=supervisor), branch_id=support.pk)
    conversation.refresh_from_db()
    assert (conversation.branch, conversation.assignee) == (support, helper)  # the first free operator there
    audit = ActivityEvent.objects.get(verb="conversation.transferred", conversation=conversation)
    assert audit.actor_user == supervisor and audit.payload["from_branch"] == sales.pk
    assert ActivityEvent.objects.filter(verb="assignment.transferred", conversation=conversation).count() == 1
    groups = [g for groups, frame in frames.sent for g in groups if frame.get("conversation_id") == conversation.pk]
    assert branch_group(sales.pk) in groups and branch_group(support.pk) in groups
    note = Message.objects.filter(conversation=conversation, content_attributes__kind="transfer").get()
    assert note.body == "Transferred to Support" and note.direction == "internal" and note.sender_type == "system"
    assert (
        conversation.routing_log[-1]["reason"] == "transfer" and conversation.routing_log[-1]["to_branch"] == "Support"
    )
    assert conversation.first_reply_created_at is None

    # To a named operator of another branch: the branch follows the operator.
    do_manual_assign(
        conversation=lock_conversation(conversation.pk), assignee_id=seller.pk, actor=Actor(user=supervisor)
    )
    conversation.refresh_from_db()
    assert (conversation.branch, conversation.assignee) == (sales, seller)
    do_transfer(conversation=lock_conversation(conversation.pk), actor=Actor(user=supervisor), assignee_id=named.pk)
    conversation.refresh_from_db()
    assert (conversation.branch, conversation.assignee) == (support, named)  # named: even when not connected
    assert ConversationEvent.objects.filter(conversation=conversation, type="assignment.transferred").count() == 3
    with pytest.raises(NotFound):
        do_transfer(conversation=conversation, actor=Actor(user=supervisor), branch_id=999_999)
    with pytest.raises(InvalidInput):
        do_transfer(conversation=conversation, actor=Actor(user=supervisor))


@pytest.mark.django_db
def test_transfer_to_a_branch_with_nobody_free_queues_it():
    sales, night = make_branch(), make_branch()
    seller = make_user(branch=sales)
    connect(seller)
    conversation = start(make_inbox(sales))
    do_transfer(conversation=lock_conversation(conversation.pk), actor=Actor.system(), branch_id=night.pk)
    conversation.refresh_from_db()
    assert conversation.branch == night and conversation.assignee is None and conversation.escalation_deadline is None
    assert conversation.routing_log[-1]["queue"] is True and conversation.routing_log[-1]["why_queued"] == "no_operator"


@pytest.mark.django_db
def test_fairness_1000_conversations_over_5_operators():
    branch = make_branch()
    inbox = make_inbox(branch)
    operators = [make_user(branch=branch, max_concurrent=1000) for _ in range(5)]
    for user in operators:
        connect(user)
    picks = []
    for index in range(1000):
        if index % 100 == 0:
            # The sockets stay live however long a loaded machine takes for the thousand.
            heartbeat_all(timezone.now())
        picks.append(start(inbox).assignee_id)
    counts = Counter(picks)
    assert sum(counts.values()) == 1000 and set(counts) == {u.pk for u in operators}
    assert max(counts.values()) - min(counts.values()) <= 1
    # Round-robin: every window of five consecutive assignments covers all five operators.
    assert all(len(set(picks[i : i + 5])) == 5 for i in range(0, 1000, 5))


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_parallel_assigners_never_exceed_capacity_nor_double_assign():
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    branch = make_branch()
    inbox = make_inbox(branch)
    operators = [make_user(branch=branch, max_concurrent=7) for _ in range(5)]
    for user in operators:
        connect(user)
    threads, errors = 10, []
    per_thread = 8  # 80 conversations for 35 places
    barrier = threading.Barrier(threads)

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                start(inbox)
        except Exception as error:  # noqa: BLE001 — reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    do_backlog_sweep(branch_id=branch.pk)  # anything left by a claimer that gave up under contention
    loads = {user.pk: load(user) for user in operators}
    assert all(value <= 7 for value in loads.values()), loads
    assert sum(loads.values()) == 35
    assert Conversation.objects.filter(branch=branch).count() == 80
    per_conversation = Counter(
        ActivityEvent.objects.filter(verb="assignment.assigned").values_list("conversation_id", flat=True)
    )
    assert set(per_conversation.values()) == {1}  # never assigned twice
    assert AgentProfile.objects.filter(last_assigned_at__isnull=True, branch=branch).count() == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_parallel_assigners_stay_fair():
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    branch = make_branch()
    inbox = make_inbox(branch)
    operators = [make_user(branch=branch, max_concurrent=1000) for _ in range(5)]
    for user in operators:
        connect(user)
    barrier = threading.Barrier(8)
    errors = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(25):
                start(inbox)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    loads = [load(user) for user in operators]
    assert sum(loads) == 200 and max(loads) - min(loads) <= 1, loads


@pytest.mark.django_db
def test_ranking_operators_reads_their_open_conversations_not_their_history():
    # An operator's load is counted in the index on (assignee, status): the conversations they
    # resolved, however many, are not read each time a new conversation is routed.
    if not is_postgres():
        pytest.skip("table statistics are PostgreSQL's")
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch, max_concurrent=10)
    connect(operator)
    start(inbox)  # open, assigned to the operator
    history = start(inbox)
    Conversation.objects.filter(pk=history.pk).update(status="resolved")
    template = Conversation.objects.get(pk=history.pk)
    Conversation.objects.bulk_create(
        Conversation(
            inbox=inbox,
            contact_id=template.contact_id,
            contact_inbox_id=template.contact_inbox_id,
            branch=branch,
            status="resolved",
            assignee=operator,
            last_activity_at=template.last_activity_at,
        )
        for _ in range(300)
    )

    def conversation_rows_read() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
                "WHERE relname = 'messenger_conversation'"
            )
            return cursor.fetchone()[0]

    with connections["default"].cursor() as cursor:
        cursor.execute("ANALYZE messenger_conversation")
        cursor.execute("SET LOCAL enable_seqscan = off")  # as on a table of many rows
    before = conversation_rows_read()
    candidates = eligible_candidates(branch.pk)
    read = conversation_rows_read() - before
    assert [(row["user_id"], row["open"]) for row in candidates] == [(operator.pk, 1)]
    assert read <= 5, f"{read} conversation rows read to rank one operator with one open conversation"


@pytest.mark.django_db(transaction=True)
def test_a_dashboard_reload_keeps_the_operators_unopened_conversations():
    """A reload closes the dashboard's socket and opens another at about the same moment; the old
    socket's close, handled after the new one connected, hands on nothing. Gone for good, the
    operator's unopened conversations go back to the queue."""
    branch = make_branch()
    inbox = make_inbox(branch)
    olga = make_user(branch=branch)
    old = connect(olga)
    conversation = start(inbox)
    assert conversation.assignee_id == olga.pk
    new = connect(olga)  # the reloaded page's socket
    old.delete()
    do_release_unopened(user=olga, reason="operator disconnected")
    conversation.refresh_from_db()
    assert conversation.assignee_id == olga.pk
    new.delete()
    do_release_unopened(user=olga, reason="operator disconnected")
    conversation.refresh_from_db()
    assert conversation.assignee_id is None
