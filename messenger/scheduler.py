"""Every time-driven job, listed here and nowhere else, and the ticker of the embedded default.

``TICK_JOBS`` run on every pass, every ``MESSENGER_TICK_SECONDS``; ``RETENTION_JOBS`` daily in
production (``messenger.tasks.retention``) and, on the tick, at most once an hour (the embedded
default has no q2 cluster). Each job is idempotent and safe to run concurrently: it locks each row
and re-checks it.

In production django-q2 runs ``messenger.tasks.tick`` (see setup_schedules). In the embedded
default the in-memory channel layer does not cross processes, so the web process itself runs the
tick as an asyncio task on its own event loop: broadcasts made by the sweeps reach live sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache

from messenger.actions.assignment import do_backlog_sweep_all, do_escalate_due
from messenger.actions.mail import do_claim_due_emails, do_notify_unread_due, do_purge_old_emails
from messenger.actions.presence import do_presence_sweep, do_purge_presence_log
from messenger.actions.report_facts import do_fill_working_seconds
from messenger.actions.schedule import (
    do_close_resolved,
    do_purge_anonymous,
    do_purge_unused_contacts,
    do_wake_snoozed,
)
from messenger.actions.webhooks import do_purge_delivery_log, do_send_due_deliveries
from messenger.actions.widget import do_publish_queue_places

logger = logging.getLogger(__name__)

# name → job, in the order of a pass: dead sockets first (their operators' unopened conversations
# move on), then escalation, snoozed wake-ups, and the queue offered to whoever is free; then the
# e-mails: the unread reminders are written, and every due e-mail is handed to a send job. The
# visitors still waiting then learn their place in the queue as the sweeps left it.
TICK_JOBS: dict[str, Callable[[], int]] = {
    "presence": do_presence_sweep,
    "escalation": do_escalate_due,
    "snooze": do_wake_snoozed,
    "backlog": do_backlog_sweep_all,
    "queue_places": do_publish_queue_places,
    "email_unread": do_notify_unread_due,
    "email": do_claim_due_emails,
    # The webhook outbox: claims the due deliveries, sent elsewhere (messenger.jobs).
    "webhooks": do_send_due_deliveries,
    # The reports' working-hours first response of the conversations answered since.
    "report_facts": do_fill_working_seconds,
}
# Resolved → closed after N days; closed anonymous conversations purged after M months; contacts
# that never wrote purged after D idle days; sent and failed e-mails deleted after K days; finished
# webhook deliveries purged after W days; presence periods (time online in the reports) after P days.
RETENTION_JOBS: dict[str, Callable[[], int]] = {
    "retention_closed": do_close_resolved,
    "retention_purged": do_purge_anonymous,
    "retention_unused_contacts": do_purge_unused_contacts,
    "retention_emails": do_purge_old_emails,
    "retention_webhook_deliveries": do_purge_delivery_log,
    "retention_presence_log": do_purge_presence_log,
}
RETENTION_GATE_KEY = "scheduler:retention:gate"


def _run(jobs: dict[str, Callable[[], int]]) -> dict[str, int]:
    results: dict[str, int] = {}
    for name, job in jobs.items():
        try:
            results[name] = job()
        except Exception:
            logger.exception("scheduled job %s failed", name)
    return results


def run_due_jobs() -> dict[str, int]:
    """One pass: every tick job, and the retention jobs when they have not run within the hour."""
    results = _run(TICK_JOBS)
    if cache.add(RETENTION_GATE_KEY, 1, timeout=3600):
        results.update(run_retention())
    return results


def run_retention() -> dict[str, int]:
    return _run(RETENTION_JOBS)


class EmbeddedSchedulerMiddleware:
    """Starts the in-process ticker on the first connection (the server's loop is running then)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not self.started and settings.MESSENGER_EMBEDDED_SCHEDULER and scope["type"] in ("http", "websocket"):
            self.started = True
            asyncio.ensure_future(self._loop())
            logger.info("embedded scheduler started (every %s s)", settings.MESSENGER_TICK_SECONDS)
        return await self.app(scope, receive, send)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(settings.MESSENGER_TICK_SECONDS)
            try:
                await database_sync_to_async(run_due_jobs)()
            except Exception:
                logger.exception("embedded scheduler tick failed")
