"""Work handed off the current thread, for the outboxes (webhook deliveries, e-mails): a tick job
claims the due rows and calls ``submit`` once per row; the work itself runs elsewhere, so a slow
receiver never holds up escalation or the snooze wake-ups of the same tick.

Where it runs is ``MESSENGER_JOBS``:

* ``q2`` (production): a django-q2 task (``async_task``), run by the ``worker`` process;
* ``threads`` (the embedded default, which has no q2 cluster): small pools of threads of the web
  process itself, one per submitted function, so that slow webhook receivers, which can each hold
  a thread for the request's whole deadline, never make an e-mail wait;
* ``inline`` (the test suite): at once, in the calling thread.

A submitted function takes plain ids and is safe to run twice (it claims its row first).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

_pools: dict[str, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()


def submit(func_path: str, *args: Any) -> None:
    """Run ``func_path(*args)`` (a dotted path, as django-q2 takes it) where ``MESSENGER_JOBS`` says."""
    mode = settings.MESSENGER_JOBS
    if mode == "q2":
        from django_q.tasks import async_task

        async_task(func_path, *args)
    elif mode == "threads":
        _threads(func_path).submit(_run_in_thread, func_path, args)
    else:
        import_string(func_path)(*args)


def _threads(func_path: str) -> ThreadPoolExecutor:
    """The pool of ``func_path``'s jobs (``MESSENGER_JOB_THREADS`` threads each)."""
    with _pool_lock:
        pool = _pools.get(func_path)
        if pool is None:
            name = func_path.rsplit(".", 1)[-1]
            pool = ThreadPoolExecutor(max_workers=settings.MESSENGER_JOB_THREADS, thread_name_prefix=f"job-{name}")
            _pools[func_path] = pool
        return pool


def _run_in_thread(func_path: str, args: tuple[Any, ...]) -> None:
    try:
        import_string(func_path)(*args)
    except Exception:
        logger.exception("job %s%r failed", func_path, args)
    finally:
        close_old_connections()


def drain() -> None:
    """Wait for the threads' jobs to finish and let the pools go (a new ``submit`` starts new
    ones): for a test, or a process shutting down, that must not leave a job mid-write."""
    with _pool_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True)
