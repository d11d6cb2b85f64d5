"""WebSocket consumers: authenticate, join groups, parse, call one check_* door, reply.

Group frames arrive pre-serialised (``fanout``) and are forwarded verbatim: no database access in
group handlers. Subscribe before snapshot: groups are joined before ``hello`` so no event falls
between the snapshot and the live stream (clients drop duplicates by id).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async as _database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections

from messenger import events
from messenger.actions import commands, contacts, visitors, widget
from messenger.client_address import scope_client_address
from messenger.db.outage import DATABASE_OUTAGE_ERRORS, database_unavailable
from messenger.errors import MessengerError, Unavailable
from messenger.events import LiveVisitor
from messenger.protocol import (
    CLOSE_DISABLED,
    CLOSE_THROTTLED,
    CLOSE_TOO_MANY_ERRORS,
    CLOSE_UNAUTHENTICATED,
    CLOSE_UNAVAILABLE,
    CLOSE_UNKNOWN_INBOX,
    MALFORMED_CODES,
    MAX_CONSECUTIVE_ERRORS,
    OPERATOR_COMMANDS,
    VISITOR_COMMANDS,
    Command,
    FrameLimiter,
    parse_frame,
    parse_rate,
)
from messenger.realtime import diagnostics, groups, liveness
from messenger.realtime import visitors as live_visitors
from messenger.realtime.broadcast import abroadcast_ephemeral, remember_server_loop
from messenger.realtime.dispatch import serve
from messenger.realtime.frame_budget import session_frame_budget
from messenger.realtime.session import session_watch

logger = logging.getLogger(__name__)

# The operator socket's live visitors: at most one frame per this many seconds, and a frame
# holds at most this many changed visitors (more: ``visitors.reset``, the list is read again).
VISITORS_FRAME_SECONDS = 1.0
VISITORS_FRAME_MAX = 500

# Per-socket command lanes: a conversation's commands always share one (``lane_of``).
LANES = 8
SOCKET_CONCURRENCY = 2
# Seconds a handshake may wait on the database (session, token, snapshot): daphne drops a
# handshake that is not accepted within 5 s without an answer, and a client told 4013 retries.
HANDSHAKE_DATABASE_SECONDS = 3.5
# Seconds a command's database hop may wait for a thread: the pool's timeout bounds a hop once it
# runs, but during an outage the hops queue for the few threads, each holding one for that whole
# timeout (a hop that has started is waited for: at most this plus the pool's timeout).
DATABASE_HOP_SECONDS = 10


def lane_of(conversation_id: Any) -> int:
    """The lane of a command: by conversation (multiplicative hashing, so that ids an operator
    sees in a regular pattern — every fourth, say — still spread over all lanes); -1 without one."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool) or conversation_id < 0:
        return -1
    return ((conversation_id * 2654435761) & 0xFFFFFFFF) * LANES >> 32


