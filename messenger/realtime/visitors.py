"""The live list of visitors: who is on a page with the widget now (docs/dashboard.md, "Visitors").

It lives in the cache, never in the database: a page view is not a change anyone made. Each server
process keeps the visitors of its own sockets (``Tracker``) and, once a second, writes what
changed to Redis and tells the staff groups in one message per branch (``visitors.batch``); the
operator socket merges those messages and sends at most one ``visitors.changed`` frame a second
(``OperatorConsumer.visitors_batch``). So a visitor's page view costs no write per operator, and an
operator gets one frame a second however many processes and visitors there are.

In Redis, per branch group (``b.<id>``, ``b.none`` for inboxes without a branch): a hash of the
entries by visitor id, a sorted set of the same ids scored by the time the entry expires (the count
is one ``ZCOUNT``) and one scored by when the visit began (a list reads only the entries it shows,
however many visitors there are); plus,
per visitor, the key ``find`` reads (inbox, branch, contact inbox) and the processes that hold a
socket of theirs (a sorted set scored by when each lapses: tabs of one visitor may be on several
processes). A process refreshes its entries every ``REFRESH_SECONDS`` and each lasts
``TTL_SECONDS``: a visitor whose last socket closes, on whichever process, is removed within a
second, and every entry of a process that died is gone within ``TTL_SECONDS`` (readers skip expired
ids, the next refresh of any process prunes them).

Without Redis (the embedded default: one process) the list is the tracker's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from messenger import cache as messenger_cache
from messenger.events import LiveVisitor
from messenger.realtime.broadcast import apublish_messages
from messenger.realtime.groups import branch_group

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
REFRESH_SECONDS = 15
TTL_SECONDS = 45
BATCH_MESSAGE = "visitors.batch"
# Arrivals read beyond a list's limit, in case some of the newest belong to a process that died.
ARRIVAL_MARGIN = 100


def _prefix() -> str:
    return f"{settings.CHANNEL_PREFIX}:lv:"


def _hash_key(group: str) -> str:
    return f"{_prefix()}h:{group}"


def _expiry_key(group: str) -> str:
    return f"{_prefix()}z:{group}"


def _arrival_key(group: str) -> str:
    return f"{_prefix()}a:{group}"


def _visitor_key(visitor_id: str) -> str:
    return f"{_prefix()}v:{visitor_id}"


def _holders_key(visitor_id: str) -> str:
    return f"{_prefix()}p:{visitor_id}"


@dataclass(frozen=True)
class Found:
    """Where a live visitor is: enough for an invitation."""

    visitor_id: str
    inbox_id: int
    branch_id: int | None
    chatting: bool


@dataclass
class _Local:
    entry: LiveVisitor
    sockets: set[str] = field(default_factory=set)

    @property
    def group(self) -> str:
        return branch_group(self.entry["branch_id"])

    def found(self) -> Found:
        return Found(
            visitor_id=self.entry["id"],
            inbox_id=self.entry["inbox"]["id"],
            branch_id=self.entry["branch_id"],
            chatting=self.entry["chatting"],
        )


class Tracker:
    """The visitors of this process's sockets, and the loop that publishes their changes."""

    def __init__(self) -> None:
        # A visitor's tabs may have sockets on several processes: each process that holds one is
        # in the visitor's holders (scored by when that lapses), and the entry goes only with the last.
        self.process_id = uuid.uuid4().hex
        self.visitors: dict[str, _Local] = {}
        self.dirty: set[str] = set()
        self.removed: dict[str, str] = {}  # visitor id → its branch group
        self.task: asyncio.Task[None] | None = None
        self.refreshed_at = 0.0

    # --- called by the visitor sockets, on the event loop -------------------------------------

    def attach(self, socket_id: str, entry: LiveVisitor) -> None:
        local = self.visitors.get(entry["id"])
        if local is None:
            local = self.visitors[entry["id"]] = _Local(entry=entry)
        else:
            local.entry = entry  # the newest page of the visitor's tabs
        local.sockets.add(socket_id)
        self.removed.pop(entry["id"], None)
        self.dirty.add(entry["id"])
        self._start()

    def update(self, visitor_id: str, **changes: Any) -> None:
        local = self.visitors.get(visitor_id)
        if local is None:
            return
        if all(local.entry.get(name) == value for name, value in changes.items()):
            return
        local.entry = {**local.entry, **changes}  # type: ignore[typeddict-item]
        self.dirty.add(visitor_id)

    def detach(self, socket_id: str, visitor_id: str) -> None:
        local = self.visitors.get(visitor_id)
        if local is None:
            return
        local.sockets.discard(socket_id)
        if local.sockets:
            return
        del self.visitors[visitor_id]
        self.dirty.discard(visitor_id)
        self.removed[visitor_id] = local.group

    def entries(self, groups: set[str]) -> list[LiveVisitor]:
        """Called from a request's thread (the embedded default's list) while the event loop adds
        and removes visitors: the values are copied first, in one step that holds the GIL
        (iterating the dict itself raised "dictionary changed size during iteration")."""
        return [local.entry for local in list(self.visitors.values()) if local.group in groups]

    def find(self, visitor_id: str) -> Found | None:
        local = self.visitors.get(visitor_id)
        return local.found() if local is not None else None

    # --- the publishing loop ---------------------------------------------------------------------

    def _start(self) -> None:
        if self.task is None or self.task.done() or self.task.get_loop().is_closed():
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 — never let the loop die; the next pass retries
                logger.warning("live visitors: flush failed", exc_info=True)

    async def flush(self) -> None:
        """Publish what changed since the last pass; every ``REFRESH_SECONDS`` renew every entry
        (whether each visitor chats read again first)."""
        now = time.time()
        refresh = now - self.refreshed_at >= REFRESH_SECONDS
        if refresh:
            self.refreshed_at = now
            await self.recheck_chatting()
        upserts: dict[str, list[LiveVisitor]] = {}
        removed: dict[str, list[str]] = {}
        for visitor_id in self.dirty:
            local = self.visitors.get(visitor_id)
            if local is not None:
                upserts.setdefault(local.group, []).append(local.entry)
        dirty, gone = set(self.dirty), dict(self.removed)
        self.dirty.clear()
        self.removed.clear()
        left = set(gone)
        if upserts or gone or refresh:
            try:
                left = await self._write(dirty, gone, refresh=refresh, now=now)
            except Exception:  # noqa: BLE001 — Redis down: the next refresh writes everything again
                logger.warning("live visitors: Redis write failed", exc_info=True)
                self.refreshed_at = 0.0
        for visitor_id, group in gone.items():
            if visitor_id in left:  # not while a tab on another process still shows them
                removed.setdefault(group, []).append(visitor_id)
        messages = [
            (group, {"type": BATCH_MESSAGE, "upserts": upserts.get(group, []), "removed": removed.get(group, [])})
            for group in set(upserts) | set(removed)
        ]
        if messages:
            await apublish_messages(messages)

    async def recheck_chatting(self) -> None:
        """Whether each visitor chats, read again from the database: the visitor's socket follows
        their conversation's frames, and a frame the channel layer dropped (or a conversation
        changed while no frame could reach them) is corrected here, within ``REFRESH_SECONDS``."""
        keys = {(local.entry["inbox"]["id"], visitor_id) for visitor_id, local in self.visitors.items()}
        if not keys:
            return
        try:
            active = await database_sync_to_async(active_conversations)(keys)
        except Exception:  # noqa: BLE001 — the database blinked: the frames keep it meanwhile
            logger.warning("live visitors: chatting recheck failed", exc_info=True)
            return
        for visitor_id, local in list(self.visitors.items()):
            conversation_id = active.get((local.entry["inbox"]["id"], visitor_id))
            self.update(visitor_id, chatting=conversation_id is not None, conversation_id=conversation_id)

    async def _write(self, dirty: set[str], gone: dict[str, str], *, refresh: bool, now: float) -> set[str]:
        """Write the changes to Redis: the ids of ``gone`` that left the list (those no other
        process holds a socket of)."""
        client = messenger_cache.async_redis_client()
        if client is None:
            return set(gone)
        until = now + TTL_SECONDS
        if gone:
            # This process lets go, and counts who still holds the visitor, in one transaction: of
            # two processes whose last tabs close at once, the later one sees none left.
            pipe = client.pipeline(transaction=True)
            for visitor_id in gone:
                pipe.zrem(_holders_key(visitor_id), self.process_id)
                pipe.zcount(_holders_key(visitor_id), now, "+inf")
            answers = await pipe.execute()
            gone = {
                visitor_id: group
                for (visitor_id, group), holders in zip(gone.items(), answers[1::2], strict=True)
                if not holders
            }
        pipe = client.pipeline(transaction=False)
        written = set(self.visitors) if refresh else dirty
        groups: set[str] = set()
        for visitor_id in written:
            local = self.visitors.get(visitor_id)
            if local is None:
                continue
            groups.add(local.group)
            if visitor_id in dirty or refresh:
                pipe.hset(_hash_key(local.group), visitor_id, json.dumps(local.entry, separators=(",", ":")))
                pipe.zadd(_arrival_key(local.group), {visitor_id: _timestamp(local.entry["started_at"])})
            pipe.zadd(_expiry_key(local.group), {visitor_id: until})
            found = local.found()
            pipe.set(
                _visitor_key(visitor_id),
                json.dumps([found.inbox_id, found.branch_id, found.chatting]),
                ex=TTL_SECONDS,
            )
            pipe.zadd(_holders_key(visitor_id), {self.process_id: until})
            pipe.expire(_holders_key(visitor_id), TTL_SECONDS * 2)
        for visitor_id, group in gone.items():
            groups.add(group)
            pipe.hdel(_hash_key(group), visitor_id)
            pipe.zrem(_expiry_key(group), visitor_id)
            pipe.zrem(_arrival_key(group), visitor_id)
            pipe.delete(_visitor_key(visitor_id), _holders_key(visitor_id))
        for group in groups:
            for key in (_hash_key(group), _expiry_key(group), _arrival_key(group)):
                pipe.expire(key, TTL_SECONDS * 2)
        await pipe.execute()
        if refresh:
            await _prune(client, groups, now)
        return set(gone)


