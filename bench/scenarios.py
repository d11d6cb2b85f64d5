"""Scenarios beyond steady chat, against one real Messenger server on PostgreSQL + Redis.

    .venv/bin/python bench/scenarios.py idle --sockets 10000
    .venv/bin/python bench/scenarios.py reconnect --sockets 500
    .venv/bin/python bench/scenarios.py dashboard --conversations 10000 --messages 1000000

* ``idle``      — N visitor sockets held open on one daphne process: server RSS per socket.
* ``reconnect`` — N visitors in N conversations; every socket drops, operators keep writing, and
  all reconnect within 10 s and resume: every message must arrive exactly once.
* ``dashboard`` — list and history latency of the operator REST endpoints with many rows.
* ``visitors``  — N visitor sockets over two daphne processes: how soon a supervisor's live list
  holds them all, its ``GET /api/operator/visitors/`` latency meanwhile, the ``visitors.*`` frames
  the supervisor's socket gets (at most one a second), and how soon the list empties when they leave.

The visitors of ``idle`` and ``visitors`` only look: no contact rows, as bootstrap leaves a new
visitor until they write (``--stored``: visitors who wrote before). Those of ``reconnect`` write
first, so they are made with their rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import RESULTS, Servers, bench_inbox, percentile, rss_mib, server_env, service_arguments, setup_django  # noqa: E402


def make_visitors(count: int, *, stored: bool = True) -> tuple[str, list[str]]:
    """An inbox and ``count`` visitor session tokens, made in bulk (no HTTP round trips): stored
    visitors (contact and contact-inbox rows, as after their first message) or, ``stored=False``,
    visitors who only look (no rows: a self-signed secret, as bootstrap gives a new visitor)."""
    from messenger.models import Contact, ContactInbox
    from messenger.tokens import issue_session_token, new_visitor_token

    Contact.objects.all().delete()
    inbox = bench_inbox()
    if not stored:
        return inbox.widget_token, [
            issue_session_token(contact_inbox_id=None, inbox_id=inbox.pk, pubsub_token=new_visitor_token(inbox.pk))
            for _ in range(count)
        ]
    contacts = Contact.objects.bulk_create([Contact() for _ in range(count)], batch_size=2000)
    links = ContactInbox.objects.bulk_create([ContactInbox(contact=c, inbox=inbox) for c in contacts], batch_size=2000)
    if not all(link.pk for link in links):  # SQLite before 3.35 returns no ids
        links = list(ContactInbox.objects.filter(inbox=inbox).order_by("id"))
    tokens = [
        issue_session_token(contact_inbox_id=link.pk, inbox_id=inbox.pk, pubsub_token=link.pubsub_token)
        for link in links
    ]
    return inbox.widget_token, tokens


async def open_sockets(port: int, widget_token: str, tokens: list[str], concurrency: int = 200) -> list[Any]:
    import websockets

    sockets: list[Any] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(token: str) -> None:
        async with semaphore:
            socket = await websockets.connect(
                f"ws://127.0.0.1:{port}/ws/widget/?widget_token={widget_token}&token={token}",
                origin="http://localhost",
                compression=None,
                open_timeout=60,
                ping_interval=None,
            )
            await socket.recv()  # hello
            sockets.append(socket)

    await asyncio.gather(*(one(token) for token in tokens))
    return sockets


def scenario_idle(args: argparse.Namespace) -> dict[str, Any]:
    setup_django(args)
    widget_token, tokens = make_visitors(args.sockets, stored=args.stored)
    servers = Servers()
    try:
        port = servers.start(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "project.asgi:application"],
            server_env(args),
            "/health/",
            "idle",
        )
        pid = servers.processes[0].pid
        baseline = rss_mib(pid)

        async def run() -> dict[str, Any]:
            started = time.perf_counter()
            sockets = await open_sockets(port, widget_token, tokens)
            opened = time.perf_counter() - started
            await asyncio.sleep(5)
            held = rss_mib(pid)
            alive = sum(1 for s in sockets if s.state.name == "OPEN")
            for socket in sockets:
                await socket.close()
            return {
                "sockets": len(sockets),
                "alive_after_5s": alive,
                "open_seconds": round(opened, 1),
                "rss_baseline_mib": baseline,
                "rss_held_mib": held,
            }

        result = asyncio.run(run())
    finally:
        servers.stop()
    result["kib_per_socket"] = round(
        (result["rss_held_mib"] - result["rss_baseline_mib"]) * 1024 / max(result["sockets"], 1), 1
    )
    return result


def scenario_reconnect(args: argparse.Namespace) -> dict[str, Any]:
    """Drop every visitor socket, write to every conversation meanwhile, reconnect within 10 s."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.test import Client as DjangoClient

    from messenger.models import AgentProfile, AgentStatus, Branch, Message

    widget_token, tokens = make_visitors(args.sockets)
    branch = Branch.objects.get(name="Bench")
    operator, _ = get_user_model().objects.get_or_create(username="bench-op-0")
    AgentProfile.objects.update_or_create(
        user=operator, defaults={"branch": branch, "status": AgentStatus.ONLINE, "max_concurrent": 1_000_000}
    )
    client = DjangoClient()
    client.force_login(operator)
    cookie = client.cookies["sessionid"].value
    servers = Servers()
    env = server_env(args)
    try:
        ports = [
            servers.start(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "project.asgi:application"],
                env,
                "/health/",
                "reconnect",
            )
            for _ in range(args.servers)
        ]

        async def run() -> dict[str, Any]:
            import websockets

            sockets = []
            conversations: list[int] = []
            last_ids: list[int] = []
            for index, token in enumerate(tokens):
                port = ports[index % len(ports)]
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/widget/?widget_token={widget_token}&token={token}",
                    origin="http://localhost",
                    compression=None,
                )
                await ws.recv()
                await ws.send(
                    json.dumps({"type": "message.send", "ref": "s", "client_id": uuid.uuid4().hex, "body": "hi"})
                )
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("ref") == "s":
                        conversations.append(frame["data"]["conversation_id"])
                        break
                sockets.append(ws)
            await asyncio.sleep(1)
            for ws in sockets:
                last = 0
                while True:
                    try:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 0.05))
                    except TimeoutError:
                        break
                    last = max(last, frame.get("id") or 0)
                last_ids.append(last)
            # Everyone drops at once.
            for ws in sockets:
                ws.transport.abort()
            operator_ws = await websockets.connect(
                f"ws://127.0.0.1:{ports[0]}/ws/operator/",
                origin=f"http://127.0.0.1:{ports[0]}",
                additional_headers={"Cookie": f"sessionid={cookie}"},
            )
            await operator_ws.recv()
            written: dict[int, list[str]] = {c: [] for c in conversations}
            refs = 0
            for round_ in range(args.messages):
                for conversation in conversations:
                    client_id = f"o-{round_}-{uuid.uuid4().hex[:12]}"
                    written[conversation].append(client_id)
                    refs += 1
                    await operator_ws.send(
                        json.dumps(
                            {
                                "type": "message.send",
                                "ref": str(refs),
                                "conversation_id": conversation,
                                "client_id": client_id,
                                "body": f"while you were away {round_}",
                            }
                        )
                    )
            acked = 0
            while acked < refs:  # every write stored before anyone comes back
                frame = json.loads(await operator_ws.recv())
                if frame.get("type") in ("ack", "error") and frame.get("ref"):
                    acked += 1
            await asyncio.sleep(1)
            # Reconnect storm: all within 10 s, in random order, each resumes from its last id.
            started = time.perf_counter()
            received: dict[int, list[str]] = {c: [] for c in conversations}

            async def come_back(index: int) -> float:
                await asyncio.sleep(random.random() * 9)
                began = time.perf_counter()
                port = ports[index % len(ports)]
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/widget/?widget_token={widget_token}&token={tokens[index]}",
                    origin="http://localhost",
                    compression=None,
                    open_timeout=30,
                )
                hello = json.loads(await ws.recv())
                conversation = conversations[index]
                await ws.send(json.dumps({"type": "resume", "conversation_id": conversation, "after": last_ids[index]}))
                applied = last_ids[index]
                # The protocol's client rules: drop ids already applied; stop at resume.done.
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "resume.done":
                        break
                    if frame.get("conversation_id") != conversation or not frame.get("id") or frame["id"] <= applied:
                        continue
                    applied = frame["id"]
                    if frame["type"] == "message.created" and frame["data"]["message"]["direction"] == "out":
                        received[conversation].append(frame["data"]["message"]["client_id"])
                assert frame["last_id"] >= hello["last_id"]
                await ws.close()
                return time.perf_counter() - began

            durations = await asyncio.gather(*(come_back(i) for i in range(len(tokens))))
            elapsed = time.perf_counter() - started
            await operator_ws.close()
            missing = sum(len(set(written[c]) - set(received[c])) for c in conversations)
            duplicates = sum(len(received[c]) - len(set(received[c])) for c in conversations)
            return {
                "visitors": len(tokens),
                "messages_written_while_away": sum(len(v) for v in written.values()),
                "storm_seconds": round(elapsed, 1),
                "resume_ms": {f"p{q}": round((percentile(list(durations), q) or 0) * 1000, 1) for q in (50, 95, 99)},
                "missing_after_resume": missing,
                "duplicates_after_resume": duplicates,
            }

        result = asyncio.run(run())
    finally:
        servers.stop()
    stored = Message.objects.filter(client_id__startswith="o-").count()
    result["stored_operator_messages"] = stored
    return result


