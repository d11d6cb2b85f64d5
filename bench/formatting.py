"""Formatting: the worst render time over the adversarial corpus, and a live server's event loop
while a visitor sends that corpus.

    .venv/bin/python bench/formatting.py                  # both parts
    .venv/bin/python bench/formatting.py --render-only    # the render times alone, no server
    .venv/bin/python bench/formatting.py --rounds 3       # the corpus sent three times

1. Render: every body of tests/formatting_corpus.py at ``MESSENGER_MESSAGE_MAX_LENGTH`` characters,
   rendered ``--repeat`` times in this process: the slowest bodies (each one's best and worst wall
   time) and the worst of all. The target is 50 ms.
2. Live: one daphne process (``DEBUG=0``, PostgreSQL, Redis) with an operator's dashboard socket
   open; a visitor sends every corpus body in turn, each after the previous one's ack. Meanwhile a
   second visitor pings over its socket and a probe GETs ``/health/``, each every 50 ms. Reported:
   the server's event-loop lag (``MESSENGER_DB_HOP_LOG``'s ``loop_lag``: how late a 50 ms timer
   woke; the target is p99 ≤ 20 ms), the ping round trips, ``/health/`` and the sends' acks.

   A message's frames carry its body and its rendered content, and for some bodies of the corpus
   (quotes, many URLs) they are larger than daphne's WebSocket message limit (1 MiB by default,
   for what it sends as for what it receives), which closes the socket with 1011. The benchmark's
   server runs with ``--websocket-max-message-size`` of ``FRAME_LIMIT`` so that every body can be
   sent, and reports the bodies whose ack frame is above 1 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    RESULTS,
    Servers,
    hop_logs,
    percentile,
    prepare_messenger,
    server_env,
    service_arguments,
)
from tests.formatting_corpus import adversarial_corpus  # noqa: E402

PROBE_PERIOD = 0.05
FRAME_LIMIT = 16 * 1024 * 1024
DAPHNE_DEFAULT_LIMIT = 1024 * 1024


def figures(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        **{f"p{q}": round(percentile(values, q) or 0, 1) for q in (50, 99)},
        "max": round(max(values, default=0), 1),
    }


def measure_render(corpus: dict[str, str], repeat: int) -> dict[str, Any]:
    """Each body's best and worst of ``repeat`` renders, in ms."""
    import gc

    from messenger.formatting import render

    times: dict[str, list[float]] = {}
    for _ in range(repeat):
        for name, body in corpus.items():
            gc.collect()
            started = time.perf_counter()
            render(body)
            times.setdefault(name, []).append(1000 * (time.perf_counter() - started))
    rows = sorted(((max(t), min(t), name) for name, t in times.items()), reverse=True)
    return {
        "bodies": len(corpus),
        "length": len(next(iter(corpus.values()))),
        "worst_ms": round(rows[0][0], 1),
        "worst_body": rows[0][2],
        "slowest": [
            {"body": name, "best_ms": round(best, 1), "worst_ms": round(worst, 1)} for worst, best, name in rows[:8]
        ],
    }


