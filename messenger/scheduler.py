"""The scheduler tick, and running it inside the web process in the embedded default.

In production django-q2 runs ``messenger.tasks.tick`` (see setup_schedules). In the embedded
default the in-memory channel layer does not cross processes, so the web process itself runs the
tick as an asyncio task on its own event loop: broadcasts made by the sweeps reach live sockets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

logger = logging.getLogger(__name__)


def run_due_jobs() -> dict[str, int]:
    """One pass of every time-driven job; each is idempotent and safe to run concurrently."""
    from messenger.actions.assignment import do_escalate_due
    from messenger.actions.presence import do_presence_sweep

    results: dict[str, int] = {}
    for name, job in (("presence", do_presence_sweep), ("escalation", do_escalate_due)):
        try:
            results[name] = job()
        except Exception:
            logger.exception("scheduled job %s failed", name)
    from messenger import tasks

    results.update(tasks.extra_jobs())
    return results


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
