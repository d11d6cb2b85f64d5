"""The presence-period log (docs/analytics.md, "Time online / away / busy"): what opens, keeps and
closes an operator's period — sockets, status changes, the sweep, a crashed process — its
invariants under real concurrency on PostgreSQL (two tabs, the sweep against a reconnect), the
report's seconds per status with clipping at the range's edges, and the retention job."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError, connections, transaction
from django.urls import reverse
from django.utils import timezone

from messenger import reports
from messenger.access import StaffScope
from messenger.actions.base import Actor
from messenger.actions.presence import (
    do_connect,
    do_disconnect,
    do_heartbeat,
    do_presence_sweep,
    do_purge_presence_log,
    do_set_status,
)
from messenger.models import AgentConnection, AgentRole, AgentStatus, PresencePeriod
from tests.conftest import operator_socket
from tests.factories import make_branch, make_inbox, make_user
from tests.test_reports import api_for
from tests.test_routing_helpers import is_postgres
from tests.test_staff_sessions import closed_within, logged_in, open_socket

ME = Actor.system("test")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def periods(user) -> list[tuple[str, datetime, datetime | None]]:
    return list(
        PresencePeriod.objects.filter(user=user)
        .order_by("started_at", "id")
        .values_list("status", "started_at", "ended_at")
    )


def check_invariants(user) -> None:
    """At most one open period, and it is the latest; no two periods overlap; none ends before it starts."""
    rows = periods(user)
    assert sum(1 for _, _, ended in rows if ended is None) <= 1, rows
    for (_, start, end), (_, next_start, _) in zip(rows, rows[1:], strict=False):
        assert end is not None and start <= end <= next_start, rows
    if rows and rows[-1][2] is not None:
        assert rows[-1][1] <= rows[-1][2]


def age_socket(channel_name: str, heartbeat: datetime) -> None:
    """The socket stopped heartbeating at ``heartbeat`` (the test's clock, not the action's)."""
    AgentConnection.objects.filter(channel_name=channel_name).update(last_heartbeat=heartbeat)


def age_open_period(user, started_at: datetime) -> None:
    PresencePeriod.objects.filter(user=user, ended_at__isnull=True).update(started_at=started_at)


# --- the actions --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_connect_opens_status_switches_and_the_last_tab_closes():
    user = make_user(status=AgentStatus.ONLINE)
    do_connect(user=user, channel_name="t.a")
    assert [status for status, _, ended in periods(user) if ended is None] == ["online"]

    do_set_status(user=user, status=AgentStatus.AWAY, actor=ME)
    (online, online_start, online_end), (away, away_start, away_end) = periods(user)
    assert (online, away) == ("online", "away")
    assert online_end is not None and online_end == away_start and away_end is None

    do_connect(user=user, channel_name="t.b")  # a second tab: the same period goes on
    do_heartbeat(user=user, channel_name="t.a")  # no write per heartbeat
    assert len(periods(user)) == 2
    do_disconnect(user=user, channel_name="t.a")  # one tab of two closed: still away
    assert periods(user)[-1][2] is None
    do_disconnect(user=user, channel_name="t.b")  # the last one: offline
    assert periods(user)[-1][2] is not None
    assert PresencePeriod.objects.filter(user=user, ended_at__isnull=True).count() == 0
    check_invariants(user)


@pytest.mark.django_db
def test_status_without_a_socket_and_offline():
    user = make_user(status=AgentStatus.OFFLINE)
    do_set_status(user=user, status=AgentStatus.ONLINE, actor=ME)
    assert periods(user) == []  # no socket: offline whatever the switch says
    do_connect(user=user, channel_name="t.a")
    do_set_status(user=user, status=AgentStatus.BUSY, actor=ME)
    do_set_status(user=user, status=AgentStatus.BUSY, actor=ME)  # no change, no period
    do_set_status(user=user, status=AgentStatus.OFFLINE, actor=ME)
    assert [(status, ended is None) for status, _, ended in periods(user)] == [("online", False), ("busy", False)]
    do_connect(user=user, channel_name="t.b")  # offline with two sockets: still nothing open
    assert PresencePeriod.objects.filter(user=user, ended_at__isnull=True).count() == 0
    check_invariants(user)


@pytest.mark.django_db
def test_the_sweep_closes_a_dead_socket_period_at_its_last_heartbeat():
    user = make_user()
    now = timezone.now()
    do_connect(user=user, channel_name="t.a")
    age_open_period(user, now - timedelta(minutes=30))
    age_socket("t.a", now - timedelta(minutes=10))
    assert do_presence_sweep() == 1
    assert periods(user) == [("online", now - timedelta(minutes=30), now - timedelta(minutes=10))]


@pytest.mark.django_db
def test_the_sweep_with_two_dead_tabs_ends_at_the_later_heartbeat():
    user = make_user()
    now = timezone.now()
    do_connect(user=user, channel_name="t.a")
    do_connect(user=user, channel_name="t.b")
    age_open_period(user, now - timedelta(minutes=30))
    age_socket("t.a", now - timedelta(minutes=20))
    age_socket("t.b", now - timedelta(minutes=5))
    assert do_presence_sweep() == 2
    assert periods(user) == [("online", now - timedelta(minutes=30), now - timedelta(minutes=5))]


@pytest.mark.django_db
def test_a_crashed_process_period_ends_at_its_last_heartbeat_on_reconnect():
    """The process died: its socket row and the open period stayed. A new socket before the sweep
    ran closes the old period at the dead socket's last heartbeat and opens a new one."""
    user = make_user()
    now = timezone.now()
    do_connect(user=user, channel_name="old")
    age_open_period(user, now - timedelta(hours=2))
    age_socket("old", now - timedelta(hours=1))
    do_connect(user=user, channel_name="new")
    (_, start, end), (_, new_start, new_end) = periods(user)
    assert (start, end) == (now - timedelta(hours=2), now - timedelta(hours=1))
    assert new_start >= now and new_end is None
    do_presence_sweep()  # the dead row goes; the new period stays
    assert len(periods(user)) == 2 and periods(user)[-1][2] is None
    check_invariants(user)