async def _prune(client: Any, groups: set[str], now: float) -> None:
    """Drop the entries of processes that stopped refreshing them (they died)."""
    for group in groups:
        expired = await client.zrangebyscore(_expiry_key(group), "-inf", now)
        if expired:
            pipe = client.pipeline(transaction=False)
            pipe.hdel(_hash_key(group), *expired)
            pipe.zrem(_expiry_key(group), *expired)
            pipe.zrem(_arrival_key(group), *expired)
            await pipe.execute()


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def active_conversations(keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The active conversation of each (inbox id, visitor id) that has one: one query."""
    from messenger.models import Conversation
    from messenger.models.conversation import ACTIVE_STATUSES

    rows = Conversation.objects.filter(
        status__in=ACTIVE_STATUSES, contact_inbox__source_id__in={visitor_id for _, visitor_id in keys}
    ).values_list("contact_inbox__inbox_id", "contact_inbox__source_id", "pk")
    return {(inbox_id, visitor_id): pk for inbox_id, visitor_id, pk in rows if (inbox_id, visitor_id) in keys}


_tracker: Tracker | None = None


def tracker() -> Tracker:
    global _tracker
    if _tracker is None:
        _tracker = Tracker()
    return _tracker


# --- reads (a request's thread) -------------------------------------------------------------------


def live_visitors(branch_ids: list[int | None], *, limit: int | None = None) -> tuple[int, list[LiveVisitor]]:
    """(how many visitors of these branches' inboxes are live (None: the inboxes without a
    branch), the ``limit`` whose visit began last, newest first; every one without a limit).

    In Redis the count is one ``ZCOUNT`` per branch and only the entries shown are read: the
    newest arrivals of each branch (``limit`` plus a margin for entries whose process died and
    that no refresh pruned yet), those still live, then their entries."""
    groups = [branch_group(branch_id) for branch_id in branch_ids]
    client = messenger_cache.redis_client()
    if client is None:
        entries = sorted(tracker().entries(set(groups)), key=lambda entry: entry["started_at"], reverse=True)
        return len(entries), entries[:limit] if limit is not None else entries
    now = time.time()
    pipe = client.pipeline(transaction=False)
    for group in groups:
        pipe.zcount(_expiry_key(group), now, "+inf")
        pipe.zrevrange(_arrival_key(group), 0, -1 if limit is None else limit + ARRIVAL_MARGIN - 1, withscores=True)
    answers = pipe.execute()
    count = sum(answers[0::2])
    candidates = [
        (score, group, visitor_id)
        for group, arrivals in zip(groups, answers[1::2], strict=True)
        for visitor_id, score in arrivals
    ]
    if not candidates:
        return count, []
    pipe = client.pipeline(transaction=False)
    for _, group, visitor_id in candidates:
        pipe.zscore(_expiry_key(group), visitor_id)
    live = [candidate for candidate, until in zip(candidates, pipe.execute(), strict=True) if until and until >= now]
    live.sort(key=lambda candidate: candidate[0], reverse=True)
    shown = live if limit is None else live[:limit]
    pipe = client.pipeline(transaction=False)
    for _, group, visitor_id in shown:
        pipe.hget(_hash_key(group), visitor_id)
    return count, [json.loads(value) for value in pipe.execute() if value is not None]


def find(visitor_id: str) -> Found | None:
    """Where a live visitor is, or None when they are not on a page with the widget now."""
    client = messenger_cache.redis_client()
    if client is None:
        return tracker().find(visitor_id)
    value = client.get(_visitor_key(visitor_id))
    if value is None:
        return None
    *_, inbox_id, branch_id, chatting = json.loads(value)  # an older process wrote 4 values
    return Found(
        visitor_id=visitor_id,
        inbox_id=inbox_id,
        branch_id=branch_id,
        chatting=chatting,
    )
