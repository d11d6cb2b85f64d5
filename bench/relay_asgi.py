"""Reference servers for the benchmark, on the same daphne and channel layer as Messenger.

* ``/relay/``   — the framework's floor: a consumer that forwards each frame to groups, no database.
* ``/persist/`` — the persist floor: the same relay, but each frame is INSERTed and committed in
  PostgreSQL (one ``database_sync_to_async`` hop, like Messenger's) before the fan-out.

Visitors connect with ``?role=visitor&conversation=N`` (group ``c.N``), operators with
``?role=operator`` (group ``ops``). A visitor frame goes to ``ops`` and ``c.N``; an operator frame to
``c.N``. Run: ``daphne bench.relay_asgi:application``.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

import json  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

from channels.db import database_sync_to_async  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.urls import path  # noqa: E402


def ensure_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_frame (id bigserial PRIMARY KEY, conversation int NOT NULL, "
            "client_id varchar(64) NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )


class RelayConsumer(AsyncWebsocketConsumer):
    persist = False

    async def connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        self.role = query.get("role", ["visitor"])[0]
        self.conversation = int(query.get("conversation", ["0"])[0])
        self.group = "ops" if self.role == "operator" else f"c.{self.conversation}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame = json.loads(text_data or "{}")
        conversation = frame.get("conversation", self.conversation)
        if self.persist:
            await database_sync_to_async(self.store)(conversation, frame.get("client_id", ""), frame.get("body", ""))
        text = json.dumps(frame)
        targets = [f"c.{conversation}"] if self.role == "operator" else ["ops", f"c.{conversation}"]
        for group in targets:
            await self.channel_layer.group_send(group, {"type": "relay.frame", "text": text})

    @staticmethod
    def store(conversation: int, client_id: str, body: str) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_frame (conversation, client_id, body) VALUES (%s, %s, %s)",
                [conversation, client_id, body],
            )

    async def relay_frame(self, event: dict) -> None:
        await self.send(text_data=event["text"])


class PersistConsumer(RelayConsumer):
    persist = True


ensure_table()
application = ProtocolTypeRouter(
    {"websocket": URLRouter([path("relay/", RelayConsumer.as_asgi()), path("persist/", PersistConsumer.as_asgi())])}
)
