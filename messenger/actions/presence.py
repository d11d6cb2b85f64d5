"""Operator presence: manual status × live sockets (AgentConnection rows refreshed by heartbeats).

Who is available or assignable is a read (``messenger.selectors``: ``available_profiles``,
``assignable_profiles``). Here: the changes — connect, heartbeat, disconnect, manual status,
the sweep of dead sockets — and their follow-ups in ``assignment``: an operator who becomes
available is offered the branch queue, one who becomes unavailable hands on the conversations they
have not opened. Presence frames are ephemeral.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messenger import events
from messenger.actions.assignment import do_backlog_sweep, do_release_unopened
from messenger.actions.base import Actor, audit
from messenger.errors import InvalidInput
from messenger.models import AgentConnection, AgentProfile, AgentStatus, Inbox
from messenger.realtime.broadcast import broadcast_on_commit
from messenger.realtime.groups import inbox_group, staff_groups
from messenger.selectors import is_connected, live_cutoff, operators_available

MANUAL_STATUSES = {AgentStatus.ONLINE, AgentStatus.AWAY, AgentStatus.BUSY}


def _broadcast_presence(profile: AgentProfile, *, connected: bool) -> None:
    frame = events.staff_presence_frame(user_id=profile.user_id, status=profile.status, connected=connected)
    broadcast_on_commit(staff_groups(profile.branch_id), frame)
    inboxes = Inbox.objects.filter(is_active=True)
    if profile.branch_id:
        inboxes = inboxes.filter(Q(branch_id=profile.branch_id) | Q(branch__isnull=True))
    for inbox in inboxes:
        from messenger.routing.hours import inbox_is_open

        open_now = inbox_is_open(inbox)
        broadcast_on_commit(
            [inbox_group(inbox.pk)],
            events.visitor_presence_frame(
                operators_available=open_now and operators_available(inbox), within_working_hours=open_now
            ),
        )


def _profile(user: Any) -> AgentProfile:
    profile, _ = AgentProfile.objects.get_or_create(user=user)
    return profile


def do_connect(*, user: Any, channel_name: str) -> AgentProfile:
    now = timezone.now()
    with transaction.atomic():
        was_connected = is_connected(user.pk, now)
        AgentConnection.objects.update_or_create(
            channel_name=channel_name, defaults={"user": user, "last_heartbeat": now}
        )
        profile = _profile(user)
        AgentProfile.objects.filter(pk=profile.pk).update(last_seen=now)
        if not was_connected:
            _broadcast_presence(profile, connected=True)
    if not was_connected and profile.status == AgentStatus.ONLINE:
        do_backlog_sweep(branch_id=profile.branch_id)
    return profile


def do_heartbeat(*, user: Any, channel_name: str) -> None:
    now = timezone.now()
    updated = AgentConnection.objects.filter(channel_name=channel_name).update(last_heartbeat=now)
    if not updated:
        # The sweep removed this socket while it was alive (a long pause): bring it back.
        do_connect(user=user, channel_name=channel_name)
        return
    AgentProfile.objects.filter(user=user).update(last_seen=now)


def do_disconnect(*, user: Any, channel_name: str) -> None:
    with transaction.atomic():
        AgentConnection.objects.filter(channel_name=channel_name).delete()
        still_connected = is_connected(user.pk)
        profile = _profile(user)
        if not still_connected:
            _broadcast_presence(profile, connected=False)
    if not still_connected:
        do_release_unopened(user=user, reason="operator disconnected")


def do_set_status(*, user: Any, status: Any, actor: Actor) -> AgentProfile:
    if status not in MANUAL_STATUSES and status != AgentStatus.OFFLINE:
        raise InvalidInput("status: one of online, away, busy, offline")
    with transaction.atomic():
        profile = AgentProfile.objects.select_for_update().get(pk=_profile(user).pk)
        previous = profile.status
        if previous == status:
            return profile
        profile.status = status
        profile.save(update_fields=["status"])
        audit(actor, "agent.status", target=profile, payload={"from": previous, "to": status})
        _broadcast_presence(profile, connected=is_connected(user.pk))
    if status == AgentStatus.ONLINE:
        do_backlog_sweep(branch_id=profile.branch_id)
    elif status == AgentStatus.OFFLINE:
        do_release_unopened(user=user, reason="operator went offline")
    return profile


def do_presence_sweep(now: datetime | None = None) -> int:
    """Remove sockets that stopped heartbeating; operators left with none become unavailable."""
    now = now or timezone.now()
    stale = list(AgentConnection.objects.filter(last_heartbeat__lt=live_cutoff(now)).select_related("user"))
    for connection in stale:
        do_disconnect(user=connection.user, channel_name=connection.channel_name)
    return len(stale)
