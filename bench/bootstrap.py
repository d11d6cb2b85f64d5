"""A new visitor's first contact, one operation at a time: bootstrap, the socket, the first message.

    .venv/bin/python bench/bootstrap.py --runs 300
    .venv/bin/python bench/bootstrap.py --runs 300 --database-url postgres://postgres@127.0.0.1:5432/messenger_bench_2

One daphne process (the benchmark's settings, PostgreSQL, the Redis cache and channel layer), an
inbox with one live operator, and one client doing one thing at a time (no contention: what one
visitor waits for). For each of ``--runs`` new visitors, timed from the request to its answer:

* ``bootstrap``     — ``POST /api/widget/bootstrap/`` without a ``pubsub_token`` (a new visitor);
* ``connect``       — the widget socket with its session token, until ``hello``;
* ``first_message`` — ``message.send`` until its ack: the conversation starts (routed, assigned to
  the operator); for a visitor with no rows yet, they are made first;
* ``second_message`` — the next ``message.send`` on the same socket (the conversation known).

Where the code leaves a new visitor without rows (``contacts.do_become_contact`` exists), every
other visitor is ``stored``: their rows are made in this process between bootstrap and the socket
(as for a visitor who wrote before), so the first messages of both kinds are measured in one run.
Before that (every bootstrap made the rows) all visitors are ``new`` and stored. Then the same
bootstrap and first message once in this process: their SQL statements and Redis commands.
Run it on two checkouts in alternation (each on its own database) to compare them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    RESULTS,
    Servers,
    bench_inbox,
    percentile,
    server_env,
    service_arguments,
    setup_django,
    vacuum,
)

ORIGIN = "http://localhost"
PAGE = {"url": "http://localhost/pricing", "title": "Pricing", "user_agent": "Mozilla/5.0 (X11; Linux) Firefox/133.0"}


def create_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'CREATE DATABASE "{name}"'],
        capture_output=True,
        check=False,
    )


def bootstrap(port: int, widget_token: str) -> tuple[dict[str, Any], float]:
    request = urllib.request.Request(  # noqa: S310 — the benchmark's own server
        f"http://127.0.0.1:{port}/api/widget/bootstrap/",
        data=json.dumps({"widget_token": widget_token, "page": PAGE}).encode(),
        headers={"Content-Type": "application/json", "Origin": ORIGIN},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        body = json.loads(response.read())
    return body, time.perf_counter() - started


def send_and_wait(socket: Any, ref: str) -> float:
    """``message.send`` until the frame answering ``ref`` (its ack); refused sends fail the run."""
    fields = {"type": "message.send", "ref": ref, "client_id": uuid.uuid4().hex, "body": "Hello, is shipping free?"}
    started = time.perf_counter()
    socket.send(json.dumps(fields))
    while True:
        frame = json.loads(socket.recv(timeout=30))
        if frame.get("ref") == ref:
            if frame["type"] != "ack":
                raise RuntimeError(f"message.send answered {frame}")
            return time.perf_counter() - started


def in_process(inbox: Any, redis_url: str) -> dict[str, Any]:
    """One new visitor's bootstrap and first message in this process: statements and Redis commands."""
    import redis
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import messenger.realtime.broadcast as broadcast
    from messenger.actions import commands
    from messenger.actions.widget import do_bootstrap, visitor_connect
    from messenger.protocol import Command

    broadcast._send = lambda groups, text: None  # no event loop here: the publish is not counted
    server = redis.Redis.from_url(redis_url)

    def counted(call: Any) -> tuple[Any, list[str], int]:
        before = server.info("stats")["total_commands_processed"]
        with CaptureQueriesContext(connection) as queries:
            value = call()
        # Less the INFO that read the count before (the count includes the INFO reading it).
        commands_sent = server.info("stats")["total_commands_processed"] - before - 1
        return value, [q["sql"][:70] for q in queries.captured_queries], commands_sent

    boot, boot_sql, boot_redis = counted(
        lambda: do_bootstrap(
            widget_token=inbox.widget_token, pubsub_token=None, page=PAGE, origin=ORIGIN, ip="127.0.0.9"
        )
    )
    visitor = visitor_connect(
        widget_token=inbox.widget_token, token=boot["session_token"], origin=ORIGIN, ip="127.0.0.9"
    ).contact_inbox
    context = commands.VisitorContext(contact_inbox=visitor, ip="127.0.0.9", page={"origin": ORIGIN})
    fields = {"type": "message.send", "client_id": uuid.uuid4().hex, "body": "Hello, is shipping free?"}
    command = Command(type="message.send", ref="1", fields=fields)

    def first_message() -> Any:
        if context.contact_inbox.pk is None:  # as the socket does (consumers.VisitorConsumer.handle)
            commands.check_become_contact(context, command)
        return commands.check_visitor_command(context, command)

    _, send_sql, send_redis = counted(first_message)
    return {
        "bootstrap": {"queries": len(boot_sql), "statements": boot_sql, "redis_commands": boot_redis},
        "first_message": {"queries": len(send_sql), "statements": send_sql, "redis_commands": send_redis},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="new visitors, one after another")
    service_arguments(parser)
    args = parser.parse_args()
    create_database(args.database_url)
    # The servers' generous limits, also for the bootstrap in this process.
    for key, value in server_env(args).items():
        if key.startswith("MESSENGER_"):
            os.environ[key] = value
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.utils import timezone
    from websockets.sync.client import connect

    from messenger.actions import contacts
    from messenger.models import AgentConnection, AgentProfile, AgentStatus, Contact

    rowless = hasattr(contacts, "do_become_contact")
    if rowless:
        from messenger.actions.widget import session_visitor

    Contact.objects.all().delete()
    AgentConnection.objects.all().delete()
    cache.clear()
    inbox = bench_inbox()
    operator, _ = get_user_model().objects.get_or_create(username="bench-op-0")
    AgentProfile.objects.update_or_create(
        user=operator, defaults={"branch": inbox.branch, "status": AgentStatus.ONLINE, "max_concurrent": 1_000_000}
    )
    # A live operator: each start is assigned to them.
    AgentConnection.objects.create(channel_name="bench-bootstrap!1", user=operator, last_heartbeat=timezone.now())
    vacuum(args)
    statements = in_process(inbox, args.redis_url)

    timings: dict[str, dict[str, list[float]]] = {}
    servers = Servers()
    try:
        port = servers.start(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "project.asgi:application"],
            server_env(args),
            "/health/",
            "bootstrap",
        )
        for run in range(args.runs + 10):  # the first 10 warm up (connections, prepared statements)
            kind = "stored" if rowless and run % 2 else "new"
            boot, boot_seconds = bootstrap(port, inbox.widget_token)
            if kind == "stored":
                contacts.do_become_contact(session_visitor(boot["session_token"], inbox))
            started = time.perf_counter()
            with connect(
                f"ws://127.0.0.1:{port}/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}",
                origin=ORIGIN,
                compression=None,
            ) as socket:
                hello = json.loads(socket.recv(timeout=30))
                connect_seconds = time.perf_counter() - started
                if hello["type"] != "hello":
                    raise RuntimeError(f"the socket answered {hello}")
                first = send_and_wait(socket, "1")
                second = send_and_wait(socket, "2")
            if run < 10:
                continue
            kept = timings.setdefault(kind, {})
            for name, seconds in (
                ("bootstrap", boot_seconds),
                ("connect", connect_seconds),
                ("first_message", first),
                ("second_message", second),
            ):
                kept.setdefault(name, []).append(seconds)
    finally:
        servers.stop()
    stored_rows = Contact.objects.count()
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "code": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip(),
        "rowless_visitors": rowless,
        "runs": args.runs,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "contacts_stored": stored_rows,
        **{
            kind: {
                name: {
                    "n": len(values),
                    **{f"p{q}": round((percentile(values, q) or 0) * 1000, 2) for q in (50, 95)},
                }
                for name, values in by_name.items()
            }
            for kind, by_name in timings.items()
        },
        "in_process": statements,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bootstrap-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