@pytest.mark.django_db
def test_a_heartbeat_after_the_sweep_reopens():
    user = make_user()
    now = timezone.now()
    do_connect(user=user, channel_name="t.a")
    age_open_period(user, now - timedelta(minutes=5))
    age_socket("t.a", now - timedelta(minutes=3))
    do_presence_sweep()
    do_heartbeat(user=user, channel_name="t.a")  # it was only paused: back, a new period
    assert [ended is None for _, _, ended in periods(user)] == [False, True]
    check_invariants(user)


@pytest.mark.django_db
def test_one_open_period_per_user_is_enforced_by_the_database():
    user = make_user()
    PresencePeriod.objects.create(user=user, status="online", started_at=timezone.now())
    with pytest.raises(IntegrityError), transaction.atomic():
        PresencePeriod.objects.create(user=user, status="away", started_at=timezone.now())


@pytest.mark.django_db(transaction=True)
async def test_the_operator_socket_opens_and_closes_the_period():
    user = await database_sync_to_async(make_user)(status=AgentStatus.ONLINE)
    first, second = await operator_socket(user), await operator_socket(user)
    for socket in (first, second):
        assert (await socket.connect())[0]
        await socket.expect("hello")
    rows = await database_sync_to_async(periods)(user)
    assert [(status, ended) for status, _, ended in rows] == [("online", None)]
    await first.command("status.set", status="busy")
    await first.close()
    rows = await database_sync_to_async(periods)(user)
    assert [(status, ended is None) for status, _, ended in rows] == [("online", False), ("busy", True)]
    await second.close()
    rows = await database_sync_to_async(periods)(user)
    assert [ended is None for _, _, ended in rows] == [False, False]
    await database_sync_to_async(check_invariants)(user)


