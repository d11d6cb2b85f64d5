"""Delivery benchmark: N visitors in N conversations and M operators against real daphne servers
backed by PostgreSQL and Redis on loopback.

    .venv/bin/python bench/run.py --visitors 100 --operators 4 --rate 100 --seconds 20 --servers 2

Each visitor sends messages at ``rate / visitors`` per second; every operator reply goes back.
Reported: visitor→operator and operator→visitor delivery latency (p50/p95/p99, measured from the
send to the first frame at the other side), messages/s persisted and delivered, lost and
duplicated messages (compared with the database), server RSS. Results are appended to
bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_SECRET = "bench-secret-not-for-production-0123456789"
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def prepare(args: argparse.Namespace) -> dict:
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    # The same key as the servers: session cookies made here must verify there.
    os.environ["SECRET_KEY"] = BENCH_SECRET
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from messenger.models import AgentProfile, AgentStatus, Branch, Conversation, Inbox

    Conversation.objects.all().delete()
    branch, _ = Branch.objects.get_or_create(name="Bench")
    inbox, _ = Inbox.objects.get_or_create(
        name="Bench", defaults={"branch": branch, "settings": {"security": {"allowed_domains": ["localhost"]}}}
    )
    from django.contrib.auth import get_user_model

    cookies = []
    for index in range(args.operators):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-op-{index}")
        AgentProfile.objects.update_or_create(
            user=user, defaults={"branch": branch, "status": AgentStatus.ONLINE, "max_concurrent": 100000}
        )
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies["sessionid"].value)
    return {"widget_token": inbox.widget_token, "cookies": cookies}


def start_servers(args: argparse.Namespace) -> list[tuple[subprocess.Popen, int]]:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DEBUG": "0",
        "SECRET_KEY": BENCH_SECRET,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "MESSENGER_WIDGET_SEND_RATE_PER_SESSION": "100000/min",
        "MESSENGER_WIDGET_SEND_RATE_PER_IP": "1000000/min",
        "MESSENGER_CONVERSATION_FLOOD_LIMIT": "100000/min",
        "MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP": "1000000/min",
        "MESSENGER_WIDGET_POLL_RATE_PER_SESSION": "100000/min",
        "MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP": "1000000",
    }
    servers = []
    for index in range(args.servers):
        port = free_port()
        log = open(ROOT / "bench" / "results" / f"server-{index}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        servers.append((process, port))
    import urllib.request

    for _, port in servers:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
    return servers


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def run(args: argparse.Namespace, setup: dict, ports: list[int]) -> dict:
    import aiohttp
    import websockets

    sent_at: dict[str, float] = {}
    v2o: list[float] = []
    o2v: list[float] = []
    seen_at_operators: dict[str, int] = {}
    seen_at_visitors: dict[str, int] = {}
    stop = asyncio.Event()

    async with aiohttp.ClientSession() as http:
        sessions = []
        for index in range(args.visitors):
            port = ports[index % len(ports)]
            async with http.post(
                f"http://127.0.0.1:{port}/api/widget/bootstrap/",
                json={"widget_token": setup["widget_token"]},
                headers={"Origin": "http://localhost"},
            ) as response:
                sessions.append((port, (await response.json())["session_token"]))

    operators = []
    for index, cookie in enumerate(setup["cookies"]):
        port = ports[index % len(ports)]
        socket = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/operator/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": f"sessionid={cookie}"},
            compression=None,
            max_queue=None,
        )
        hello = json.loads(await socket.recv())
        assert hello["type"] == "hello", hello
        operators.append(socket)

    async def operator_loop(index: int, socket, replies: bool) -> None:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 1))
            except TimeoutError:
                continue
            except Exception:  # noqa: BLE001
                return
            if frame.get("type") != "message.created":
                continue
            message = frame["data"]["message"]
            client_id = message.get("client_id") or ""
            if message["direction"] == "in" and client_id in sent_at:
                key = f"{index}:{client_id}"
                seen_at_operators[key] = seen_at_operators.get(key, 0) + 1
                if seen_at_operators[key] == 1 and index == 0:
                    v2o.append(time.perf_counter() - sent_at[client_id])
                    if replies:
                        reply_id = "r-" + uuid.uuid4().hex
                        sent_at[reply_id] = time.perf_counter()
                        await socket.send(
                            json.dumps(
                                {
                                    "type": "message.send",
                                    "conversation_id": message["conversation_id"],
                                    "client_id": reply_id,
                                    "body": "reply",
                                }
                            )
                        )

    async def visitor_loop(port: int, token: str, interval: float) -> None:
        socket = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/widget/?widget_token={setup['widget_token']}&token={token}",
            origin="http://localhost",
            compression=None,
            max_queue=None,
        )
        await socket.recv()

        async def reader() -> None:
            while True:
                try:
                    frame = json.loads(await socket.recv())
                except Exception:  # noqa: BLE001
                    return
                if frame.get("type") == "message.created":
                    client_id = frame["data"]["message"].get("client_id") or ""
                    if client_id.startswith("r-") and client_id in sent_at:
                        seen_at_visitors[client_id] = seen_at_visitors.get(client_id, 0) + 1
                        if seen_at_visitors[client_id] == 1:
                            o2v.append(time.perf_counter() - sent_at[client_id])

        reading = asyncio.ensure_future(reader())
        await asyncio.sleep(random.random() * interval)
        while not stop.is_set():
            client_id = "v-" + uuid.uuid4().hex
            sent_at[client_id] = time.perf_counter()
            await socket.send(
                json.dumps({"type": "message.send", "client_id": client_id, "body": "hello from a visitor"})
            )
            await asyncio.sleep(interval)
        await asyncio.sleep(2)
        reading.cancel()
        await socket.close()

    interval = args.visitors / args.rate
    operator_tasks = [
        asyncio.ensure_future(operator_loop(i, socket, replies=(i == 0))) for i, socket in enumerate(operators)
    ]
    started = time.perf_counter()
    visitor_tasks = [asyncio.ensure_future(visitor_loop(port, token, interval)) for port, token in sessions]
    await asyncio.sleep(args.seconds)
    stop.set()
    elapsed = time.perf_counter() - started
    await asyncio.gather(*visitor_tasks, return_exceptions=True)
    await asyncio.sleep(2)
    for task in operator_tasks:
        task.cancel()
    for socket in operators:
        await socket.close()
    visitor_sent = [k for k in sent_at if k.startswith("v-")]
    return {
        "visitor_messages_sent": len(visitor_sent),
        "visitor_to_operator_ms": {q: round(percentile(v2o, q) * 1000, 2) for q in (50, 95, 99)},
        "operator_to_visitor_ms": {q: round(percentile(o2v, q) * 1000, 2) for q in (50, 95, 99)},
        "delivered_to_first_operator": len(v2o),
        "operator_frames": len(seen_at_operators),
        "duplicates_at_operators": sum(1 for n in seen_at_operators.values() if n > 1),
        "duplicates_at_visitors": sum(1 for n in seen_at_visitors.values() if n > 1),
        "elapsed_s": round(elapsed, 1),
        "messages_per_s": round(len(visitor_sent) / elapsed, 1),
        "mean_v2o_ms": round(statistics.mean(v2o) * 1000, 2) if v2o else None,
        "_visitor_ids": visitor_sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--visitors", type=int, default=100)
    parser.add_argument("--operators", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100, help="visitor messages per second, all visitors together")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/messenger_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.operators, args.rate, args.seconds = 50, 2, 50, 15
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "CREATE DATABASE messenger_bench"],
        capture_output=True,
        check=False,
    )
    setup = prepare(args)
    servers = start_servers(args)
    try:
        result = asyncio.run(run(args, setup, [port for _, port in servers]))
        result["server_rss_mib"] = [round(rss_kib(process.pid) / 1024, 1) for process, _ in servers]
    finally:
        for process, _ in servers:
            process.terminate()
        for process, _ in servers:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    from messenger.models import Message

    ids = result.pop("_visitor_ids")
    stored = set(Message.objects.filter(client_id__startswith="v-").values_list("client_id", flat=True))
    result["lost_visitor_messages"] = len(set(ids) - stored)
    result["stored_duplicates"] = Message.objects.filter(client_id__startswith="v-").count() - len(stored)
    result["config"] = {k: getattr(args, k) for k in ("visitors", "operators", "rate", "seconds", "servers")}
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
