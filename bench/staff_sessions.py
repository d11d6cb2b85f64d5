"""What re-validating the open operator sockets costs (``messenger.realtime.session.SessionWatch``).

    .venv/bin/python bench/staff_sessions.py                      # 50, 200 and 500 sockets
    .venv/bin/python bench/staff_sessions.py --sockets 200 --rounds 50

Every ``MESSENGER_STAFF_SESSION_CHECK_SECONDS`` each server process checks all of its operator
sockets in one database hop (``staff_scopes_now``): one query for the sessions and one for the
users. This times that hop against the benchmark's PostgreSQL database, one session per socket (the
worst case: no two sockets share a browser), and prints the queries, the median and the worst
wall time of a check, and the share of one database thread it takes at the default period.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import service_arguments, setup_django, vacuum  # noqa: E402


def sessions_for(count: int) -> list[tuple[str, int]]:
    """``count`` staff users of the benchmark, each logged in once: (session key, user id)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from messenger.models import AgentProfile

    pairs = []
    for index in range(count):
        user, created = get_user_model().objects.get_or_create(username=f"bench-staff-{index}")
        if created:
            user.set_password(f"bench-staff-{index}")
            user.save()
            AgentProfile.objects.create(user=user)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        pairs.append((session.session_key, user.pk))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, nargs="*", default=[50, 200, 500])
    parser.add_argument("--rounds", type=int, default=30)
    service_arguments(parser)
    args = parser.parse_args()
    database = args.database_url.rsplit("/", 1)[-1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {database}"],
        capture_output=True,
        check=False,
    )
    setup_django(args)

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from messenger.realtime.session import staff_scopes_now

    vacuum(args)
    period = settings.MESSENGER_STAFF_SESSION_CHECK_SECONDS
    for count in args.sockets:
        pairs = sessions_for(count)
        with CaptureQueriesContext(connection) as queries:
            staff_scopes_now(pairs)  # also warms prepared statements and caches
        times = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            scopes = staff_scopes_now(pairs)
            times.append(time.perf_counter() - started)
        assert all(scope is not None for scope in scopes.values())
        median = statistics.median(times)
        print(
            f"{count} sockets: {len(queries)} queries, median {median * 1000:.1f} ms, "
            f"worst {max(times) * 1000:.1f} ms per check; every {period} s that is "
            f"{median / period * 100:.2f} % of one database thread"
        )


if __name__ == "__main__":
    main()