def database_sync_to_async(func: Any) -> Any:
    """The ORM hop of a frame, on a thread pool rather than the one shared thread.

    The default (thread_sensitive=True) runs every socket's database work of a process in one
    thread, one frame at a time: measured here, that capped a process near 200 messages/s with
    seconds of queueing. Actions keep no thread state and take their connections from the pool.

    Connections are handed back inside the call's own context: Django keeps them in context-local
    storage, and the housekeeping that channels runs around the call sits outside that context, so
    it never saw them — each socket kept one pooled connection until the pool ran dry.

    A hop still waiting for a thread after ``DATABASE_HOP_SECONDS`` is given up: it never runs
    (asgiref cancels its future) and answers ``Unavailable``. One already running is waited for
    and answers as usual (during an outage: within the pool's timeout).
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    async def call(*args: Any, **kwargs: Any) -> Any:
        hop = run
        if diagnostics.enabled():
            hop = diagnostics.timed(getattr(func, "__name__", "?"), run)
        deadline = asyncio.timeout(DATABASE_HOP_SECONDS)
        try:
            async with deadline:
                return await _database_sync_to_async(hop, thread_sensitive=False, executor=_database_executor())(
                    *args, **kwargs
                )
        except TimeoutError:
            if not deadline.expired():
                raise
            raise database_unavailable() from None

    return call


_executor: ThreadPoolExecutor | None = None


def _database_executor() -> ThreadPoolExecutor:
    """The socket commands' database threads: few on purpose (MESSENGER_DB_THREADS).

    Every reply from PostgreSQL wakes a thread that must take the GIL from the event loop, which
    forwards every frame of the process. Measured in bench/ at 200 messages/s: with six threads
    (the default pool) the loop waited for the GIL almost half the time and v→o p99 was 350–400
    ms; with two, under 100 ms, for the same throughput.
    """
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=settings.MESSENGER_DB_THREADS, thread_name_prefix="messenger-db")
    return _executor


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


class BaseConsumer(AsyncWebsocketConsumer):
    commands: frozenset[str] = frozenset()
    rate_multiplier = 1

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await serve(self, scope, receive, send)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        remember_server_loop()
        if diagnostics.enabled():
            diagnostics.start()
        self.joined: list[str] = []
        self.typing_timers: dict[int, asyncio.Task[None]] = {}
        self.malformed_in_a_row = 0
        self.lanes: dict[int, deque[Command]] = {}
        self.lane_tasks: set[asyncio.Future[None]] = set()
        # At most this many of a socket's commands wait on the database at once: one busy
        # operator must not fill the process's few database threads ahead of everyone else.
        self.in_flight = asyncio.Semaphore(SOCKET_CONCURRENCY)
        rate, period = parse_rate(settings.MESSENGER_WIDGET_POLL_RATE_PER_SESSION)
        self.limiter = FrameLimiter(rate * self.rate_multiplier, period)
        if not settings.MESSENGER_ENABLED:
            await self.accept()
            await self.send_frame(events.error_frame("disabled", "Messenger disabled"))
            await self.close(code=CLOSE_DISABLED)
            return
        try:
            async with asyncio.timeout(HANDSHAKE_DATABASE_SECONDS):
                await super().websocket_connect(message)
        except (TimeoutError, Unavailable, *DATABASE_OUTAGE_ERRORS) as reason:
            logger.warning("socket handshake: database unavailable (%r)", reason)
            await self.close_unavailable()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        self.accepted = True
        await super().accept(subprotocol, headers)

    async def close_unavailable(self) -> None:
        """Accepted (a refused handshake would look like a forbidden origin), told why, closed with
        4013: the clients reconnect with backoff."""
        if not getattr(self, "accepted", False):
            await self.accept()
        error = database_unavailable()
        await self.send_frame(events.error_frame(error.code, error.message))
        await self.close(code=CLOSE_UNAVAILABLE)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale DB connections before every handler, through a hop to the one
        # shared sync thread. Group frames and inbound frames touch no database here (commands
        # run through database_sync_to_async, which does its own housekeeping): skipping the hop
        # took per-process delivery from collapsing at ~100 messages/s to keeping up (bench/).
        if message["type"] == "fanout":
            await self.fanout(message)
        elif message["type"] == live_visitors.BATCH_MESSAGE:
            await self.visitors_batch(message)
        elif message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def join(self, *names: str) -> None:
        for name in names:
            await self.channel_layer.group_add(name, self.channel_name)
            self.joined.append(name)

    async def disconnect(self, code: int) -> None:
        liveness.detach(self)
        for task in self.typing_timers.values():
            task.cancel()
        for task in list(getattr(self, "lane_tasks", ())):
            task.cancel()
        for name in getattr(self, "joined", []):
            try:
                await self.channel_layer.group_discard(name, self.channel_name)
            except Exception:  # noqa: BLE001 — the layer may be down; groups expire by themselves
                logger.debug("group_discard failed", exc_info=True)

    async def fanout(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["frame"])
        if "published" in event:
            diagnostics.record("fanout_delay", time.time() - event["published"])

    async def visitors_batch(self, message: dict[str, Any]) -> None:
        """Live visitors' changes from a server process (``messenger.realtime.visitors``): staff only."""

    async def send_frame(self, frame: dict[str, Any]) -> None:
        from messenger.realtime.broadcast import dumps

        await self.send(text_data=dumps(frame))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not await self.limiter.admit():
            # The frames admitted before this one are answered first, then the socket closes.
            await asyncio.gather(*self.lane_tasks, return_exceptions=True)
            await self.send_frame(events.error_frame("rate_limited", "Too many frames; the connection is closed."))
            await self.close(code=CLOSE_THROTTLED)
            return
        try:
            command = parse_frame(text_data, allowed=self.commands, max_bytes=settings.MESSENGER_FRAME_MAX_BYTES)
        except MessengerError as error:
            await self.refuse(error, ref=None)
            return
        # Commands run in order per conversation, on worker tasks ("lanes"): the dispatch loop
        # stays free to forward group frames while a command waits on the database (measured: an
        # operator answering fast otherwise saw incoming messages queue for seconds behind their
        # own sends), and a slow command in one conversation does not hold the others.
        lane = lane_of(command.fields.get("conversation_id"))
        queue = self.lanes.get(lane)
        if queue is not None:
            queue.append(command)
            return
        queue = self.lanes[lane] = deque([command])
        self.lane_tasks.add(asyncio.ensure_future(self._work_lane(lane, queue)))

    async def _work_lane(self, lane: int, queue: deque[Command]) -> None:
        try:
            while queue:
                await self.run_command(queue.popleft())
        finally:
            # No await between the last emptiness check and this: a frame that arrives later
            # starts a new lane.
            if self.lanes.get(lane) is queue:
                del self.lanes[lane]
            task = asyncio.current_task()
            if task is not None:
                self.lane_tasks.discard(task)

    async def run_command(self, command: Command) -> None:
        try:
            async with self.in_flight:
                frames = await self.handle(command)
            for frame in frames:
                await self.send_frame(frame)
            self.malformed_in_a_row = 0
        except (Unavailable, *DATABASE_OUTAGE_ERRORS) as reason:
            # Not a refusal of the frame: it is not counted towards 4009, and the client resends
            # (a message with its client_id, so it is stored once).
            logger.warning("socket command: database unavailable (%r)", reason)
            self.malformed_in_a_row = 0
            error = database_unavailable()
            await self.send_frame(
                events.error_frame(error.code, error.message, ref=command.ref, retry_after=error.retry_after)
            )
        except MessengerError as error:
            await self.refuse(error, ref=command.ref)
        except Exception:
            logger.exception("socket command failed")
            self.malformed_in_a_row = 0  # the frame itself was well-formed
            await self.send_frame(
                events.error_frame("server_error", "The server could not process this frame.", ref=command.ref)
            )

    async def refuse(self, error: MessengerError, *, ref: Any) -> None:
        """An error frame for a refused frame; too many malformed ones in a row close the socket."""
        if error.code in MALFORMED_CODES:
            self.malformed_in_a_row += 1
        else:
            self.malformed_in_a_row = 0
        own_ref = error.extra.pop("ref", None)
        ref = own_ref if own_ref is not None else ref
        extra = dict(error.extra)
        if error.retry_after:
            extra["retry_after"] = error.retry_after
        await self.send_frame(events.error_frame(error.code, error.message, ref=ref, **extra))
        if self.malformed_in_a_row >= MAX_CONSECUTIVE_ERRORS:
            await self.close(code=CLOSE_TOO_MANY_ERRORS)

    async def handle(self, command: Command) -> list[dict[str, Any]]:
        raise NotImplementedError

    def schedule_typing_stop(self, conversation_id: int, stop: Any) -> None:
        previous = self.typing_timers.pop(conversation_id, None)
        if previous is not None:
            previous.cancel()

        async def later() -> None:
            await asyncio.sleep(settings.MESSENGER_TYPING_TIMEOUT_SECONDS)
            self.typing_timers.pop(conversation_id, None)
            await stop()

        self.typing_timers[conversation_id] = asyncio.ensure_future(later())

    def cancel_typing(self, conversation_id: int) -> None:
        task = self.typing_timers.pop(conversation_id, None)
        if task is not None:
            task.cancel()