def scenario_dashboard(args: argparse.Namespace) -> dict[str, Any]:
    """Fill the database, then time the operator list and history endpoints over HTTP."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client as DjangoClient
    from django.utils import timezone

    from messenger.models import AgentProfile, AgentRole, Contact, ContactInbox, Conversation, Message

    inbox = bench_inbox()
    branch = inbox.branch
    if Conversation.objects.filter(inbox=inbox).count() < args.conversations:
        Contact.objects.all().delete()
        now = timezone.now()
        contacts = Contact.objects.bulk_create(
            [Contact(name=f"Visitor {i}") for i in range(args.conversations)], batch_size=5000
        )
        links = ContactInbox.objects.bulk_create(
            [ContactInbox(contact=c, inbox=inbox) for c in contacts], batch_size=5000
        )
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(
                    inbox=inbox,
                    branch=branch,
                    contact=c,
                    contact_inbox=link,
                    last_activity_at=now - timezone.timedelta(seconds=i),
                    status="open" if i % 3 else "resolved",
                )
                for i, (c, link) in enumerate(zip(contacts, links, strict=True))
            ],
            batch_size=5000,
        )
        per = max(args.messages // args.conversations, 1)
        batch: list[Message] = []
        for conversation in conversations:
            for j in range(per):
                batch.append(
                    Message(
                        conversation=conversation,
                        direction="in" if j % 2 == 0 else "out",
                        sender_type="contact" if j % 2 == 0 else "bot",
                        body=f"message {j}",
                        content=f"message {j}",
                        created_at=now,
                    )
                )
            if len(batch) >= 20000:
                Message.objects.bulk_create(batch, batch_size=20000)
                batch.clear()
        Message.objects.bulk_create(batch, batch_size=20000)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    supervisor, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    AgentProfile.objects.update_or_create(user=supervisor, defaults={"branch": branch, "role": AgentRole.SUPERVISOR})
    client = DjangoClient()
    client.force_login(supervisor)
    conversation_id = (
        Conversation.objects.filter(inbox=inbox).order_by("-last_activity_at").values_list("pk", flat=True).first()
    )
    timings: dict[str, list[float]] = {"list": [], "history": []}
    for _ in range(args.repeat):
        for name, url in (
            ("list", "/api/operator/conversations/?tab=all"),
            ("history", f"/api/operator/conversations/{conversation_id}/messages/"),
        ):
            started = time.perf_counter()
            response = client.get(url)
            timings[name].append(time.perf_counter() - started)
            if response.status_code != 200:
                return {"error": f"{url} answered {response.status_code}"}
    return {
        "conversations": Conversation.objects.filter(inbox=inbox).count(),
        "messages": Message.objects.filter(conversation__inbox=inbox).count(),
        **{
            f"{name}_ms": {
                "p50": round(statistics.median(v) * 1000, 1),
                "p95": round((percentile(v, 95) or 0) * 1000, 1),
            }
            for name, v in timings.items()
        },
    }


def scenario_visitors(args: argparse.Namespace) -> dict[str, Any]:
    """N visitor sockets, half on each of two processes; a supervisor watches from the first."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client as DjangoClient

    from messenger.models import AgentProfile, AgentRole

    widget_token, tokens = make_visitors(args.sockets, stored=args.stored)
    cache.clear()  # the benchmark's Redis database: yesterday's live list and throttles
    supervisor, _ = get_user_model().objects.get_or_create(username="bench-supervisor")
    AgentProfile.objects.update_or_create(user=supervisor, defaults={"branch": None, "role": AgentRole.SUPERVISOR})
    client = DjangoClient()
    client.force_login(supervisor)
    cookie = client.cookies["sessionid"].value
    servers = Servers()
    try:
        ports = [
            servers.start(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}", "project.asgi:application"],
                server_env(args),
                "/health/",
                f"visitors-{index}",
            )
            for index in range(2)
        ]
        pids = [process.pid for process in servers.processes]
        baselines = [rss_mib(pid) for pid in pids]
        result = asyncio.run(_visitors_run(args, ports, widget_token, tokens, cookie))
        result["rss_mib"] = [round(rss_mib(pid) - base, 1) for pid, base in zip(pids, baselines, strict=True)]
    finally:
        servers.stop()
    return result


