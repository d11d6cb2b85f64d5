"""Delivery benchmark: Messenger against its references, with the same clients, in one run.

    .venv/bin/python bench/run.py                      # every target, default scenario
    .venv/bin/python bench/run.py --quick              # the short version (`make bench`)
    .venv/bin/python bench/run.py --targets messenger --visitors 200 --rate 500 --servers 2
    .venv/bin/python bench/run.py --targets messenger,persist --hop-times   # where a send waits
    .venv/bin/python bench/run.py --targets messenger,persist --burst --seconds 5   # all at once
    .venv/bin/python bench/run.py --targets messenger,persist --rate 500 --visitors 500 --no-replies
    .venv/bin/python bench/run.py --targets messenger,persist --rate 250 --visitors 250 --rounds 5

Targets, all on loopback with PostgreSQL and Redis (channels-redis pub/sub layer):

* ``messenger`` — this project: widget bootstrap, visitor and operator sockets, every message
  persisted with its event row and committed before any client sees it.
* ``relay``     — a bare Channels relay (bench/relay_asgi.py): the framework's floor.
* ``persist``   — the same relay INSERTing and committing each frame first: the persist floor.
* ``socketio``  — a minimal Node.js socket.io relay (bench/node/relay.js).

N visitors in N conversations send ``rate`` messages/s in total; M operators receive them; the
first operator answers each one (not with ``--no-replies``: every message is then a visitor's).
Reported per target: visitor→operator and operator→visitor delivery latency (p50/p95/p99), messages/s, loss and duplicates (for Messenger also checked
against the database), server RSS, the CPU of the servers, PostgreSQL, Redis and the load
generator; then Messenger's ratios to each reference. Results go to
bench/results/ as JSON and a PNG of the latency distributions.

One run's p99 is made by its slowest seconds, and on a shared two-core machine those vary from run
to run more than a change moves them: ``--rounds N`` runs the targets N times in alternation and
adds each round's figures and their spread (fewest, median, most) to the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_SECRET = "bench-secret-not-for-production-0123456789"
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return 0.0


def service_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds of every PostgreSQL and Redis process on this machine, by pid."""
    found: dict[str, dict[int, float]] = {"postgres": {}, "redis": {}}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name = stat.read_text().split("(", 1)[1].split(")", 1)[0]
        except (OSError, IndexError):
            continue
        service = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis") else None
        if service:
            pid = int(stat.parent.name)
            found[service][pid] = cpu_seconds(pid)
    return found


