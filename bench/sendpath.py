"""The send paths alone: queries, wall time and CPU per socket command, in one thread.

    .venv/bin/python bench/sendpath.py                 # 1000 visitor and 1000 operator sends, 100 starts
    .venv/bin/python bench/sendpath.py --calls 300
    .venv/bin/python bench/sendpath.py --history 5000   # the operator has resolved 5 000 conversations
    .venv/bin/python bench/sendpath.py --webhooks 1     # a webhook subscribes to message.created

Runs ``check_visitor_command`` / ``check_operator_command`` for ``message.send`` exactly as the
sockets do (throttles, resend check, sequence bump, inserts, commit) against the benchmark's
PostgreSQL database and Redis, without a server: what one send costs before any contention, in
this process (wall and CPU) and in PostgreSQL (the CPU of the connection's server process); and a
conversation's first message, which starts it (a tenth as many). The after-commit publish is left
out (it belongs to the event loop, which ``bench/run.py`` measures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    RESULTS,
    bench_inbox,
    cpu_seconds,
    server_env,
    service_arguments,
    setup_django,
    vacuum,
)


def postgres_backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument(
        "--history", type=int, default=0, help="resolved conversations the operator has at least, for the starts"
    )
    parser.add_argument(
        "--webhooks",
        type=int,
        default=0,
        help="active webhooks of the inbox subscribed to message.created (each send writes their outbox rows)",
    )
    service_arguments(parser)
    args = parser.parse_args()
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE messenger_bench"],
        capture_output=True,
        check=False,
    )
    # The servers' generous limits: the throttles are counted, never refused.
    for key, value in server_env(args).items():
        if key.startswith("MESSENGER_"):
            os.environ[key] = value
    setup_django(args)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import messenger.realtime.broadcast as broadcast
    from messenger.access import staff_scope
    from messenger.actions import commands
    from messenger.actions.contacts import do_become_contact
    from messenger.actions.widget import do_bootstrap, session_visitor
    from messenger.models import AgentProfile, AgentStatus, ContactInbox
    from messenger.protocol import Command

    broadcast._send = lambda groups, text: None  # no event loop here: the publish is not measured

    inbox = bench_inbox()
    from messenger.models import Webhook

    # Never sent here (no tick runs): the cost measured is the outbox rows the sends write.
    Webhook.objects.filter(inbox=inbox).delete()
    for number in range(args.webhooks):
        Webhook.objects.create(inbox=inbox, url=f"https://hooks.example.com/{number}", events=["message.created"])
    user, _ = get_user_model().objects.get_or_create(username="bench-sendpath")
    AgentProfile.objects.update_or_create(
        user=user, defaults={"branch": inbox.branch, "status": AgentStatus.ONLINE, "max_concurrent": 1_000_000}
    )

    def new_visitor() -> Any:
        boot = do_bootstrap(
            widget_token=inbox.widget_token,
            pubsub_token=None,
            page={"url": "http://localhost/"},
            origin="http://localhost",
            ip="127.0.0.9",
        )
        # A visitor who wrote before (their rows made by their first message), as the widget
        # socket loads them at connect (``widget.visitor_connect``).
        do_become_contact(session_visitor(boot["session_token"], inbox))
        session = ContactInbox.objects.select_related("contact", "inbox", "inbox__branch").get(
            pubsub_token=boot["pubsub_token"]
        )
        return commands.VisitorContext(contact_inbox=session, ip="127.0.0.9", page={"origin": "http://localhost"})

    def send_as(context: Any) -> Any:
        fields = {"type": "message.send", "client_id": uuid.uuid4().hex, "body": "hello, a question about my order"}
        return commands.check_visitor_command(context, Command(type="message.send", ref="1", fields=fields))

    visitor = new_visitor()
    operator = commands.OperatorContext(user=user, scope=staff_scope(user))

    def visitor_send() -> Any:
        return send_as(visitor)

    visitor_send()  # starts the conversation
    conversation_id = visitor.conversation.pk

    def operator_send() -> Any:
        fields = {
            "type": "message.send",
            "conversation_id": conversation_id,
            "client_id": uuid.uuid4().hex,
            "body": "an answer from the operator",
        }
        return commands.check_operator_command(operator, Command(type="message.send", ref="1", fields=fields))

    operator_send()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "calls": args.calls,
        "webhooks": args.webhooks,
    }
    for name, send in (("visitor", visitor_send), ("operator", operator_send)):
        vacuum(args)  # the same tidy row for each path: autovacuum is off on this machine
        with CaptureQueriesContext(connection) as queries:
            send()
        backend = postgres_backend_pid()
        started, cpu_started, pg_started = time.perf_counter(), time.process_time(), cpu_seconds(backend)
        for _ in range(args.calls):
            send()
        results[name] = {
            "queries": len(queries.captured_queries),
            "statements": [q["sql"][:60] for q in queries.captured_queries],
            "wall_ms": round(1000 * (time.perf_counter() - started) / args.calls, 3),
            "cpu_ms": round(1000 * (time.process_time() - cpu_started) / args.calls, 3),
            # PostgreSQL's own CPU for the same sends: its server process for this connection.
            "postgres_cpu_ms": round(1000 * (cpu_seconds(backend) - pg_started) / args.calls, 3),
        }
    # A conversation's first message: the start (routing, assignment, the row and its events)
    # with it, for sessions bootstrapped beforehand.
    starts = max(1, args.calls // 10)
    sessions = [new_visitor() for _ in range(starts + 1)]
    # The operator is live, so each start is assigned to them (fairness ranking, claim); the
    # conversations of earlier runs count as their history, resolved.
    from django.utils import timezone

    from messenger.models import AgentConnection, Conversation

    Conversation.objects.filter(assignee=user, status__in=["open", "pending"]).exclude(pk=conversation_id).update(
        status="resolved", resolved_at=timezone.now()
    )
    resolved = Conversation.objects.filter(assignee=user, status="resolved").count()
    if resolved < args.history:
        template = Conversation.objects.get(pk=conversation_id)
        Conversation.objects.bulk_create(
            (
                Conversation(
                    inbox_id=template.inbox_id,
                    contact_id=template.contact_id,
                    contact_inbox_id=template.contact_inbox_id,
                    branch_id=template.branch_id,
                    status="resolved",
                    assignee=user,
                    last_activity_at=template.last_activity_at,
                    resolved_at=timezone.now(),
                )
                for _ in range(args.history - resolved)
            ),
            batch_size=2000,
        )
    vacuum(args)
    AgentConnection.objects.update_or_create(
        channel_name="bench-sendpath!1", defaults={"user": user, "last_heartbeat": timezone.now()}
    )

    with CaptureQueriesContext(connection) as queries:
        send_as(sessions.pop())
    backend = postgres_backend_pid()
    started, cpu_started, pg_started = time.perf_counter(), time.process_time(), cpu_seconds(backend)
    for context in sessions:
        send_as(context)
    results["start"] = {
        "calls": starts,
        "operator_history": Conversation.objects.filter(assignee=user, status="resolved").count(),
        "assigned": Conversation.objects.filter(assignee=user, status="open").exclude(pk=conversation_id).count(),
        "queries": len(queries.captured_queries),
        "wall_ms": round(1000 * (time.perf_counter() - started) / starts, 3),
        "cpu_ms": round(1000 * (time.process_time() - cpu_started) / starts, 3),
        "postgres_cpu_ms": round(1000 * (cpu_seconds(backend) - pg_started) / starts, 3),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"sendpath-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