def _watch_supervisor(port: int, cookie: str, out: Any, stop: Any) -> None:
    """In a process of its own: the supervisor's socket; every ``visitors.*`` frame timed as it
    arrives, handed back when ``stop`` is set."""
    from websockets.sync.client import connect as connect_sync

    frames: list[tuple[float, str, int]] = []
    with connect_sync(
        f"ws://127.0.0.1:{port}/ws/operator/?presence=0",
        origin=f"http://127.0.0.1:{port}",
        additional_headers={"Cookie": f"sessionid={cookie}"},
        max_size=2**24,
    ) as socket:
        out.put(json.loads(socket.recv())["type"])
        while not stop.is_set():
            try:
                frame = json.loads(socket.recv(timeout=0.5))
            except TimeoutError:
                continue
            if frame["type"].startswith("visitors."):
                changes = frame.get("data") or {}
                size = len(changes.get("upserts", ())) + len(changes.get("removed", ()))
                frames.append((time.perf_counter(), frame["type"], size))
    out.put(frames)


async def _visitors_run(
    args: argparse.Namespace, ports: list[int], widget_token: str, tokens: list[str], cookie: str
) -> dict[str, Any]:
    import urllib.request

    import websockets

    def listed() -> tuple[int, float]:
        request = urllib.request.Request(  # noqa: S310 — the benchmark's own server
            f"http://127.0.0.1:{ports[0]}/api/operator/visitors/?limit=200",
            headers={"Cookie": f"sessionid={cookie}", "Accept": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            count = json.loads(response.read())["count"]
        return count, time.perf_counter() - started

    async def get() -> tuple[int, float]:
        return await asyncio.to_thread(listed)

    # The supervisor's socket is read by a process of its own: this one is busy opening thousands of
    # sockets, and frames waiting for its turn would be timed when it got to them.
    import multiprocessing

    frames_queue: Any = multiprocessing.get_context("fork").Queue()
    stop = multiprocessing.get_context("fork").Event()
    watching = multiprocessing.get_context("fork").Process(
        target=_watch_supervisor, args=(ports[0], cookie, frames_queue, stop), daemon=True
    )
    watching.start()
    frames_queue.get(timeout=30)  # its hello
    half = len(tokens) // 2
    failures: list[str] = []

    async def open_counted(port: int, part: list[str]) -> list[Any]:
        """Like ``open_sockets``, counting the refused handshakes instead of failing on one."""
        opened: list[Any] = []
        semaphore = asyncio.Semaphore(args.concurrency)

        async def one(token: str) -> None:
            async with semaphore:
                try:
                    socket = await websockets.connect(
                        f"ws://127.0.0.1:{port}/ws/widget/?widget_token={widget_token}&token={token}",
                        origin="http://localhost",
                        compression=None,
                        open_timeout=60,
                        ping_interval=None,
                    )
                    hello = json.loads(await socket.recv())
                    if hello["type"] != "hello":
                        failures.append(hello.get("code", hello["type"]))
                        await socket.close()
                        return
                    opened.append(socket)
                except Exception as error:  # noqa: BLE001 — counted and reported
                    failures.append(type(error).__name__)

        await asyncio.gather(*(one(token) for token in part))
        return opened

    started = time.perf_counter()
    opening = asyncio.gather(open_counted(ports[0], tokens[:half]), open_counted(ports[1], tokens[half:]))
    latencies: list[float] = []
    full_at = None
    while True:
        count, latency = await get()
        latencies.append(latency)
        if count >= len(tokens) - len(failures) and opening.done():
            full_at = time.perf_counter()
            break
        await asyncio.sleep(0.5)
    first, second = await opening
    opened = time.perf_counter() - started
    steady: list[float] = []
    for _ in range(args.repeat):
        count, latency = await get()
        steady.append(latency)
    leaving = time.perf_counter()
    await asyncio.gather(*(socket.close() for socket in first))
    closed = time.perf_counter() - leaving
    empty_at = None
    while time.perf_counter() - leaving < 120:
        count, latency = await get()
        if count <= len(second):
            empty_at = time.perf_counter()
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)
    await asyncio.gather(*(socket.close() for socket in second))
    await asyncio.sleep(2)
    stop.set()
    frames: list[tuple[float, str, int]] = frames_queue.get(timeout=30)
    watching.join(timeout=10)
    times = [at for at, _, _ in frames]
    duration = times[-1] - times[0] if len(times) > 1 else 0.0
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    return {
        "sockets": len(tokens),
        "refused": len(failures),
        "concurrency_per_process": args.concurrency,
        "servers": 2,
        "open_seconds": round(opened, 1),
        "list_complete_seconds": round(full_at - started, 1) if full_at else None,
        "list_ms_while_opening": {
            "p50": round(statistics.median(latencies) * 1000, 1),
            "p95": round((percentile(latencies, 95) or 0) * 1000, 1),
        },
        "list_ms_steady": {
            "p50": round(statistics.median(steady) * 1000, 1),
            "p95": round((percentile(steady, 95) or 0) * 1000, 1),
        },
        "half_left_close_seconds": round(closed, 2),
        "half_left_listed_within_seconds": round(empty_at - leaving, 2) if empty_at else None,
        "supervisor_frames": len(frames),
        "supervisor_resets": sum(1 for _, kind, _ in frames if kind == "visitors.reset"),
        "supervisor_changes_in_frames": sum(n for _, _, n in frames),
        "supervisor_frames_seconds": round(duration, 1),
        "min_seconds_between_frames": round(min(gaps), 3) if gaps else None,
        "frames_less_than_0_9_s_apart": sum(1 for gap in gaps if gap < 0.9),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["idle", "reconnect", "dashboard", "visitors"])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument(
        "--messages", type=int, default=3, help="reconnect: messages written to each conversation while away"
    )
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--conversations", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=50, help="visitors: handshakes in flight per process")
    parser.add_argument(
        "--stored",
        action="store_true",
        help="idle, visitors: visitors with contact rows (who wrote before) instead of visitors who only look",
    )
    service_arguments(parser)
    args = parser.parse_args()
    if args.scenario == "dashboard" and args.messages == 3:
        args.messages = 1_000_000
    RESULTS.mkdir(exist_ok=True)
    scenarios = {
        "idle": scenario_idle,
        "reconnect": scenario_reconnect,
        "dashboard": scenario_dashboard,
        "visitors": scenario_visitors,
    }
    result = scenarios[args.scenario](args)
    result["scenario"] = args.scenario
    if args.scenario in ("idle", "visitors"):
        result["visitors_stored"] = args.stored
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(json.dumps(result, indent=2))
    (RESULTS / f"{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
