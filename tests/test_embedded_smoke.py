"""The embedded default, as a user starts it: no environment at all, one daphne process."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request

import websockets

from tests.live import ROOT, free_port, run_async


def test_embedded_default_serves_http_and_websocket(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "REDIS_URL", "MESSENGER_", "PYTEST", "DJANGO"))
    }
    env["SQLITE_PATH"] = str(tmp_path / "embedded.sqlite3")
    env["MEDIA_ROOT"] = str(tmp_path / "media")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None, "server did not answer"
        assert body["ok"] is True
        assert body["checks"]["channel_layer"]["backend"] == "InMemoryChannelLayer"

        async def handshake():
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/operator/", origin=f"http://127.0.0.1:{port}"
            ) as socket:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
                return frame

        frame = run_async(handshake())
        # Anonymous: the handshake is accepted, then a clear error and close code 4001.
        assert frame["type"] == "error" and frame["code"] == "unauthenticated"
    finally:
        server.terminate()
        server.wait(timeout=10)
