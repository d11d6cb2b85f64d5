"""django-q2 entry points. Each takes ids (or nothing), calls actions, and is safe to run twice.

django-q2's scheduler has minute granularity, so ``tick`` is scheduled every minute and itself
loops, running ``run_due_jobs`` every ``MESSENGER_TICK_SECONDS``: escalation fires within seconds
of its deadline. Two schedules, offset by 30 s, make sure a new tick starts before the running one
ends; a cache lock with handover keeps one looping tick at a time (the jobs are safe to overlap
anyway, the lock only saves work and a worker).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

TICK_LOCK_KEY = "scheduler:tick:owner"
TICK_HANDOVER_KEY = "scheduler:tick:handover"
LAST_TICK_KEY = "scheduler:tick:last"
RETENTION_GATE_KEY = "scheduler:retention:gate"
# Below Q_CLUSTER["timeout"] (90 s) so a tick is never killed mid-pass, above the 60 s spacing
# of the staggered schedules (plus the q2 scheduler's own 30 s polling) so ticks overlap.
TICK_RUN_SECONDS = 80


def extra_jobs() -> dict[str, int]:
    """Jobs of this module run on every scheduler pass (after presence and escalation)."""
    from messenger.actions.assignment import do_backlog_sweep_all
    from messenger.actions.schedule import do_wake_snoozed

    results: dict[str, int] = {}
    for name, job in (("snooze", do_wake_snoozed), ("backlog", do_backlog_sweep_all)):
        try:
            results[name] = job()
        except Exception:
            logger.exception("scheduled job %s failed", name)
    # The embedded default has no q2 cluster: retention rides on the tick, at most once an hour.
    if cache.add(RETENTION_GATE_KEY, 1, timeout=3600):
        results.update(retention())
    return results


def retention() -> dict[str, int]:
    """Resolved → closed after N days; closed anonymous conversations purged after M months;
    contacts that never wrote purged after D idle days."""
    from messenger.actions.schedule import do_close_resolved, do_purge_anonymous, do_purge_unused_contacts

    results: dict[str, int] = {}
    for name, job in (
        ("retention_closed", do_close_resolved),
        ("retention_purged", do_purge_anonymous),
        ("retention_unused_contacts", do_purge_unused_contacts),
    ):
        try:
            results[name] = job()
        except Exception:
            logger.exception("retention job %s failed", name)
    return results


def _release(token: str) -> None:
    if cache.get(TICK_LOCK_KEY) == token:
        cache.delete(TICK_LOCK_KEY)


def tick(run_seconds: float | None = None) -> dict[str, Any]:
    """Run the due jobs every ``MESSENGER_TICK_SECONDS`` for up to ``run_seconds``.

    A newer tick asks the running one to hand over (``TICK_HANDOVER_KEY``) and takes the lock
    when it is released, so the loop never stops between two scheduled ticks.
    """
    from messenger.scheduler import run_due_jobs

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
