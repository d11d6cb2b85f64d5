"""Operator presence: manual status × live sockets (AgentConnection rows refreshed by heartbeats).

Who is available or assignable is a read (``messenger.selectors``: ``available_profiles``,
``assignable_profiles``). Here: the changes — connect, heartbeat, disconnect, manual status,
the sweep of dead sockets — and their follow-ups in ``assignment``: an operator who becomes
available is offered the branch queue, one who becomes unavailable hands on the conversations they
have not opened. Presence frames are ephemeral.

Each change also keeps the operator's ``PresencePeriod`` log (docs/analytics.md, "Time online /
away / busy") in its own transaction: ``_sync_period`` locks the profile row, then opens, keeps or
closes the one open period. Heartbeats write no period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messenger import events
from messenger.actions.assignment import do_backlog_sweep, do_release_unopened
from messenger.actions.base import Actor, audit
from messenger.errors import InvalidInput
from messenger.models import AgentConnection, AgentProfile, AgentStatus, Inbox, PresencePeriod
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


def _sync_period(
    profile: AgentProfile, now: datetime, *, fresh_channel: str | None = None, ended_at: datetime | None = None
) -> None:
    """Make the open ``PresencePeriod`` of ``profile``'s user match their presence now. The caller
    holds the profile row locked (``select_for_update``), so two sockets, a status change and the
    sweep of one operator take turns here, each seeing what the previous one committed.

    The period's status is the manual status while a socket row exists with a live heartbeat;
    none (offline) otherwise. ``fresh_channel``: the socket being connected — an open period then
    continues only if another socket is live too (else it was left open by dead sockets or a crashed
    process and is closed at their last heartbeat). ``ended_at``: when the presence being removed
    ended (the clean close: now; the sweep: the dead socket's last heartbeat). A period closed
    because no live socket remains ends at the latest of ``ended_at`` and the dead sockets' last
    heartbeats; one closed by a status change ends now.
    """
    cutoff = now - timedelta(seconds=settings.MESSENGER_PRESENCE_TIMEOUT_SECONDS)
    sockets = list(
        AgentConnection.objects.filter(user_id=profile.user_id).values_list("channel_name", "last_heartbeat")
    )
    others = [heartbeat for channel, heartbeat in sockets if channel != fresh_channel]
    others_live = any(heartbeat >= cutoff for heartbeat in others)
    live = others_live or any(channel == fresh_channel for channel, _ in sockets)
    wanted = profile.status if live and profile.status in MANUAL_STATUSES else None
    current = PresencePeriod.objects.filter(user_id=profile.user_id, ended_at__isnull=True).first()
    if current is not None and current.status == wanted and (fresh_channel is None or others_live):
        return
    if current is not None:
        ends = [] if others_live else [heartbeat for heartbeat in others if heartbeat < cutoff]
        if ended_at is not None:
            ends.append(ended_at)
        end = max(ends) if ends else now
        current.ended_at = min(max(end, current.started_at), now)
        current.save(update_fields=["ended_at"])
    if wanted is not None:
        PresencePeriod.objects.create(user_id=profile.user_id, status=wanted, started_at=now)


def _locked_profile(user: Any) -> AgentProfile:
    """The user's profile row, locked until the transaction ends (made first if missing)."""
    profile = AgentProfile.objects.select_for_update().filter(user_id=user.pk).first()
    if profile is None:
        profile = AgentProfile.objects.select_for_update().get(pk=_profile(user).pk)
    return profile


def do_connect(*, user: Any, channel_name: str) -> AgentProfile:
    now = timezone.now()
    with transaction.atomic():
        # Read under the profile lock: a parallel close of this operator's other socket (a
        # dashboard reload) has either committed (its row is gone, this socket sweeps the queue)
        # or waits for this one (and then sees this socket: it releases nothing).
        profile = _locked_profile(user)
        was_connected = is_connected(user.pk, now)
        AgentConnection.objects.update_or_create(
            channel_name=channel_name, defaults={"user": user, "last_heartbeat": now}
        )
        _sync_period(profile, now, fresh_channel=channel_name)
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


def do_disconnect(*, user: Any, channel_name: str, last_heartbeat: datetime | None = None) -> None:
    """A socket closed (``last_heartbeat``: the sweep found it dead; its presence ended then)."""
    now = timezone.now()
    with transaction.atomic():
        sockets = AgentConnection.objects.filter(channel_name=channel_name)
        if last_heartbeat is not None:
            sockets = sockets.filter(last_heartbeat__lte=last_heartbeat)
        deleted, _ = sockets.delete()
        if not deleted and last_heartbeat is not None:
            return  # it heartbeated (or closed) since the sweep looked: not dead after all
        profile = _locked_profile(user)
        _sync_period(profile, now, ended_at=last_heartbeat or now)
        still_connected = is_connected(user.pk, now)
        if not still_connected:
            _broadcast_presence(profile, connected=False)
    if not still_connected:
        do_release_unopened(user=user, reason="operator disconnected")


def do_set_status(*, user: Any, status: Any, actor: Actor) -> AgentProfile:
    if status not in MANUAL_STATUSES and status != AgentStatus.OFFLINE:
        raise InvalidInput("status: one of online, away, busy, offline")
    with transaction.atomic():
        profile = _locked_profile(user)
        previous = profile.status
        if previous == status:
            return profile
        profile.status = status
        profile.save(update_fields=["status"])
        _sync_period(profile, timezone.now())
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
        do_disconnect(
            user=connection.user, channel_name=connection.channel_name, last_heartbeat=connection.last_heartbeat
        )
    return len(stale)


def do_purge_presence_log(now: datetime | None = None) -> int:
    """Delete the periods that ended more than ``MESSENGER_PRESENCE_LOG_DAYS`` ago (0 keeps them)."""
    days = settings.MESSENGER_PRESENCE_LOG_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = PresencePeriod.objects.filter(ended_at__lt=cutoff).delete()
    return deleted