@pytest.mark.django_db(transaction=True)
async def test_logging_out_ends_the_period_with_the_socket():
    user = await database_sync_to_async(make_user)(branch=await database_sync_to_async(make_branch)())
    browser = await database_sync_to_async(logged_in)(user)
    socket = await open_socket(browser)
    assert [ended for _, _, ended in await database_sync_to_async(periods)(user)] == [None]
    assert (await database_sync_to_async(browser.post)(reverse("logout"))).status_code == 302
    await closed_within(socket, 5)
    await socket.close()  # the server's disconnect (the consumer's ``disconnect``)
    rows = await database_sync_to_async(periods)(user)
    assert len(rows) == 1 and rows[0][2] is not None


# --- races (PostgreSQL: SQLite serialises writers) ------------------------------------------------


def _together(*jobs: Callable[[], None]) -> list[BaseException]:
    barrier, errors = threading.Barrier(len(jobs)), []

    def run(job: Callable[[], None]) -> None:
        try:
            barrier.wait()
            job()
        except Exception as error:  # noqa: BLE001 — reported by the caller's assertion
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_tabs_racing_open_and_close_one_period():
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    user = make_user(branch=make_branch())
    for round_ in range(5):
        names = [f"race.{round_}.{tab}" for tab in range(6)]
        jobs = [lambda name=name: do_connect(user=user, channel_name=name) for name in names]
        assert _together(*jobs) == []
        assert [ended for _, _, ended in periods(user)].count(None) == 1
        jobs = [lambda name=name: do_disconnect(user=user, channel_name=name) for name in names]
        assert _together(*jobs) == []
        assert PresencePeriod.objects.filter(user=user, ended_at__isnull=True).count() == 0
        check_invariants(user)
    assert PresencePeriod.objects.filter(user=user).count() == 5


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_the_sweep_racing_a_reconnect_and_a_status_change():
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    user = make_user(branch=make_branch())
    for round_ in range(6):
        now = timezone.now()
        dead = f"dead.{round_}"
        do_connect(user=user, channel_name=dead)
        age_open_period(user, now - timedelta(minutes=10))
        age_socket(dead, now - timedelta(minutes=5))
        status = AgentStatus.AWAY if round_ % 2 else AgentStatus.ONLINE
        errors = _together(
            do_presence_sweep,
            lambda round_=round_: do_connect(user=user, channel_name=f"live.{round_}"),
            lambda status=status: do_set_status(user=user, status=status, actor=ME),
        )
        assert errors == []
        check_invariants(user)
        rows = periods(user)
        # Whoever came first, the dead socket's time ends at its last heartbeat ...
        assert (now - timedelta(minutes=10), now - timedelta(minutes=5)) in [(start, end) for _, start, end in rows]
        # ... and the live socket leaves exactly one period open, with the status chosen.
        assert [(kind, ended) for kind, _, ended in rows if ended is None] == [(status, None)]
        assert not AgentConnection.objects.filter(channel_name=dead).exists()
        do_disconnect(user=user, channel_name=f"live.{round_}")
        PresencePeriod.objects.filter(user=user).delete()


# --- the report ---------------------------------------------------------------------------------


@pytest.fixture
def logged():
    """Olga's periods around 2026-03-29 (Europe/Berlin: the day is 2026-03-28 23:00 → 03-29 22:00 UTC)."""
    branch = make_branch(name="Alpha")
    make_inbox(branch)
    olga = make_user("olga", first_name="Olga", branch=branch)
    ivan = make_user("ivan", first_name="Ivan", branch=make_branch(name="Beta"))
    rows = [
        (olga, "online", utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 1, 0)),  # clipped: 2 h from 23:00
        (olga, "away", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15)),  # 900 s
        (olga, "online", utc(2026, 3, 29, 8, 0), utc(2026, 3, 29, 9, 30)),  # 5400 s
        (olga, "busy", utc(2026, 3, 29, 21, 0), utc(2026, 3, 30, 2, 0)),  # clipped: 1 h to 22:00
        (olga, "online", utc(2026, 3, 27, 8, 0), utc(2026, 3, 27, 9, 0)),  # before the range
        (ivan, "online", utc(2026, 3, 29, 12, 0), None),  # still open: to the range's end
    ]
    for user, status, start, end in rows:
        PresencePeriod.objects.create(user=user, status=status, started_at=start, ended_at=end)
    return {"olga": olga, "ivan": ivan, "supervisor": make_user(role=AgentRole.SUPERVISOR), "alpha": branch}