class VisitorConsumer(BaseConsumer):
    """``/ws/widget/?widget_token=…&token=…``"""

    commands = VISITOR_COMMANDS

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        origin = header(self.scope, b"origin")
        ip = scope_client_address(self.scope)
        result = await database_sync_to_async(widget.visitor_connect)(
            widget_token=(query.get("widget_token") or [""])[0],
            token=(query.get("token") or [""])[0],
            origin=origin,
            ip=ip,
        )
        if result.origin_forbidden:
            await self.close()  # before accept: the handshake answers 403
            return
        await self.accept()
        if result.error_code is not None:
            await self.send_frame(events.error_frame("unauthenticated", result.error_message or ""))
            await self.close(
                code=CLOSE_UNKNOWN_INBOX if result.error_code == "unknown_inbox" else CLOSE_UNAUTHENTICATED
            )
            return
        visitor = result.contact_inbox
        self.context = commands.VisitorContext(contact_inbox=visitor, ip=ip, page={"origin": origin})
        # The frame rate is the session's: every tab of this visitor draws on one budget.
        self.limiter.share(session_frame_budget(visitor.source_id))
        await self.join(groups.visitor_session_group(visitor.source_id), groups.inbox_group(visitor.inbox_id))
        if visitor.pk is not None:
            await self.join(groups.visitor_group(visitor.pk))
        # Subscribed first, then the snapshot (hello) is read: nothing can fall in between.
        hello, entry, plans = await database_sync_to_async(result.hello_and_live)()
        if visitor.pk is None and result.contact_inbox.pk is not None:
            # Another tab made the rows before this socket joined the session group (which told
            # the others): their stream is joined, then the hello is read again.
            self.context.contact_inbox = result.contact_inbox
            await self.join(groups.visitor_group(result.contact_inbox.pk))
            hello = await database_sync_to_async(result.hello)()
        await self.send_frame(hello)
        await liveness.attach(self)
        self.go_live(entry, plans)

    async def handle(self, command: Command) -> list[dict[str, Any]]:
        if command.type == "ping":
            return [events.pong_frame()]
        if command.type in ("typing.start", "typing.stop"):
            return await self.typing(command)
        if self.context.contact_inbox.pk is None and command.type in commands.CONTACT_COMMANDS:
            # The visitor's rows are made, and this socket joins their stream, before the command
            # writes anything: no frame of it can fall in between.
            visitor = await database_sync_to_async(commands.check_become_contact)(self.context, command)
            if visitor.pk is not None:
                await self.join(groups.visitor_group(visitor.pk))
        frames = await commands.acheck_visitor_command(self.context, command)
        if frames is None:
            frames = await database_sync_to_async(commands.check_visitor_command)(self.context, command)
        self.after_command(command)
        return frames

    # --- the live list and proactive triggers (messenger.actions.visitors) ----------------------

    def go_live(self, entry: LiveVisitor, plans: list[visitors.TriggerPlan]) -> None:
        """Into the live list; the inbox's triggers that may fire on this page are planned."""
        self.trigger_tasks: set[asyncio.Future[None]] = set()
        self.live_id = entry["id"]
        live_visitors.tracker().attach(self.channel_name, entry)
        for plan in plans:
            self.trigger_tasks.add(asyncio.ensure_future(self.fire_trigger_later(plan)))

    async def fire_trigger_later(self, plan: visitors.TriggerPlan) -> None:
        await asyncio.sleep(plan.delay_seconds)
        frame = await database_sync_to_async(visitors.do_fire_trigger)(
            contact_inbox=self.context.contact_inbox, trigger_id=plan.trigger_id
        )
        if frame is not None:
            self.cancel_triggers()
            await self.send_frame(frame)

    def cancel_triggers(self) -> None:
        current = asyncio.current_task()
        for task in getattr(self, "trigger_tasks", ()):
            if task is not current:
                task.cancel()
        self.trigger_tasks = set()

    def after_command(self, command: Command) -> None:
        if command.type == "widget.close":
            self.cancel_triggers()
        elif command.type == "message.send" and self.context.conversation is not None:
            self.cancel_triggers()
            self.set_chatting(self.context.conversation.status, self.context.conversation.pk)

    def set_chatting(self, status: str, conversation_id: int) -> None:
        if hasattr(self, "live_id"):
            visitors.set_chatting(self.live_id, status=status, conversation_id=conversation_id)

    async def fanout(self, event: dict[str, Any]) -> None:
        if event["frame"].startswith(events.SESSION_CONTACT_PREFIX):
            await self.contact_made_elsewhere()
            return
        await super().fanout(event)
        # A conversation's status on the visitor stream tells whether they chat (the live list).
        if event["frame"].startswith(events.CONVERSATION_CHANGED_PREFIXES):
            conversation = json.loads(event["frame"])["data"]["conversation"]
            self.set_chatting(conversation["status"], conversation["id"])

    async def contact_made_elsewhere(self) -> None:
        """Another tab of this visitor made their rows: this one joins their stream, then reads a
        fresh ``hello`` (joined first: nothing written meanwhile is missed)."""
        if self.context.contact_inbox.pk is not None:
            return
        visitor = await database_sync_to_async(contacts.stored_visitor)(self.context.contact_inbox)
        if visitor is None:
            return
        self.context.contact_inbox = visitor
        await self.join(groups.visitor_group(visitor.pk))
        hello = await database_sync_to_async(widget.VisitorConnect(contact_inbox=visitor).hello)()
        await self.send_frame(hello)

    async def disconnect(self, code: int) -> None:
        self.cancel_triggers()
        if hasattr(self, "live_id"):
            live_visitors.tracker().detach(self.channel_name, self.live_id)
        await super().disconnect(code)

    async def typing(self, command: Command) -> list[dict[str, Any]]:
        conversation_id, branch_id, preview_enabled, name = await database_sync_to_async(
            commands.visitor_typing_target
        )(self.context, command.int_field("conversation_id"))
        preview = command.str_field("preview", required=False, max_length=2000) if preview_enabled else None
        targets = groups.staff_groups(branch_id)

        async def stop() -> None:
            frame = events.typing_frame(started=False, conversation_id=conversation_id, who="contact", name=name)
            await abroadcast_ephemeral(targets, frame)

        if command.type == "typing.start":
            frame = events.typing_frame(
                started=True, conversation_id=conversation_id, who="contact", name=name, preview=preview
            )
            await abroadcast_ephemeral(targets, frame)
            self.schedule_typing_stop(conversation_id, stop)
        else:
            self.cancel_typing(conversation_id)
            await stop()
        return []