def service_cpu_since(before: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds PostgreSQL and Redis spent since ``before`` (processes started since count whole)."""
    now = service_cpu()
    return {
        service: round(sum(cpu - before[service].get(pid, 0.0) for pid, cpu in pids.items()), 1)
        for service, pids in now.items()
    }


def server_env(args: argparse.Namespace) -> dict[str, str]:
    generous = "10000000/min"
    return {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DEBUG": "0",
        "SECRET_KEY": BENCH_SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "MESSENGER_CHANNEL_PREFIX": "bench",
        "MESSENGER_WIDGET_SEND_RATE_PER_SESSION": generous,
        "MESSENGER_WIDGET_SEND_RATE_PER_IP": generous,
        "MESSENGER_CONVERSATION_FLOOD_LIMIT": generous,
        "MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP": generous,
        "MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_TOKEN": generous,
        "MESSENGER_WIDGET_POLL_RATE_PER_SESSION": generous,
        "MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP": "100000000",
    }


class Servers:
    """Server processes of one target; stopped (killed if they linger) on exit."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.ports: list[int] = []

    def start(self, command: list[str], env: dict[str, str], health: str | None, name: str) -> int:
        port = free_port()
        RESULTS.mkdir(exist_ok=True)
        log = open(RESULTS / f"{name}-{port}.log", "w")  # noqa: SIM115 — lives as long as the process
        argv = [part.replace("{port}", str(port)) for part in command]
        process = subprocess.Popen(argv, cwd=ROOT, env={**env, "PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        self.ports.append(port)
        deadline = time.time() + 30
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log.name}")
            try:
                if health:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2)  # noqa: S310
                else:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not start")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Tally:
    sent_at: dict[str, float] = field(default_factory=dict)
    # Wall-clock send times, and for Messenger each answered message's two halves: send → the
    # server's write began (the message's created_at), and that → the operator had it.
    sent_wall: dict[str, float] = field(default_factory=dict)
    v2o_before_write: list[float] = field(default_factory=list)
    v2o_after_write: list[float] = field(default_factory=list)
    v2o: list[float] = field(default_factory=list)
    v2o_at: list[float] = field(default_factory=list)  # when each of v2o arrived (perf_counter)
    o2v: list[float] = field(default_factory=list)
    seen_by_operators: dict[str, int] = field(default_factory=dict)
    seen_by_visitors: dict[str, int] = field(default_factory=dict)


# --- clients: one adapter per target; each yields normalised frames {client_id, direction, conversation}


class Client:
    async def send(self, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def frames(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def close(self) -> None:
        await self.ws.close()


class MessengerClient(Client):
    def __init__(self, ws: Any, operator: bool) -> None:
        self.ws = ws
        self.operator = operator

    async def send(self, frame: dict[str, Any]) -> None:
        if self.operator:
            await self.ws.send(
                json.dumps(
                    {
                        "type": "message.send",
                        "conversation_id": frame["conversation"],
                        "client_id": frame["client_id"],
                        "body": frame["body"],
                    }
                )
            )
        else:
            await self.ws.send(
                json.dumps({"type": "message.send", "client_id": frame["client_id"], "body": frame["body"]})
            )

    async def frames(self):  # type: ignore[no-untyped-def]
        async for text in self.ws:
            frame = json.loads(text)
            if frame.get("type") == "message.created":
                message = frame["data"]["message"]
                yield {
                    "client_id": message.get("client_id") or "",
                    "direction": message["direction"],
                    "conversation": message["conversation_id"],
                    "created_at": message.get("created_at"),
                }


class RelayClient(Client):
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def frames(self):  # type: ignore[no-untyped-def]
        async for text in self.ws:
            yield json.loads(text)


class SocketIOClient(Client):
    """socket.io v4 over a plain WebSocket: "0" open, "40" connect, "42[event, data]", "2"/"3" ping."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str) -> SocketIOClient:
        import websockets

        ws = await websockets.connect(url, compression=None, max_queue=None)
        await ws.recv()  # engine.io open
        await ws.send("40")
        while not (await ws.recv()).startswith("40"):
            pass
        return cls(ws)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send("42" + json.dumps(["msg", frame]))

    async def frames(self):  # type: ignore[no-untyped-def]
        async for text in self.ws:
            if text == "2":
                await self.ws.send("3")
            elif text.startswith("42"):
                yield json.loads(text[2:])[1]


async def open_clients(
    target: str, ports: list[int], args: argparse.Namespace, setup: dict[str, Any]
) -> tuple[list[tuple[Client, int | None]], list[Client]]:
    """(visitors with their conversation when known, operators) for ``target``."""
    import aiohttp
    import websockets

    options = {"compression": None, "max_queue": None, "open_timeout": 30}
    visitors: list[tuple[Client, int | None]] = []
    operators: list[Client] = []
    if target == "messenger":
        async with aiohttp.ClientSession() as http:
            for index in range(args.visitors):
                port = ports[index % len(ports)]
                async with http.post(
                    f"http://127.0.0.1:{port}/api/widget/bootstrap/",
                    json={"widget_token": setup["widget_token"]},
                    headers={"Origin": "http://localhost"},
                ) as response:
                    token = (await response.json())["session_token"]
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/widget/?widget_token={setup['widget_token']}&token={token}",
                    origin="http://localhost",
                    **options,
                )
                await ws.recv()  # hello
                visitors.append((MessengerClient(ws, operator=False), None))
        for index, cookie in enumerate(setup["cookies"]):
            port = ports[index % len(ports)]
            ws = await websockets.connect(
                f"ws://127.0.0.1:{port}/ws/operator/",
                origin=f"http://127.0.0.1:{port}",
                additional_headers={"Cookie": f"sessionid={cookie}"},
                **options,
            )
            hello = json.loads(await ws.recv())
            assert hello["type"] == "hello", hello
            operators.append(MessengerClient(ws, operator=True))
    elif target in ("relay", "persist"):
        for index in range(args.visitors):
            ws = await websockets.connect(
                f"ws://127.0.0.1:{ports[index % len(ports)]}/{target}/?role=visitor&conversation={index + 1}", **options
            )
            visitors.append((RelayClient(ws), index + 1))
        for index in range(args.operators):
            ws = await websockets.connect(
                f"ws://127.0.0.1:{ports[index % len(ports)]}/{target}/?role=operator", **options
            )
            operators.append(RelayClient(ws))
    elif target == "socketio":
        for index in range(args.visitors):
            client = await SocketIOClient.connect(
                f"ws://127.0.0.1:{ports[0]}/socket.io/?EIO=4&transport=websocket&role=visitor&conversation={index + 1}"
            )
            visitors.append((client, index + 1))
        for _ in range(args.operators):
            operators.append(
                await SocketIOClient.connect(
                    f"ws://127.0.0.1:{ports[0]}/socket.io/?EIO=4&transport=websocket&role=operator"
                )
            )
    await asyncio.sleep(1)  # let group subscriptions settle before the clock starts
    return visitors, operators


async def drive(target: str, ports: list[int], args: argparse.Namespace, setup: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    visitors, operators = await open_clients(target, ports, args, setup)
    stop = asyncio.Event()
    interval = args.visitors / args.rate

    async def operator_loop(index: int, client: Client) -> None:
        try:
            async for frame in client.frames():
                client_id = frame.get("client_id", "")
                if frame.get("direction") != "in" or client_id not in tally.sent_at:
                    continue
                key = f"{index}:{client_id}"
                tally.seen_by_operators[key] = tally.seen_by_operators.get(key, 0) + 1
                # Each conversation has one answering operator; everyone else just receives.
                if frame["conversation"] % len(operators) == index and tally.seen_by_operators[key] == 1:
                    tally.v2o.append(time.perf_counter() - tally.sent_at[client_id])
                    tally.v2o_at.append(time.perf_counter())
                    if frame.get("created_at") and client_id in tally.sent_wall:
                        written = datetime.fromisoformat(frame["created_at"].replace("Z", "+00:00")).timestamp()
                        tally.v2o_before_write.append(written - tally.sent_wall[client_id])
                        tally.v2o_after_write.append(time.time() - written)
                    if args.replies and not stop.is_set():
                        reply_id = "r-" + uuid.uuid4().hex
                        tally.sent_at[reply_id] = time.perf_counter()
                        await client.send(
                            {
                                "client_id": reply_id,
                                "direction": "out",
                                "conversation": frame["conversation"],
                                "body": "an answer",
                            }
                        )
        except Exception:  # noqa: BLE001 — the socket closed at the end
            return

    async def visitor_reader(client: Client) -> None:
        try:
            async for frame in client.frames():
                client_id = frame.get("client_id", "")
                if frame.get("direction") == "out" and client_id in tally.sent_at:
                    tally.seen_by_visitors[client_id] = tally.seen_by_visitors.get(client_id, 0) + 1
                    if tally.seen_by_visitors[client_id] == 1:
                        tally.o2v.append(time.perf_counter() - tally.sent_at[client_id])
        except Exception:  # noqa: BLE001
            return

    async def visitor_send(client: Client, conversation: int | None) -> None:
        client_id = "v-" + uuid.uuid4().hex
        tally.sent_at[client_id] = time.perf_counter()
        tally.sent_wall[client_id] = time.time()
        await client.send(
            {
                "client_id": client_id,
                "direction": "in",
                "conversation": conversation,
                "body": "hello, I have a question",
            }
        )

    async def visitor_writer(client: Client, conversation: int | None) -> None:
        if args.burst:  # one message each, all at the same moment
            await visitor_send(client, conversation)
            return
        await asyncio.sleep(random.random() * interval)
        while not stop.is_set():
            await visitor_send(client, conversation)
            await asyncio.sleep(interval)

    if args.warmup and target == "messenger":
        # Steady chat: every conversation exists, and its operator has answered once, before the
        # clock starts (starting 100+ conversations at once is the burst scenario, measured with
        # --warmup 0).

        welcomed = [0]

        async def answer_once(index: int, client: Client) -> None:
            async for frame in client.frames():
                if (
                    frame.get("direction") == "in"
                    and frame.get("client_id", "").startswith("w-")
                    and frame["conversation"] % len(operators) == index
                ):
                    answer = {"client_id": "w-" + uuid.uuid4().hex, "direction": "out", "body": "welcome"}
                    await client.send(answer | {"conversation": frame["conversation"]})

        async def welcome(client: Client) -> None:
            async for frame in client.frames():
                if frame.get("direction") == "out" and frame.get("client_id", "").startswith("w-"):
                    welcomed[0] += 1

        answering = [asyncio.ensure_future(answer_once(i, c)) for i, c in enumerate(operators)]
        answering += [asyncio.ensure_future(welcome(c)) for c, _ in visitors]
        for _ in range(2):  # the second message of each goes the way every later one does
            for client, conversation in visitors:
                await client.send(
                    {
                        "client_id": "w-" + uuid.uuid4().hex,
                        "direction": "in",
                        "conversation": conversation,
                        "body": "hi",
                    }
                )
            await asyncio.sleep(args.warmup / 2)
        # The clock starts once the warm-up is over: every answer delivered. Its backlog (two
        # rounds of a message from everyone at once, the first of each starting a conversation)
        # used to spill into the first seconds measured.
        settled = time.perf_counter() + 120
        while welcomed[0] < 2 * len(visitors) and time.perf_counter() < settled:
            await asyncio.sleep(0.1)
        if welcomed[0] < 2 * len(visitors):
            print(f"warm-up: {welcomed[0]} of {2 * len(visitors)} answers arrived", file=sys.stderr)
        await asyncio.sleep(1)
        for task in answering:
            task.cancel()
        await asyncio.gather(*answering, return_exceptions=True)
    tasks = [asyncio.ensure_future(operator_loop(i, c)) for i, c in enumerate(operators)]
    tasks += [asyncio.ensure_future(visitor_reader(c)) for c, _ in visitors]
    for log in hop_logs(setup.get("hop_log")):
        log.unlink()  # the warm-up's hops are not measured
    client_lags: list[float] = []

    async def client_loop_lag() -> None:
        # How late this load generator's own loop wakes a 50 ms timer: its lateness adds to every
        # latency it measures.
        while not stop.is_set():
            due = time.perf_counter() + 0.05
            await asyncio.sleep(0.05)
            client_lags.append(time.perf_counter() - due)

    tasks.append(asyncio.ensure_future(client_loop_lag()))
    cpu_before = [cpu_seconds(pid) for pid in setup.get("pids", [])]
    services_before = service_cpu()
    client_cpu_before = time.process_time()
    started = time.perf_counter()
    writers = [asyncio.ensure_future(visitor_writer(c, conv)) for c, conv in visitors]
    await asyncio.sleep(args.seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    await asyncio.gather(*writers)
    await asyncio.sleep(args.drain)
    cpu = [round(cpu_seconds(pid) - before, 1) for pid, before in zip(setup.get("pids", []), cpu_before, strict=False)]
    client_cpu = round(time.process_time() - client_cpu_before, 1)
    services = service_cpu_since(services_before)
    for client in [c for c, _ in visitors] + operators:
        await client.close()
    for task in tasks:
        task.cancel()
    visitor_ids = [k for k in tally.sent_at if k.startswith("v-")]
    reply_ids = [k for k in tally.sent_at if k.startswith("r-")]
    first_operator = {k.split(":", 1)[1] for k in tally.seen_by_operators}
    return {
        "visitor_messages": len(visitor_ids),
        "messages_per_s": round(len(visitor_ids) / elapsed, 1),
        "delivered_per_s": round(len(tally.seen_by_operators) / elapsed, 1),
        "v2o_ms": {f"p{q}": round((percentile(tally.v2o, q) or 0) * 1000, 2) for q in (50, 95, 99)},
        "v2o_ms_by_quarter": [
            round((percentile(part, 50) or 0) * 1000, 1)
            for part in (tally.v2o[i * len(tally.v2o) // 4 : (i + 1) * len(tally.v2o) // 4] for i in range(4))
        ],
        "v2o_ms_by_second": by_second(tally, visitor_ids),
        "v2o_p99_ms_by_second": by_second(tally, visitor_ids, 99),
        "o2v_ms": {f"p{q}": round((percentile(tally.o2v, q) or 0) * 1000, 2) for q in (50, 95, 99)},
        **(
            {
                f"v2o_{part}_write_ms": {f"p{q}": round((percentile(values, q) or 0) * 1000, 2) for q in (50, 95, 99)}
                for part, values in (("before", tally.v2o_before_write), ("after", tally.v2o_after_write))
            }
            if tally.v2o_before_write
            else {}
        ),
        "lost_at_operators": len(set(visitor_ids) - first_operator),
        "lost_replies": len(set(reply_ids) - set(tally.seen_by_visitors)),
        "duplicates": sum(1 for n in tally.seen_by_operators.values() if n > 1)
        + sum(1 for n in tally.seen_by_visitors.values() if n > 1),
        "server_cpu_s": cpu,
        "client_cpu_s": client_cpu,
        "client_loop_lag_ms": {f"p{q}": round((percentile(client_lags, q) or 0) * 1000, 2) for q in (50, 90, 99)},
        # The same window's CPU of PostgreSQL and Redis (every process of each on the machine).
        "postgres_cpu_s": services["postgres"],
        "redis_cpu_s": services["redis"],
        "_v2o": tally.v2o,
        "_visitor_ids": visitor_ids,
    }


def by_second(tally: Tally, visitor_ids: list[str], rank: float = 50) -> list[float]:
    """The v→o p50 (or another percentile, ms) of the messages that arrived in each second of the
    run: whether a tail is spread over the run or made in a few seconds."""
    if not visitor_ids or not tally.v2o_at:
        return []
    start = min(tally.sent_at[k] for k in visitor_ids)
    seconds: dict[int, list[float]] = {}
    for latency, at in zip(tally.v2o, tally.v2o_at, strict=True):
        seconds.setdefault(int(at - start), []).append(latency)
    return [round((percentile(seconds.get(i, []), rank) or 0) * 1000, 1) for i in range(max(seconds) + 1)]


def service_arguments(parser: argparse.ArgumentParser) -> None:
    """--database-url and --redis-url: the benchmark's own database and Redis database."""
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/messenger_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))


def setup_django(args: argparse.Namespace) -> None:
    """Django in this process, on the benchmark database, with the servers' secret; migrated."""
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "SECRET_KEY": BENCH_SECRET,
            "DEBUG": "0",
            "MESSENGER_CHANNEL_PREFIX": "bench",
        }
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_inbox() -> Any:
    """The benchmark's branch and inbox (the page origin "localhost" allowed)."""
    from messenger.models import Branch, Inbox

    branch, _ = Branch.objects.get_or_create(name="Bench")
    inbox, _ = Inbox.objects.get_or_create(
        name="Bench", defaults={"branch": branch, "settings": {"security": {"allowed_domains": ["localhost"]}}}
    )
    return inbox