BERLIN_DAY = {"start": "2026-03-29", "end": "2026-03-29", "tz": "Europe/Berlin"}


@pytest.mark.django_db
def test_report_seconds_clipped_to_the_range(logged):
    api = api_for(logged["supervisor"])
    rows = {row["name"]: row for row in api.get("reports/operators", BERLIN_DAY).json()["results"]}
    # Olga: online 7200 + 5400, away 900, busy 3600. No conversations: a row all the same.
    assert {key: rows["Olga"][key] for key in ("online_seconds", "away_seconds", "busy_seconds", "new")} == {
        "online_seconds": 12600.0,
        "away_seconds": 900.0,
        "busy_seconds": 3600.0,
        "new": 0,
    }
    # Ivan's open period (from 12:00 UTC) counts to the range's end, 22:00 UTC: 10 h.
    assert rows["Ivan"]["online_seconds"] == 36000.0
    text = api.get("reports/operators/csv", BERLIN_DAY).content.decode()
    table = {row["name"]: row for row in csv.DictReader(io.StringIO(text))}
    assert (table["Olga"]["online_seconds"], table["Olga"]["busy_seconds"]) == ("12600.0", "3600.0")
    # The branch filter keeps the operators of that branch; an operator sees only their own.
    alpha = api.get("reports/operators", {**BERLIN_DAY, "branch": logged["alpha"].pk}).json()["results"]
    assert [row["name"] for row in alpha] == ["Olga"]
    own = api_for(logged["ivan"]).get("reports/operators", BERLIN_DAY).json()["results"]
    assert [(row["name"], row["online_seconds"]) for row in own] == [("Ivan", 36000.0)]


@pytest.mark.django_db
def test_an_open_period_counts_up_to_now(logged):
    now = timezone.now()
    today = now.date()
    started = now - timedelta(hours=1)
    PresencePeriod.objects.filter(user=logged["ivan"]).update(started_at=started)
    scope = StaffScope(user_id=logged["supervisor"].pk, role=AgentRole.SUPERVISOR, branch_id=None)
    report = reports.report(scope, reports.ReportParams(start=today - timedelta(days=1), end=today))
    seconds = report.presence()[logged["ivan"].pk]["online"]
    after = timezone.now()
    assert 3600 - 0.1 <= seconds <= (after - started).total_seconds() + 0.1
    # A range that ended before now stops the open period at its end.
    past = reports.report(scope, reports.ReportParams(start=date(2026, 3, 29), end=date(2026, 3, 29)))
    assert past.presence().get(logged["ivan"].pk) is None  # it started after that day


@pytest.mark.django_db
def test_retention_purges_ended_periods_older_than_the_setting(settings):
    user = make_user()
    now = timezone.now()
    old = PresencePeriod.objects.create(
        user=user, status="online", started_at=now - timedelta(days=500), ended_at=now - timedelta(days=401)
    )
    kept = PresencePeriod.objects.create(
        user=user, status="away", started_at=now - timedelta(days=399), ended_at=now - timedelta(days=398)
    )
    opened = PresencePeriod.objects.create(user=user, status="online", started_at=now - timedelta(days=450))
    assert do_purge_presence_log() == 1
    assert set(PresencePeriod.objects.values_list("pk", flat=True)) == {kept.pk, opened.pk}
    assert not PresencePeriod.objects.filter(pk=old.pk).exists()
    settings.MESSENGER_PRESENCE_LOG_DAYS = 0
    kept.ended_at = now - timedelta(days=9999)
    kept.started_at = now - timedelta(days=10000)
    kept.save()
    assert do_purge_presence_log() == 0
