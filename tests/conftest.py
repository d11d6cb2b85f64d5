from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from messenger.actions.widget import do_bootstrap
from tests.factories import VISITOR_ORIGIN


@pytest.fixture(scope="session", autouse=True)
def _close_pools(request):
    """Pooled connections opened by worker threads would block dropping the test database."""
    yield
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if hasattr(connection, "close_pool"):
            connection.close_pool()


@pytest.fixture(autouse=True)
def _close_async_connections():
    """Each test's event loop opens its own (messenger/db/steps.py): closed with the test."""
    yield
    from messenger.db import steps

    steps.close_all()


@pytest.fixture(autouse=True)
def _whole_rate_window(request):
    """Tests marked ``rate_window`` count hits against ``N/min`` limits, whose counters start afresh
    on each minute (messenger/throttle.py): such a test starts at least 10 s before the next
    minute, so that no counter resets halfway through it."""
    if request.node.get_closest_marker("rate_window") is not None:
        into = time.time() % 60
        if into > 50:
            time.sleep(60.05 - into)


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    cache.clear()
    yield


def bootstrap(
    inbox, *, pubsub_token: str | None = None, origin: str = VISITOR_ORIGIN, ip: str = "127.0.0.1"
) -> dict[str, Any]:
    return do_bootstrap(
        widget_token=inbox.widget_token, pubsub_token=pubsub_token, page={"url": origin + "/"}, origin=origin, ip=ip
    )


def visitor_rows(boot: dict[str, Any]) -> Any:
    """The visitor's ``ContactInbox`` (with its contact), made as their first message or form would
    (``do_become_contact``): bootstrap alone stores nothing. For tests that give a visitor data
    (a name, a block, old conversations) before they write."""
    from messenger.actions.contacts import do_become_contact
    from messenger.actions.widget import session_visitor
    from messenger.models import ContactInbox, Inbox
    from messenger.tokens import read_session_token

    session = read_session_token(boot["session_token"])
    assert session is not None
    visitor = session_visitor(boot["session_token"], Inbox.objects.get(pk=session.inbox_id))
    assert visitor is not None
    made = do_become_contact(visitor)
    return ContactInbox.objects.select_related("contact", "inbox", "inbox__branch").get(pk=made.pk)


class Socket:
    """A WebsocketCommunicator with JSON helpers and a frame log."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.frames: list[dict[str, Any]] = []
        # Frames that arrived while command() waited for its reply: expect() looks here first.
        self.backlog: list[dict[str, Any]] = []
        self.ref = 0

    async def connect(self) -> tuple[bool, int | None]:
        return await self.communicator.connect(timeout=10)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        await self.communicator.send_to(text_data=text)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            frame = {"type": "__closed__", "code": output.get("code")}
        else:
            frame = json.loads(output["text"])
        self.frames.append(frame)
        return frame

    async def expect(self, type_: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        """Receive until a frame of ``type_`` (matching ``match``) arrives; others are kept in ``frames``."""
        for index, frame in enumerate(self.backlog):
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                del self.backlog[: index + 1]
                return frame
        self.backlog.clear()
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == type_ and all(frame.get(k) == v for k, v in match.items()):
                return frame
            if frame["type"] == "__closed__":
                raise AssertionError(f"socket closed ({frame['code']}) while waiting for {type_}; got {self.frames}")

    async def command(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Send a command with a ref and return its ack or error."""
        self.ref += 1
        ref = f"r{self.ref}"
        await self.send({"type": type_, "ref": ref, **fields})
        while True:
            frame = await self.recv()
            if frame.get("ref") == ref and frame["type"] in ("ack", "error", "conversation.snapshot"):
                return frame
            self.backlog.append(frame)

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.communicator.receive_nothing(timeout)

    async def drain(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """Everything not consumed yet: the backlog, then whatever arrives within ``timeout``."""
        got, self.backlog = self.backlog, []
        while not await self.communicator.receive_nothing(timeout):
            got.append(await self.recv())
        return got

    async def close(self) -> None:
        await self.communicator.disconnect()


def _application():
    from project.asgi import application

    return application


def visitor_socket(inbox, boot: dict[str, Any], *, origin: str = VISITOR_ORIGIN, token: str | None = None) -> Socket:
    path = (
        f"/ws/widget/?widget_token={inbox.widget_token}&token={token if token is not None else boot['session_token']}"
    )
    headers = [(b"origin", origin.encode())] if origin else []
    return Socket(WebsocketCommunicator(_application(), path, headers=headers))


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def operator_socket(user, *, origin: str = "http://testserver") -> Socket:
    """Call from async tests: logs ``user`` in and returns an unconnected socket."""
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"origin", origin.encode()), (b"host", b"testserver")]
    return Socket(WebsocketCommunicator(_application(), "/ws/operator/", headers=headers))


def new_client_id() -> str:
    return uuid.uuid4().hex


from tests.live import chromium, collected_static_root, live_server_factory, live_server_proc  # noqa: E402, F401