def prepare_messenger(args: argparse.Namespace) -> dict[str, Any]:
    """Fresh demo-like data in the benchmark database: an inbox, M online operators with sessions."""
    setup_django(args)
    from django.contrib.auth import get_user_model
    from django.test import Client as DjangoClient

    from messenger.models import AgentConnection, AgentProfile, AgentStatus, Contact

    Contact.objects.all().delete()
    AgentConnection.objects.all().delete()
    inbox = bench_inbox()
    branch = inbox.branch
    cookies = []
    for index in range(args.operators):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-op-{index}")
        AgentProfile.objects.update_or_create(
            user=user, defaults={"branch": branch, "status": AgentStatus.ONLINE, "max_concurrent": 1_000_000}
        )
        client = DjangoClient()
        client.force_login(user)
        cookies.append(client.cookies["sessionid"].value)
    return {"widget_token": inbox.widget_token, "cookies": cookies}


def vacuum(args: argparse.Namespace) -> None:
    """Every target starts from tidy tables: the earlier targets' and runs' dead rows are
    vacuumed. PostgreSQL does that by itself with autovacuum, which this machine runs with off."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def stored_check(visitor_ids: list[str]) -> dict[str, int]:
    from messenger.models import Message

    stored = list(Message.objects.filter(client_id__in=visitor_ids).values_list("client_id", flat=True))
    return {
        "lost_in_database": len(set(visitor_ids) - set(stored)),
        "duplicates_in_database": len(stored) - len(set(stored)),
    }


def plot(results: dict[str, dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, result in results.items():
        values = sorted(v * 1000 for v in result.get("_v2o", []))
        if values:
            axis.plot(values, [i / len(values) for i in range(len(values))], label=name)
    axis.set_xscale("log")
    axis.set_xlabel("visitor → operator latency, ms (log)")
    axis.set_ylabel("fraction of messages")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def hop_logs(prefix: Path | None) -> list[Path]:
    return sorted(prefix.parent.glob(prefix.name + ".*")) if prefix else []


def hop_summary(prefix: Path) -> dict[str, Any]:
    """The servers' MESSENGER_DB_HOP_LOG lines of the measured window, per command: how long a
    send waited for a database thread (or connection), how long it took there, and its CPU (ms)."""
    samples: dict[str, list[tuple[float, ...]]] = {}
    for log in hop_logs(prefix):
        for line in log.read_text().splitlines():
            name, *values = line.split()
            samples.setdefault(name, []).append(tuple(1000 * float(v) for v in values))
        log.unlink()
    # loop_lag: how late the servers' event loops woke a 50 ms timer; publish_delay: a commit's
    # hand-off to the loop → its frame published; fanout_delay: published → forwarded to a socket.
    summary: dict[str, Any] = {"lines": {name: len(rows) for name, rows in sorted(samples.items())}} | {
        f"{name}_ms": {
            f"p{q}": round(percentile([row[0] for row in samples.get(name, [])], q) or 0, 2) for q in (50, 90, 99)
        }
        for name in ("loop_lag", "publish_delay", "fanout_delay")
    }
    # gc_pause: the cyclic collector's pauses of the servers (the second value is the generation).
    pauses = samples.get("gc_pause", [])
    summary["gc_pause_ms"] = {
        f"generation {generation}": {
            "count": len(rows := [row[0] for row in pauses if round(row[1]) == generation]),
            "p50": round(percentile(rows, 50) or 0, 2),
            "max": round(max(rows, default=0), 2),
        }
        for generation in (0, 1, 2)
    }
    # The sends on the event loop (messenger/db/steps.py): "queue" is the wait for one of the
    # loop's connections, "wall" the transaction; they have no thread CPU of their own.
    for name in ("check_visitor_command", "check_operator_command", "visitor_send_async", "operator_send_async"):
        rows = samples.get(name, [])
        summary[name] = {"count": len(rows)} | {
            f"{part}_ms": {f"p{q}": round(percentile([r[i] for r in rows], q) or 0, 2) for q in (50, 90, 99)}
            for i, part in enumerate(("queue", "wall", "cpu"))
        }
    return summary


def round_figures(result: dict[str, Any]) -> dict[str, Any]:
    """What one round of one target is compared by."""
    return {
        "v2o_p50_ms": result["v2o_ms"]["p50"],
        "v2o_p99_ms": result["v2o_ms"]["p99"],
        "o2v_p99_ms": result["o2v_ms"]["p99"],
        "lost": result["lost_at_operators"] + result["lost_replies"] + result.get("lost_in_database", 0),
        "duplicates": result["duplicates"] + result.get("duplicates_in_database", 0),
        "cpu_s": round(
            sum(result["server_cpu_s"]) + result["postgres_cpu_s"] + result["redis_cpu_s"] + result["client_cpu_s"], 1
        ),
        "v2o_p99_ms_by_second": result["v2o_p99_ms_by_second"],
    }


def spread(figures: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Fewest, median and most of each latency, and of the CPU, over the rounds."""
    return {
        key: [min(values), percentile(values, 50), max(values)]
        for key in ("v2o_p50_ms", "v2o_p99_ms", "cpu_s")
        if (values := sorted(figure[key] for figure in figures))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="messenger,persist,relay,socketio")
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--operators", type=int, default=4)
    parser.add_argument("--rate", type=float, default=200, help="visitor messages per second, all visitors together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--drain", type=float, default=3, help="seconds to wait for stragglers after the senders stop")
    parser.add_argument("--servers", type=int, default=2, help="daphne processes per Python target (one per core)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=5,
        help="seconds after each visitor's first message before measuring (0: measure the start burst)",
    )
    parser.add_argument("--quick", action="store_true", help="the short version: about two minutes for every target")
    parser.add_argument(
        "--no-replies",
        dest="replies",
        action="store_false",
        help="operators do not answer: every persisted message is a visitor's (no o→v latency)",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="every visitor sends one message at the same moment (to a conversation under way; with "
        "--warmup 0 each starts one), then --seconds to deliver them",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the targets this many times, in alternation (spread of p50/p99)"
    )
    parser.add_argument(
        "--hop-times",
        action="store_true",
        help="Messenger's socket commands: time waiting for a database thread, in it, and its CPU",
    )
    service_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.rate, args.seconds = 100, 200, 10
    RESULTS.mkdir(exist_ok=True)
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE messenger_bench"],
        capture_output=True,
        check=False,
    )
    setup = prepare_messenger(args)
    env = server_env(args)
    if args.hop_times:
        setup["hop_log"] = RESULTS / f"hops-{os.getpid()}"
        env["MESSENGER_DB_HOP_LOG"] = str(setup["hop_log"])
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}"]
    commands = {
        "messenger": ([*daphne, "project.asgi:application"], "/health/", args.servers),
        "relay": ([*daphne, "bench.relay_asgi:application"], None, args.servers),
        "persist": ([*daphne, "bench.relay_asgi:application"], None, args.servers),
        "socketio": (["node", "bench/node/relay.js"], None, 1),
    }
    results: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[dict[str, Any]]] = {}
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for target in [t for _ in range(max(1, args.rounds)) for t in targets]:
        if target == "socketio" and not (ROOT / "bench" / "node" / "node_modules").exists():
            if shutil.which("npm") is None:
                print("socketio: npm missing, skipped")
                continue
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT / "bench" / "node", check=True
            )
        command, health, count = commands[target]
        vacuum(args)
        servers = Servers()
        try:
            for _ in range(count):
                servers.start(command, env, health, target)
            setup["pids"] = [p.pid for p in servers.processes]
            result = asyncio.run(drive(target, servers.ports, args, setup))
            result["server_rss_mib"] = [rss_mib(p.pid) for p in servers.processes]
        finally:
            servers.stop()
        if target == "messenger":
            result.update(stored_check(result["_visitor_ids"]))
            if args.hop_times:
                result["db_hops"] = hop_summary(setup["hop_log"])
        results.setdefault(target, result)  # the first round's, in full
        rounds.setdefault(target, []).append(round_figures(result))
        print(target, json.dumps({k: v for k, v in result.items() if not k.startswith("_")}))

    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB",
        "config": {
            k: getattr(args, k)
            for k in ("visitors", "operators", "rate", "seconds", "servers", "warmup", "burst", "replies", "rounds")
        },
        "targets": {name: {k: v for k, v in r.items() if not k.startswith("_")} for name, r in results.items()},
    }
    if args.rounds > 1:
        summary["rounds"] = rounds
        summary["spread"] = {name: spread(figures) for name, figures in rounds.items()}
        if "messenger" in rounds:
            summary["ratios_by_round"] = {
                name: [
                    {rank: round(ours[rank] / max(theirs[rank], 0.001), 2) for rank in ("v2o_p50_ms", "v2o_p99_ms")}
                    for ours, theirs in zip(rounds["messenger"], figures, strict=True)
                ]
                for name, figures in rounds.items()
                if name != "messenger"
            }
    ours = results.get("messenger")
    if ours:
        summary["ratios"] = {
            name: {
                "p50": round(ours["v2o_ms"]["p50"] / max(r["v2o_ms"]["p50"], 0.001), 2),
                "p99": round(ours["v2o_ms"]["p99"] / max(r["v2o_ms"]["p99"], 0.001), 2),
                "throughput": round(ours["delivered_per_s"] / max(r["delivered_per_s"], 0.001), 2),
            }
            for name, r in results.items()
            if name != "messenger"
        }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"run-{stamp}.json").write_text(json.dumps(summary, indent=2))
    if plot(results, RESULTS / f"latency-{stamp}.png"):
        summary["plot"] = f"bench/results/latency-{stamp}.png"
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
