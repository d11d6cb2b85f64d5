"""Shared helpers of the routing, assignment, escalation, hours and scheduler tests (no tests here)."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from messenger.actions.base import Actor
from messenger.actions.conversations import do_start_conversation
from messenger.models import AgentConnection, Contact, ContactInbox, Conversation

_sockets = itertools.count(1)


def connect(user: Any, at: datetime | None = None) -> AgentConnection:
    """A live operator socket whose last heartbeat is ``at`` (the controlled clock)."""
    return AgentConnection.objects.create(
        user=user, channel_name=f"test.{user.pk}.{next(_sockets)}", last_heartbeat=at or timezone.now()
    )


def heartbeat_all(at: datetime) -> None:
    """Move every socket's heartbeat to ``at``: operators stay live under a clock jumped forward."""
    AgentConnection.objects.update(last_heartbeat=at)


def visitor(inbox: Any, **contact: Any) -> ContactInbox:
    return ContactInbox.objects.create(contact=Contact.objects.create(**contact), inbox=inbox)


def start(inbox: Any, *, ip: str | None = None, **contact: Any) -> Conversation:
    conversation, _started = do_start_conversation(
        contact_inbox=visitor(inbox, **contact), actor=Actor.system("test"), ip=ip
    )
    return conversation


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


class Broadcasts:
    """Frames sent to groups (after commit), captured at the transport edge."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[str], dict[str, Any]]] = []

    def of_type(self, type_: str) -> list[tuple[list[str], dict[str, Any]]]:
        return [(groups, frame) for groups, frame in self.sent if frame.get("type") == type_]


def capture_broadcasts(monkeypatch: Any) -> Broadcasts:
    import json

    from messenger.realtime import broadcast

    captured = Broadcasts()
    monkeypatch.setattr(broadcast, "_send", lambda groups, text: captured.sent.append((list(groups), json.loads(text))))
    return captured