class OperatorConsumer(BaseConsumer):
    """``/ws/operator/`` — Django session auth (``realtime.session.SessionUserMiddleware``), re-validated
    while the socket is open (``realtime.session.SessionWatch``).

    ``?presence=0``: a socket that only listens for the frames (the reports page): it is not
    presence — no ``AgentConnection``, no presence period, never counted as available, its close
    releases nothing (docs/protocol.md)."""

    commands = OPERATOR_COMMANDS
    rate_multiplier = 10
    counts_presence = True

    async def connect(self) -> None:
        from messenger.access import staff_scope

        if self.scope.get("session_unavailable"):
            raise database_unavailable()
        user = self.scope.get("user")
        scope = await database_sync_to_async(staff_scope)(user)
        await self.accept()
        if scope is None:
            await self.send_frame(events.error_frame("unauthenticated", "Log in as an operator."))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.context = commands.OperatorContext(user=user, scope=scope)
        self.user_name = events.user_name(user)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.counts_presence = (query.get("presence") or ["1"])[0] != "0"
        # Closed with 4003/4005 when the session ends or the role changes while the socket is open.
        session_watch().add(self, session_key=self.scope["session"].session_key, scope=scope)
        if scope.sees_all:
            branch_ids = await database_sync_to_async(_all_branch_ids)()
            await self.join(*groups.supervisor_groups(branch_ids), groups.user_group(user.pk))
        else:
            await self.join(groups.branch_group(scope.branch_id), groups.user_group(user.pk))
        connect = self._connect_presence if self.counts_presence else self._hello_without_presence
        hello = await database_sync_to_async(connect)()
        await self.send_frame(hello)
        await liveness.attach(self)

    def _connect_presence(self) -> dict[str, Any]:
        from messenger.actions.presence import do_connect

        profile = do_connect(user=self.context.user, channel_name=self.channel_name)
        return events.operator_hello(
            self.context.user,
            name=self.user_name,
            role=self.context.scope.role,
            branch_id=profile.branch_id,
            status=profile.status,
            heartbeat=settings.MESSENGER_HEARTBEAT_SECONDS,
        )

    def _hello_without_presence(self) -> dict[str, Any]:
        from messenger.models import AgentProfile, AgentStatus

        profile = AgentProfile.objects.filter(user_id=self.context.user.pk).first()
        return events.operator_hello(
            self.context.user,
            name=self.user_name,
            role=self.context.scope.role,
            branch_id=self.context.scope.branch_id,
            status=profile.status if profile else AgentStatus.OFFLINE,
            heartbeat=settings.MESSENGER_HEARTBEAT_SECONDS,
        )

    async def visitors_batch(self, message: dict[str, Any]) -> None:
        """Merged with the changes not sent yet; at most one ``visitors.changed`` frame a second
        (``visitors.reset`` when more than ``VISITORS_FRAME_MAX`` visitors changed meanwhile)."""
        scope = self.context.scope
        if not scope.sees_all and not scope.branch_id:
            return  # the inboxes without a branch are the supervisors'
        pending = self.__dict__.setdefault("visitor_changes", {})
        for entry in message.get("upserts", ()):
            pending[entry["id"]] = entry
        for visitor_id in message.get("removed", ()):
            pending[visitor_id] = None
        if getattr(self, "visitors_flush", None) is None:
            loop = asyncio.get_running_loop()
            delay = max(
                0.0, getattr(self, "visitors_sent_at", -VISITORS_FRAME_SECONDS) + VISITORS_FRAME_SECONDS - loop.time()
            )
            self.visitors_flush = asyncio.ensure_future(self.send_visitors(delay))

    async def send_visitors(self, delay: float) -> None:
        # The next frame waits a second from the moment this one was written, not from when it
        # was due: a busy loop that wrote this one late does not send the next one early.
        await asyncio.sleep(delay)
        changes, self.visitor_changes = self.visitor_changes, {}
        if len(changes) > VISITORS_FRAME_MAX:
            await self.send_frame(events.visitors_reset_frame())
        else:
            upserts = [entry for entry in changes.values() if entry is not None]
            removed = [visitor_id for visitor_id, entry in changes.items() if entry is None]
            await self.send_frame(events.visitors_changed_frame(upserts=upserts, removed=removed))
        self.visitors_sent_at = asyncio.get_running_loop().time()
        # Changes that came while this frame was written wait for the next one.
        self.visitors_flush = (
            asyncio.ensure_future(self.send_visitors(VISITORS_FRAME_SECONDS)) if self.visitor_changes else None
        )

    async def disconnect(self, code: int) -> None:
        flush = getattr(self, "visitors_flush", None)
        if flush is not None:
            flush.cancel()
        session_watch().discard(self)
        await super().disconnect(code)
        if getattr(self, "context", None) is not None and self.counts_presence:
            from messenger.actions.presence import do_disconnect

            try:
                await database_sync_to_async(do_disconnect)(user=self.context.user, channel_name=self.channel_name)
            except Exception:  # noqa: BLE001 — the sweep removes the row later
                logger.warning("presence disconnect failed", exc_info=True)

    async def handle(self, command: Command) -> list[dict[str, Any]]:
        if command.type == "ping":
            if not self.counts_presence:
                return [events.pong_frame()]
            from messenger.actions.presence import do_heartbeat

            await database_sync_to_async(do_heartbeat)(user=self.context.user, channel_name=self.channel_name)
            return [events.pong_frame()]
        if command.type in ("typing.start", "typing.stop"):
            return await self.typing(command)
        frames = await commands.acheck_operator_command(self.context, command)
        if frames is not None:
            return frames
        return await database_sync_to_async(commands.check_operator_command)(self.context, command)

    async def typing(self, command: Command) -> list[dict[str, Any]]:
        conversation_id, branch_id, contact_inbox_id = await database_sync_to_async(commands.operator_typing_target)(
            self.context, command.int_field("conversation_id")
        )
        targets = [*groups.staff_groups(branch_id)]
        if contact_inbox_id:
            targets.append(groups.visitor_group(contact_inbox_id))

        async def stop() -> None:
            await abroadcast_ephemeral(
                targets,
                events.typing_frame(started=False, conversation_id=conversation_id, who="agent", name=self.user_name),
            )

        if command.type == "typing.start":
            await abroadcast_ephemeral(
                targets,
                events.typing_frame(started=True, conversation_id=conversation_id, who="agent", name=self.user_name),
            )
            self.schedule_typing_stop(conversation_id, stop)
        else:
            self.cancel_typing(conversation_id)
            await stop()
        return []


def _all_branch_ids() -> list[int]:
    from messenger.models import Branch

    return list(Branch.objects.values_list("pk", flat=True))