async def live(port: int, setup: dict[str, Any], corpus: dict[str, str], rounds: int, hops: Path) -> dict[str, Any]:
    import aiohttp
    import websockets

    base = f"http://127.0.0.1:{port}"
    options = {"compression": None, "max_queue": None, "max_size": None, "open_timeout": 30}
    async with aiohttp.ClientSession() as http:

        async def visitor() -> Any:
            async with http.post(
                f"{base}/api/widget/bootstrap/",
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
            return ws

        async def reply(ws: Any, ref: str, frame: dict[str, Any]) -> tuple[dict[str, Any], int]:
            """The answer to ``frame`` and its size in bytes."""
            await ws.send(json.dumps({**frame, "ref": ref}))
            while True:
                text = await ws.recv()
                answer = json.loads(text)
                if (
                    answer.get("ref") == ref
                    or (frame["type"] == "ping" and answer["type"] == "pong")
                    or (answer["type"] == "error" and answer.get("ref") is None)  # too_large: not parsed
                ):
                    return answer, len(text.encode())

        operator = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/operator/",
            origin=base,
            additional_headers={"Cookie": f"sessionid={setup['cookies'][0]}"},
            **options,
        )
        await operator.recv()  # hello
        sender, pinger = await visitor(), await visitor()
        # The first message starts the conversation; the next ones are the common send, on the loop.
        first, _ = await reply(sender, "start", {"type": "message.send", "client_id": uuid.uuid4().hex, "body": "hi"})
        assert first["type"] == "ack", first

        stop = asyncio.Event()
        health_ms: list[float] = []
        ping_ms: list[float] = []

        async def drain(ws: Any) -> None:
            async for _ in ws:
                pass

        async def probe_health() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                async with http.get(f"{base}/health/") as response:
                    await response.read()
                health_ms.append(1000 * (time.perf_counter() - started))
                await asyncio.sleep(PROBE_PERIOD)

        async def probe_ping() -> None:
            for index in range(10**9):
                if stop.is_set():
                    return
                started = time.perf_counter()
                await reply(pinger, f"p{index}", {"type": "ping"})
                ping_ms.append(1000 * (time.perf_counter() - started))
                await asyncio.sleep(PROBE_PERIOD)

        background = [asyncio.ensure_future(drain(operator)), asyncio.ensure_future(probe_health())]
        background.append(asyncio.ensure_future(probe_ping()))
        # The machine's own noise: the same probes for 3 s before anything is sent.
        await asyncio.sleep(3)
        idle = {"loop_lag_ms": loop_lag(hops), "ping_ms": figures(ping_ms), "health_ms": figures(health_ms)}
        ping_ms.clear()
        health_ms.clear()
        acks: list[tuple[float, str]] = []
        refused: list[str] = []
        oversized: dict[str, int] = {}
        for round_index in range(rounds):
            for name, body in corpus.items():
                frame = {"type": "message.send", "client_id": uuid.uuid4().hex, "body": body}
                started = time.perf_counter()
                answer, size = await asyncio.wait_for(reply(sender, f"s{round_index}-{name}", frame), 60)
                acks.append((1000 * (time.perf_counter() - started), name))
                if answer["type"] != "ack":
                    refused.append(f"{name}: {answer.get('code')}")
                if size > DAPHNE_DEFAULT_LIMIT:
                    oversized[name] = size
        stop.set()
        await asyncio.gather(*background[1:])
        background[0].cancel()
        for ws in (sender, pinger, operator):
            await ws.close()
    acks.sort(reverse=True)
    return {
        "idle": idle,
        "loop_lag_ms": loop_lag(hops),
        "sends": len(acks),
        "refused": refused,
        "ack_frames_over_1_mib": oversized,
        "ack_ms": figures([ms for ms, _ in acks]),
        "slowest_acks": [{"body": name, "ms": round(ms, 1)} for ms, name in acks[:5]],
        "ping_ms": figures(ping_ms),
        "health_ms": figures(health_ms),
    }


def loop_lag(prefix: Path) -> dict[str, float]:
    """The server's loop-lag lines written since the last call (the files are removed)."""
    lags = []
    for log in hop_logs(prefix):
        for line in log.read_text().splitlines():
            name, value, *_ = line.split()
            if name == "loop_lag":
                lags.append(1000 * float(value))
        log.unlink()
    return figures(lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="renders of each body in part 1")
    parser.add_argument("--rounds", type=int, default=1, help="times the corpus is sent in part 2")
    parser.add_argument("--render-only", action="store_true", help="part 1 only: no server")
    service_arguments(parser)
    args = parser.parse_args()
    args.operators = 1
    database = urlsplit(args.database_url).path.lstrip("/")
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'CREATE DATABASE "{database}"'],
        capture_output=True,
        check=False,
    )
    setup = prepare_messenger(args)
    from django.conf import settings

    corpus = adversarial_corpus(settings.MESSENGER_MESSAGE_MAX_LENGTH)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    result["render"] = measure_render(corpus, args.repeat)
    print("render", json.dumps(result["render"]), flush=True)
    if not args.render_only:
        RESULTS.mkdir(exist_ok=True)
        prefix = RESULTS / f"formatting-hops-{os.getpid()}"
        env = {**server_env(args), "MESSENGER_DB_HOP_LOG": str(prefix)}
        servers = Servers()
        try:
            port = servers.start(
                [
                    *(sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", "{port}"),
                    *("--websocket-max-message-size", str(FRAME_LIMIT), "--websocket-max-frame-size", str(FRAME_LIMIT)),
                    "project.asgi:application",
                ],
                env,
                "/health/",
                "formatting",
            )
            result["live"] = asyncio.run(live(port, setup, corpus, args.rounds, prefix))
        finally:
            servers.stop()
            for log in hop_logs(prefix):
                log.unlink()
        print("live", json.dumps(result["live"]), flush=True)
    path = RESULTS / f"formatting-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
