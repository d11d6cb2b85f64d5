"""django-q2 entry points (``setup_schedules``): the tick loop and the daily retention. The jobs
they run are listed in ``messenger.scheduler``; each is safe to run twice.

django-q2's scheduler has minute granularity, so ``tick`` is scheduled every minute and itself
loops, running ``run_due_jobs`` every ``MESSENGER_TICK_SECONDS``: escalation fires within seconds
of its deadline. Two schedules, offset by 30 s, make sure a new tick starts before the running one
ends; a cache lock with handover keeps one looping tick at a time (the jobs are safe to overlap
anyway, the lock only saves work and a worker).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from messenger.actions.mail import do_send_email
from messenger.actions.webhooks import do_deliver
from messenger.scheduler import run_due_jobs, run_retention

TICK_LOCK_KEY = "scheduler:tick:owner"
TICK_HANDOVER_KEY = "scheduler:tick:handover"
LAST_TICK_KEY = "scheduler:tick:last"
# Below Q_CLUSTER["timeout"] (90 s) so a tick is never killed mid-pass, above the 60 s spacing
# of the staggered schedules (plus the q2 scheduler's own 30 s polling) so ticks overlap.
TICK_RUN_SECONDS = 80


def retention() -> dict[str, int]:
    """The retention jobs (``scheduler.RETENTION_JOBS``): django-q2's daily ``messenger.retention``."""
    return run_retention()


def deliver_webhook(delivery_pk: int, attempts: int) -> str | None:
    """One attempt at a webhook delivery claimed by the tick (``jobs.submit``); safe to run twice."""
    return do_deliver(delivery_pk=delivery_pk, attempts=attempts)


def _release(token: str) -> None:
    if cache.get(TICK_LOCK_KEY) == token:
        cache.delete(TICK_LOCK_KEY)


def tick(run_seconds: float | None = None) -> dict[str, Any]:
    """Run the due jobs every ``MESSENGER_TICK_SECONDS`` for up to ``run_seconds``.

    A newer tick asks the running one to hand over (``TICK_HANDOVER_KEY``) and takes the lock
    when it is released, so the loop never stops between two scheduled ticks.
    """
    interval = max(0.2, float(settings.MESSENGER_TICK_SECONDS))
    run_seconds = TICK_RUN_SECONDS if run_seconds is None else run_seconds
    lock_ttl = int(interval * 5) + 5
    token = uuid.uuid4().hex
    started = time.monotonic()
    wait_until = started + interval * 3 + 2
    while not cache.add(TICK_LOCK_KEY, token, timeout=lock_ttl):
        cache.set(TICK_HANDOVER_KEY, token, timeout=lock_ttl)
        if time.monotonic() > wait_until:
            return {"passes": 0, "skipped": True}
        time.sleep(0.1)
    if cache.get(TICK_HANDOVER_KEY) == token:
        cache.delete(TICK_HANDOVER_KEY)
    passes = 0
    totals: dict[str, int] = {}
    try:
        while True:
            pass_started = time.monotonic()
            for name, count in run_due_jobs().items():
                totals[name] = totals.get(name, 0) + count
            passes += 1
            cache.set(TICK_LOCK_KEY, token, timeout=lock_ttl)
            cache.set(LAST_TICK_KEY, timezone.now().isoformat(), timeout=3600)
            handover = cache.get(TICK_HANDOVER_KEY)
            if handover and handover != token:
                break
            if time.monotonic() - started + interval > run_seconds:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - pass_started)))
    finally:
        _release(token)
    return {"passes": passes, **totals}


def send_email(email_id: int) -> str:
    """One outbox e-mail (``messenger.actions.mail.do_send_email``); safe to run twice."""
    return do_send_email(email_id).status
