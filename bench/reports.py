"""The report endpoints on a year-like data set: p50/p95/max per endpoint and query counts.

    .venv/bin/python bench/reports.py                  # 100 000 conversations, 1 000 000 messages, 90 days
    .venv/bin/python bench/reports.py --quick          # 10 000 conversations, 100 000 messages
    .venv/bin/python bench/reports.py --runs 5 --regenerate

Generates the data set with COPY (deterministic with ``--seed``; skipped when its marker label
exists, unless ``--regenerate``, which drops and recreates the database): 50 operators in 5
branches, 4 inboxes (two with working hours), regions, labels; conversations spread over the days
with a weekday and hourly pattern, visitor, bot and operator messages, the audit rows the reports
read (assignments, escalations, chains that ran out, transfers, resolutions, reopenings,
ratings with comments), missed and abandoned ones, and presence periods. Then asks every
``/api/v1/reports/…`` endpoint through Django's test client with a supervisor's bearer token, for
the whole range in Europe/Berlin, with no filter and with a branch filter: ``--runs`` times each,
after one warm-up run that counts the queries. Per endpoint: p50/p95/max wall time, and the CPU of
this process and of its PostgreSQL backend per request (what the request costs whatever else runs
on the machine: the wall time of a loaded machine includes waiting for a core). ``--profile`` adds a
cProfile of the summary.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import RESULTS, cpu_seconds, service_arguments, setup_django  # noqa: E402

ENDPOINTS = ("summary", "operators", "branches", "regions", "series", "heatmap", "ratings")
TZ = "Europe/Berlin"
MARKER = "reports-bench:{conversations}:{messages}:{days}:{seed}"
HOURLY = [1, 1, 1, 1, 1, 2, 3, 6, 10, 14, 15, 14, 12, 13, 14, 14, 13, 11, 9, 7, 5, 4, 3, 2]
COMMENTS = ("Quick and helpful, thanks!", "Took a while.", "Solved my problem.", "Not what I asked.", "")


def psql(database: str, sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", sql], check=False)


def prepare_database(args: argparse.Namespace) -> None:
    name = urlparse(args.database_url).path.lstrip("/")
    if args.regenerate:
        psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f'CREATE DATABASE "{name}"'],
        capture_output=True,
        check=False,
    )


def next_id(cursor: Any, table: str) -> int:
    cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
    return cursor.fetchone()[0]


def generate(args: argparse.Namespace, marker: str) -> dict[str, Any]:
    """The data set, in one transaction; returns what was written."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from messenger.models import AgentProfile, AgentRole, Branch, Inbox, Label, Region

    rng = random.Random(args.seed)
    started = time.monotonic()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = end - timedelta(days=args.days)
    hours = {day: [["08:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    with transaction.atomic():
        branches = [
            Branch.objects.create(name=f"Branch {n}", timezone=TZ, working_hours=hours if n < 3 else {})
            for n in range(1, 6)
        ]
        regions = [Region.objects.create(name=f"Region {n}") for n in range(1, 9)]
        labels = [Label.objects.create(name=f"label-{n}") for n in range(1, 7)]
        inbox_settings = [
            {},
            {"working_hours": {"enabled": True, "use_branch_hours": True}},
            {"working_hours": {"enabled": True, "timezone": TZ, "days": hours}},
            {},
        ]
        inboxes = [
            Inbox.objects.create(name=f"Inbox {n + 1}", branch=branches[n % 5], settings=settings)
            for n, settings in enumerate(inbox_settings)
        ]
        user_model = get_user_model()
        operators = []
        for n in range(args.operators):
            user = user_model.objects.create(username=f"rb-op{n}", first_name=f"Operator {n}")
            AgentProfile.objects.create(user=user, branch=branches[n % 5], role=AgentRole.OPERATOR)
            operators.append((user.pk, branches[n % 5].pk))
        by_branch: dict[int, list[int]] = {}
        for user_id, branch_id in operators:
            by_branch.setdefault(branch_id, []).append(user_id)
        raw = connection.connection
        cursor = raw.cursor()
        ids = {
            table: next_id(cursor, f"messenger_{table}")
            for table in ("contact", "conversation", "message", "activityevent", "presenceperiod")
        }
        cursor.execute("SELECT coalesce(max(id), 0) + 1 FROM messenger_conversation_labels")
        label_row = cursor.fetchone()[0]
        # Days weighted: weekends at half; the hour of day by HOURLY (in Berlin, roughly: UTC+1).
        day_weights = [0.5 if (first + timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(args.days)]
        per_conversation = args.messages / args.conversations
        contacts, conversations, messages, events, tagged = [], [], [], [], []
        counts = {"messages": 0, "events": 0}
        conversation_id, message_id, event_id = ids["conversation"], ids["message"], ids["activityevent"]
        cursor_copy_batch = 200_000

        def flush(final: bool = False) -> None:
            if messages and (final or len(messages) >= cursor_copy_batch):
                with cursor.copy(
                    "COPY messenger_message (id, direction, sender_type, body, content, content_attributes,"
                    " created_at, conversation_id, sender_contact_id, sender_user_id) FROM STDIN"
                ) as copy:
                    for row in messages:
                        copy.write_row(row)
                counts["messages"] += len(messages)
                messages.clear()
            if events and (final or len(events) >= cursor_copy_batch):
                with cursor.copy(
                    "COPY messenger_activityevent (id, actor_label, verb, target_type, target_id, payload,"
                    " created_at, actor_user_id, conversation_id) FROM STDIN"
                ) as copy:
                    for row in events:
                        copy.write_row(row)
                counts["events"] += len(events)
                events.clear()

        def event(verb: str, at: datetime, payload: dict[str, Any], actor: int | None, cid: int) -> None:
            nonlocal event_id
            events.append((event_id, "", verb, "conversation", str(cid), json.dumps(payload), at, actor, cid))
            event_id += 1

        for index in range(args.conversations):
            cid = conversation_id + index
            contact_id = ids["contact"] + index
            day = rng.choices(range(args.days), day_weights)[0]
            hour = (rng.choices(range(24), HOURLY)[0] - 1) % 24
            created = first + timedelta(days=day, hours=hour, seconds=rng.randrange(3600))
            inbox = inboxes[index % len(inboxes)] if rng.random() < 0.7 else rng.choice(inboxes)
            branch_id = inbox.branch_id
            region_id = rng.choice(regions).pk if rng.random() < 0.9 else None
            contacts.append((contact_id, f"Visitor {index}", "", "", "", False, "{}", "{}", created, region_id))
            roll = rng.random()
            missed = roll < 0.08
            abandoned = roll < 0.04
            operator = None if abandoned else rng.choice(by_branch[branch_id])
            count = max(2, min(60, int(rng.expovariate(1 / per_conversation)) + 1))
            if missed:
                count = rng.randint(1, 3)
            moment = created + timedelta(seconds=rng.randint(1, 20))
            first_in = moment
            wait = rng.expovariate(1 / 60)
            first_reply = None
            bot = rng.random() < 0.2
            for number in range(count):
                if number == 0 or missed:
                    row = ("in", "contact", contact_id, None)
                elif number == 1 and bot:
                    row = ("out", "bot", None, None)
                elif first_reply is None:
                    moment = first_in + timedelta(seconds=wait + rng.expovariate(1 / 45))
                    first_reply = moment
                    row = ("out", "user", None, operator)
                else:
                    row = ("in", "contact", contact_id, None) if rng.random() < 0.5 else ("out", "user", None, operator)
                attributes = '{"deleted": true}' if rng.random() < 0.005 else "{}"
                messages.append((message_id, row[0], row[1], "hello", "hello", attributes, moment, cid, row[2], row[3]))
                message_id += 1
                moment += timedelta(seconds=rng.expovariate(1 / 40) + 3)
            last = moment
            status, resolved_at, rating = "open", None, (None, "", None)
            if operator is not None:
                event("assignment.assigned", first_in + timedelta(seconds=wait), {"to": operator}, None, cid)
                if rng.random() < 0.05:
                    other = rng.choice(by_branch[branch_id])
                    event("assignment.escalated", first_in + timedelta(seconds=wait + 1), {"to": other}, None, cid)
                    operator = other
                if rng.random() < 0.01:
                    event("assignment.escalation_queued", first_in + timedelta(seconds=wait + 2), {}, None, cid)
                if rng.random() < 0.03:
                    other = rng.choice(operators)[0]
                    event("conversation.transferred", last, {"to": other}, operator, cid)
                    event("assignment.transferred", last, {"to": other}, operator, cid)
                    operator = other
            if missed or rng.random() < 0.9:
                status = "resolved" if rng.random() < 0.95 else "closed"
                resolved_at = last + timedelta(seconds=rng.expovariate(1 / 600))
                event("conversation.status", resolved_at, {"from": "open", "to": status}, operator, cid)
                if rng.random() < 0.05:
                    reopened = resolved_at + timedelta(hours=rng.uniform(1, 48))
                    event("conversation.status", reopened, {"from": status, "to": "open"}, None, cid)
                    if rng.random() < 0.8:
                        resolved_at = reopened + timedelta(seconds=rng.expovariate(1 / 900))
                        event("conversation.status", resolved_at, {"from": "open", "to": "resolved"}, operator, cid)
                    else:
                        status = "open"
                if not missed and rng.random() < 0.3:
                    nps = rng.random() < 0.15
                    score = rng.randint(0, 10) if nps else rng.choices(range(1, 6), (1, 1, 2, 5, 10))[0]
                    rated = (resolved_at or last) + timedelta(seconds=rng.randint(5, 600))
                    payload = {"score": score, "scale": "nps" if nps else "stars"}
                    event("conversation.rated", rated, payload, None, cid)
                    rating = (score, rng.choice(COMMENTS), rated)
            if rng.random() < 0.2:
                tagged.append((label_row, cid, rng.choice(labels).pk))
                label_row += 1
            conversations.append(
                (
                    cid,
                    f"rb-{args.seed}-{cid}",
                    status if not (status == "open" and rng.random() < 0.3) else "pending",
                    0,
                    0,
                    "{}",
                    "{}",
                    "[]",
                    rating[0],
                    rating[1],
                    rating[2],
                    0,
                    0,
                    "hello",
                    count,
                    count,
                    created,
                    last,
                    first_reply,
                    resolved_at,
                    last,
                    operator,
                    branch_id,
                    contact_id,
                    inbox.pk,
                    region_id,
                    0,  # the report facts are rebuilt below
                )
            )
            if len(conversations) >= 50_000 or index == args.conversations - 1:
                with cursor.copy(
                    "COPY messenger_contact (id, name, email, phone, external_id, blocked,"
                    " additional_attributes, custom_attributes, created_at, region_id) FROM STDIN"
                ) as copy:
                    for row in contacts:
                        copy.write_row(row)
                with cursor.copy(
                    "COPY messenger_conversation (id, identifier, status, priority, escalation_count,"
                    " additional_attributes, custom_attributes, routing_log, rating_score, rating_comment,"
                    " rated_at, unread_for_agent, unread_for_contact, last_message_preview, last_seq,"
                    " last_public_seq, created_at, updated_at, first_reply_created_at, resolved_at,"
                    " last_activity_at, assignee_id, branch_id, contact_id, inbox_id, region_id, counted_messages)"
                    " FROM STDIN"
                ) as copy:
                    for row in conversations:
                        copy.write_row(row)
                contacts.clear()
                conversations.clear()
                flush(final=True)
            else:
                flush()
        with cursor.copy("COPY messenger_conversation_labels (id, conversation_id, label_id) FROM STDIN") as copy:
            for row in tagged:
                copy.write_row(row)
        # Presence: each operator on each weekday (and a third of the weekend days) a shift of
        # online stretches with a few away and busy ones.
        periods = []
        period_id = ids["presenceperiod"]
        for user_id, _branch in operators:
            for day in range(args.days):
                date0 = first + timedelta(days=day)
                if date0.weekday() >= 5 and rng.random() < 0.67:
                    continue
                moment = date0 + timedelta(hours=rng.uniform(6, 9))
                shift_end = moment + timedelta(hours=rng.uniform(6, 9))
                while moment < shift_end:
                    status = rng.choices(("online", "away", "busy"), (8, 1, 1))[0]
                    stop = min(shift_end, moment + timedelta(minutes=rng.uniform(10, 120)))
                    periods.append((period_id, status, moment, stop, user_id))
                    period_id += 1
                    moment = stop
        with cursor.copy("COPY messenger_presenceperiod (id, status, started_at, ended_at, user_id) FROM STDIN") as c:
            for row in periods:
                c.write_row(row)
        for table in ("contact", "conversation", "message", "activityevent", "presenceperiod", "conversation_labels"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('messenger_{table}', 'id'),"
                f" (SELECT max(id) FROM messenger_{table}))"
            )
        Label.objects.create(name=marker)
    # The per-conversation facts the reports read, computed as the migration and
    # ``manage.py rebuild_report_facts`` do, then the scheduler's working-hours job until done.
    from messenger.actions.report_facts import do_fill_working_seconds, do_rebuild_report_facts

    with connection.cursor() as plain:
        plain.execute("ANALYZE")
    began = time.monotonic()
    do_rebuild_report_facts()
    rebuilt = time.monotonic() - began
    while do_fill_working_seconds(limit=20_000):
        pass
    working = time.monotonic() - began - rebuilt
    with connection.cursor() as plain:
        plain.execute("VACUUM ANALYZE")
    return {
        "facts_rebuild_seconds": round(rebuilt, 1),
        "working_hours_job_seconds": round(working, 1),
        "conversations": args.conversations,
        "messages": counts["messages"],
        "audit_rows": counts["events"],
        "presence_periods": len(periods),
        "seconds": round(time.monotonic() - started, 1),
    }


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from messenger.actions.api_tokens import do_create_api_token
    from messenger.actions.base import Actor
    from messenger.models import AgentProfile, AgentRole, Branch, Conversation

    user, _ = get_user_model().objects.get_or_create(username="rb-supervisor")
    AgentProfile.objects.update_or_create(user=user, defaults={"role": AgentRole.SUPERVISOR})
    _token, key = do_create_api_token(user=user, name="reports bench", actor=Actor.system())
    client = Client()
    last = Conversation.objects.filter(identifier__startswith="rb-").order_by("-created_at").first()
    end_day = last.created_at.astimezone(UTC).date() - timedelta(days=1)
    start_day = end_day - timedelta(days=args.days - 1)
    branch = Branch.objects.filter(name="Branch 1").values_list("pk", flat=True).first()
    base = {"start": start_day.isoformat(), "end": end_day.isoformat(), "tz": TZ}
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    results: dict[str, Any] = {}
    for variant, extra in (("all", {}), ("branch", {"branch": branch})):
        for name in ENDPOINTS:
            url = f"/api/v1/reports/{name}"
            params = {**base, **extra}
            sql = [0.0, 0]

            def timed(execute: Any, sql_text: str, params_: Any, many: bool, context: Any) -> Any:
                began = time.perf_counter()
                try:
                    return execute(sql_text, params_, many, context)
                finally:
                    sql[0] += time.perf_counter() - began
                    sql[1] += 1

            # Counted by the wrapper: the test client's request_started signal resets connection.queries.
            with connection.execute_wrapper(timed):
                began = time.perf_counter()
                response = client.get(url, params, **headers)
                warm = time.perf_counter() - began
            assert response.status_code == 200, (url, response.status_code, response.content[:300])
            body = response.json()
            times = []
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]
            cpu_began, pg_began = time.process_time(), cpu_seconds(backend)
            for _ in range(args.runs):
                began = time.perf_counter()
                client.get(url, params, **headers)
                times.append((time.perf_counter() - began) * 1000)
            cpu_ms = 1000 * (time.process_time() - cpu_began) / args.runs
            pg_cpu_ms = 1000 * (cpu_seconds(backend) - pg_began) / args.runs
            rows = len(body["results"]) if "results" in body else None
            results[f"{name}:{variant}"] = {
                "queries": sql[1],
                "p50_ms": round(quantile(times, 0.5), 1),
                "p95_ms": round(quantile(times, 0.95), 1),
                "max_ms": round(max(times), 1),
                "cpu_ms": round(cpu_ms, 1),
                "postgres_cpu_ms": round(pg_cpu_ms, 1),
                "warmup_ms": round(warm * 1000, 1),
                "warmup_sql_ms": round(sql[0] * 1000, 1),
                "rows": rows,
                "new": body["figures"]["conversations"]["new"] if name == "summary" else None,
            }
            row = results[f"{name}:{variant}"]
            print(
                f"{name:10} {variant:6} queries {row['queries']:2}  p50 {row['p50_ms']:8.1f}  p95 "
                f"{row['p95_ms']:8.1f}  max {row['max_ms']:8.1f} ms  CPU {row['cpu_ms']:.0f} + PostgreSQL"
                f" {row['postgres_cpu_ms']:.0f} ms",
                flush=True,
            )
    return {"range": base, "branch": branch, "endpoints": results, "token_headers": "Bearer"}


def profile(args: argparse.Namespace) -> str:
    """cProfile of the loading and the summary figures, called directly (no HTTP)."""
    from django.contrib.auth import get_user_model

    from messenger import reports
    from messenger.access import staff_scope
    from messenger.models import Conversation

    scope = staff_scope(get_user_model().objects.get(username="rb-supervisor"))
    last = Conversation.objects.filter(identifier__startswith="rb-").order_by("-created_at").first()
    end_day = last.created_at.astimezone(UTC).date() - timedelta(days=1)
    params = reports.ReportParams(start=end_day - timedelta(days=args.days - 1), end=end_day, tz=TZ)
    profiler = cProfile.Profile()
    profiler.enable()
    loaded = reports.report(scope, params)
    loaded.figures()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--operators", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--regenerate", action="store_true", help="drop the database and generate it again")
    parser.add_argument("--quick", action="store_true", help="10 000 conversations, 100 000 messages, 5 runs")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the summary's work")
    service_arguments(parser)
    parser.set_defaults(database_url="postgres://postgres@127.0.0.1:5432/messenger_reports_bench")
    args = parser.parse_args()
    if args.quick:
        args.conversations, args.messages, args.runs = 10_000, 100_000, 5
        if args.database_url.endswith("/messenger_reports_bench"):
            args.database_url += "_quick"
    os.environ["MESSENGER_API_RATE_PER_TOKEN"] = "10000000/min"
    prepare_database(args)
    setup_django(args)
    from messenger.models import Label

    marker = MARKER.format(**vars(args))
    generated: dict[str, Any] = {"reused": True}
    if not Label.objects.filter(name=marker).exists():
        if Label.objects.filter(name__startswith="reports-bench:").exists():
            sys.exit("Another data set is in this database: run with --regenerate.")
        generated = generate(args, marker)
        print(f"generated: {generated}", flush=True)
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    measured = measure(args)
    after = os.getloadavg()
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_set": {k: getattr(args, k) for k in ("conversations", "messages", "days", "operators", "seed")},
        "generated": generated,
        "runs": args.runs,
        "load_before": load,
        "load_after": after,
        **measured,
    }
    if args.profile:
        result["profile"] = profile(args)
        print(result["profile"])
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"reports-{args.conversations}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
