"""Analytics reads (docs/analytics.md defines every figure), computed by the database.

Every figure is an aggregate over one of two sets of rows, whatever their number:

* the conversations in reach and in the filters, created in the range or first resolved in it,
  with the facts the actions keep on each (first visitor message, first human reply, first
  assignment, first resolution, counted messages, working-hours first response;
  ``actions.report_facts``) — ``Report._conversation_rows``;
* the audit rows of the range (status changes, escalations, transfers, ratings) of those
  conversations — ``Report._event_rows``.

Each is one grouped query: for the whole report, per operator, branch or region, per local day or
per weekday × hour. Percentiles are PostgreSQL's ``percentile_cont``; SQLite runs the same
interpolation (``messenger.db.aggregates``), so both databases give the same figures.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, ExtractHour, ExtractIsoWeekDay, Greatest, Least, TruncDate
from django.utils import timezone

from messenger.access import StaffScope, visible_conversations, visible_inboxes
from messenger.db.aggregates import Percentiles, Seconds
from messenger.errors import InvalidInput, NotFound
from messenger.models import (
    ActivityEvent,
    AgentProfile,
    Branch,
    Conversation,
    ConversationStatus,
    Label,
    PresencePeriod,
    Region,
)
from messenger.models.branch import is_time_zone

PRESENCE = ("online", "away", "busy")
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
ENDED = (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)
ESCALATED = "assignment.escalated"
RAN_OUT = "assignment.escalation_queued"
RATED = "conversation.rated"
STATUS = "conversation.status"
VERBS = (STATUS, "conversation.transferred", RATED, ESCALATED, RAN_OUT)
GROUPS = {"operator": "assignee_id", "branch": "branch_id", "region": "region_id"}
# What a table shows of the conversations' figures (the working-hours first response is the
# summary's only: one sort less).
TABLE = (
    "new",
    "missed",
    *(f"{name}_{part}" for name in ("first_response", "resolution", "queue") for part in ("count", "percentiles")),
    "queue_sum",
)
EVENT_FIGURES = (
    "resolved",
    "reopened",
    "escalations",
    "ran_out",
    "transfers",
    "stars_count",
    "stars_sum",
    "nps_count",
    "promoters",
    "detractors",
    *(f"stars_{score}" for score in range(1, 6)),
)


@dataclass(frozen=True)
class ReportParams:
    """A range of local days [start, end] (inclusive) in ``tz``, and the filters. ``zone``,
    ``since`` and ``until`` are worked out once (the figures compare every row with them)."""

    start: date
    end: date
    tz: str = "UTC"
    branch: int | None = None
    region: int | None = None
    inbox: int | None = None
    operator: int | None = None
    label: int | None = None
    limit: int | None = None  # the ratings list: the newest N (None: all, as the CSV export)

    @cached_property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.tz)

    @cached_property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=self.zone).astimezone(UTC)

    @cached_property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=self.zone).astimezone(UTC)


def check_params(scope: StaffScope, values: dict[str, Any]) -> ReportParams:
    """Validate the range and zone and that every filter names a row in the caller's reach.

    ``InvalidInput`` for a bad range or zone; ``NotFound`` for a filter the caller may not see. An
    operator's report is always their own: another operator's id is not found.
    """
    start, end = values["start"], values["end"]
    if start > end:
        raise InvalidInput("start: after end")
    if start < EARLIEST or end > LATEST:
        raise InvalidInput(f"start, end: days from {EARLIEST} to {LATEST}")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput(f"end: a range of at most {MAX_DAYS} days")
    tz = values.get("tz") or "UTC"
    if not is_time_zone(tz):
        raise InvalidInput("tz: unknown time zone (an IANA name such as Europe/Berlin)")
    operator = values.get("operator")
    if not scope.sees_all:
        if operator is not None and operator != scope.user_id:
            raise NotFound("No such operator.")
        operator = scope.user_id
    elif operator is not None and not AgentProfile.objects.filter(user_id=operator).exists():
        raise NotFound("No such operator.")
    branch, region, inbox, label = (values.get(name) for name in ("branch", "region", "inbox", "label"))
    check_filters(scope, branch=branch, region=region, inbox=inbox, label=label)
    return ReportParams(
        start=start,
        end=end,
        tz=tz,
        branch=branch,
        region=region,
        inbox=inbox,
        operator=operator,
        label=label,
        limit=values.get("limit"),
    )


def check_filters(
    scope: StaffScope,
    *,
    branch: int | None = None,
    region: int | None = None,
    inbox: int | None = None,
    label: int | None = None,
) -> None:
    """``NotFound`` for the first filter given (in this order) that names no row in the caller's
    reach: an operator's only branch is their own, their inboxes those of their branch and the
    shared ones (``visible_inboxes``); regions and labels are everybody's. One query a filter
    (none for another branch than an operator's own). The reports and the now panel check theirs here.
    """
    if branch is not None and not (
        (scope.sees_all or branch == scope.branch_id) and Branch.objects.filter(pk=branch).exists()
    ):
        raise NotFound("No such branch.")
    if region is not None and not Region.objects.filter(pk=region).exists():
        raise NotFound("No such region.")
    if inbox is not None and not visible_inboxes(scope).filter(pk=inbox).exists():
        raise NotFound("No such inbox.")
    if label is not None and not Label.objects.filter(pk=label).exists():
        raise NotFound("No such label.")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _stats(row: dict[str, Any] | None, name: str) -> dict[str, Any]:
    row = row or {}
    median, p90 = row.get(f"{name}_percentiles") or (None, None)
    return {"count": row.get(f"{name}_count") or 0, "median": _round(median), "p90": _round(p90)}


def _ratio(total: float | None, count: int | None) -> float | None:
    return round(total / count, 3) if count and total is not None else None


def _key(verb: str, key: str) -> Case:
    """The payload's ``key`` as text, for the audit rows of ``verb`` (else NULL)."""
    return Case(When(verb=verb, then=KT(f"payload__{key}")), output_field=CharField())


def _score(value: Any) -> int | None:
    """A rating's score as the audit row stores it (an integer; text on PostgreSQL's ``->>``)."""
    try:
        return int(str(value))
    except ValueError:
        return None


def _in_reach(scope: StaffScope, params: ReportParams) -> QuerySet[Conversation]:
    """The conversations in reach that match the filters (their current branch, region, inbox,
    assignee and labels), whenever they happened."""
    queryset = visible_conversations(scope).order_by()
    for name, column in (("branch", "branch_id"), ("region", "region_id"), ("inbox", "inbox_id")):
        if getattr(params, name) is not None:
            queryset = queryset.filter(**{column: getattr(params, name)})
    if params.operator is not None:
        queryset = queryset.filter(assignee_id=params.operator)
    if params.label is not None:
        queryset = queryset.filter(labels__id=params.label)
    return queryset


def _planned_for_its_range(method: Callable[..., Any]) -> Callable[..., Any]:
    """A report's statements planned for their own parameters. psycopg prepares a statement run
    five times, and PostgreSQL then plans it once for any parameters (a generic plan): for a
    report's range and filters that plan was up to 1.5× slower (docs/benchmarks.md, "Reports").
    ``SET LOCAL`` keeps the choice to this transaction: the send path keeps its generic plans."""

    @functools.wraps(method)
    def planned(self: Report, *args: Any, **kwargs: Any) -> Any:
        if connection.vendor != "postgresql":
            return method(self, *args, **kwargs)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            return method(self, *args, **kwargs)

    return planned


class Report:
    """The figures of one range and set of filters; each method runs its own grouped queries."""

    def __init__(self, scope: StaffScope, params: ReportParams) -> None:
        self.scope, self.params = scope, params
        self.conversations = _in_reach(scope, params)

    # --- the two sets of rows ----------------------------------------------------------------

    def _conversation_aggregates(self) -> dict[str, Any]:
        """Per group: the figures measured on each conversation (docs/analytics.md, "Figures")."""
        p = self.params
        new = Q(created_at__gte=p.since, created_at__lt=p.until)
        wrote = Q(first_visitor_message_at__isnull=False)
        answered = wrote & Q(first_reply_created_at__gte=F("first_visitor_message_at"))
        missed = new & wrote & Q(first_reply_created_at__isnull=True, status__in=ENDED)
        first_response = Case(
            When(new & answered, then=Seconds(F("first_reply_created_at"), F("first_visitor_message_at")))
        )
        working = Case(When(new & answered, then=F("first_response_working_seconds")))
        resolution = Case(
            When(
                Q(first_resolved_at__gte=p.since, first_resolved_at__lt=p.until),
                then=Seconds(F("first_resolved_at"), F("created_at")),
            )
        )
        # Least of two nullable moments, the same on both databases (SQLite's MIN() is NULL if any is).
        queue_end = Least(
            Coalesce("first_assigned_at", "first_reply_created_at"),
            Coalesce("first_reply_created_at", "first_assigned_at"),
        )
        queue = Case(
            When(
                new & wrote & (Q(first_assigned_at__isnull=False) | Q(first_reply_created_at__isnull=False)),
                then=Greatest(Seconds(queue_end, F("first_visitor_message_at")), Value(0.0)),
            )
        )
        figures: dict[str, Any] = {
            "new": Count("pk", filter=new),
            "missed": Count("pk", filter=missed),
            "abandoned": Count("pk", filter=missed & Q(first_assigned_at__isnull=True)),
            "messages": Sum("counted_messages", filter=new),
            "queue_sum": Sum(queue),
        }
        for name, value in (
            ("first_response", first_response),
            ("working", working),
            ("resolution", resolution),
            ("queue", queue),
        ):
            figures[f"{name}_count"] = Count(value)
            figures[f"{name}_percentiles"] = Percentiles(value, (0.5, 0.9))
        return figures

    def _conversation_rows(self, only: tuple[str, ...] = (), **group: Any) -> Any:
        """The conversations created or first resolved in the range, aggregated by ``group``
        (none: one row). ``only``: these aggregates (each percentile is a sort); without a
        resolution among them, over the conversations created in the range only."""
        p = self.params
        aggregates = self._conversation_aggregates()
        if only:
            aggregates = {name: aggregates[name] for name in only}
        where = Q(created_at__gte=p.since, created_at__lt=p.until)
        if any(name.startswith("resolution") for name in aggregates):
            where |= Q(first_resolved_at__gte=p.since, first_resolved_at__lt=p.until)
        rows = self.conversations.filter(where)
        if not group:
            return rows.aggregate(**aggregates)
        return rows.values(**group).annotate(**aggregates)

    def _events(self, verbs: tuple[str, ...] = VERBS) -> QuerySet[ActivityEvent]:
        """The audit rows of ``verbs`` in the range, of the conversations in reach and in the
        filters (every conversation: no join; a purged conversation's rows, which lost it, do not
        count)."""
        p = self.params
        events = ActivityEvent.objects.filter(
            verb__in=verbs, created_at__gte=p.since, created_at__lt=p.until, conversation__isnull=False
        )
        filtered = any(getattr(p, name) is not None for name in ("branch", "region", "inbox", "operator", "label"))
        if filtered or not self.scope.sees_all:
            events = events.filter(conversation__in=self.conversations.values("pk"))
        return events.order_by()

    def _event_rows(self, verbs: tuple[str, ...] = VERBS, **group: Any) -> dict[Any, dict[str, int]]:
        """Per group (one name → expression; none: the key None): what the audit rows of the range
        count. The rows are counted by verb and the payload's keys in the database, the few
        combinations summed here by the rules of docs/analytics.md. One query."""
        rows = (
            self._events(verbs)
            .values(
                "verb",
                **group,
                # Each key read only where it means something: half the rows' JSON left alone.
                to=_key(STATUS, "to"),
                source=_key(STATUS, "from"),
                scale=_key(RATED, "scale"),
                score=_key(RATED, "score"),
            )
            .annotate(count=Count("pk"))
        )
        result: dict[Any, dict[str, int]] = {}
        for row in rows:
            key = row[next(iter(group))] if group else None
            figures = result.setdefault(key, dict.fromkeys(EVENT_FIGURES, 0))
            verb, count = row["verb"], row["count"]
            if verb == STATUS:
                if row["to"] == ConversationStatus.RESOLVED:
                    figures["resolved"] += count
                elif row["source"] in ENDED and row["to"] not in ENDED:
                    figures["reopened"] += count
            elif verb == "conversation.transferred":
                figures["transfers"] += count
            elif verb == ESCALATED:
                figures["escalations"] += count
            elif verb == RAN_OUT:
                figures["ran_out"] += count
            elif verb == RATED and (score := _score(row["score"])) is not None:
                if row["scale"] == "nps":
                    figures["nps_count"] += count
                    figures["promoters"] += count if score >= 9 else 0
                    figures["detractors"] += count if score <= 6 else 0
                else:
                    figures["stars_count"] += count
                    figures["stars_sum"] += score * count
                    if f"stars_{score}" in figures:
                        figures[f"stars_{score}"] += count
        return result

    # --- the answers -------------------------------------------------------------------------

    @staticmethod
    def _figures(conversation: dict[str, Any] | None, events: dict[str, Any] | None) -> dict[str, Any]:
        c, e = conversation or {}, events or {}
        new = c.get("new") or 0
        nps_count = e.get("nps_count") or 0
        promoters, detractors = e.get("promoters") or 0, e.get("detractors") or 0
        return {
            "conversations": {
                "new": new,
                "resolved": e.get("resolved") or 0,
                "reopened": e.get("reopened") or 0,
                "missed": c.get("missed") or 0,
                "abandoned": c.get("abandoned") or 0,
            },
            "first_response": _stats(c, "first_response"),
            "first_response_working_hours": _stats(c, "working"),
            "resolution": _stats(c, "resolution"),
            "queue_wait": {**_stats(c, "queue"), "mean": _ratio(c.get("queue_sum"), c.get("queue_count"))},
            "messages_per_conversation": _ratio(c.get("messages"), new),
            "escalations": e.get("escalations") or 0,
            "escalation_chains_ran_out": e.get("ran_out") or 0,
            "transfers": e.get("transfers") or 0,
            "csat": {
                "count": e.get("stars_count") or 0,
                "average": _ratio(e.get("stars_sum"), e.get("stars_count")),
                "distribution": {str(score): e.get(f"stars_{score}") or 0 for score in range(1, 6)},
            },
            "nps": {
                "count": nps_count,
                "promoters": promoters,
                "passives": nps_count - promoters - detractors,
                "detractors": detractors,
                "score": round(100 * (promoters - detractors) / nps_count, 1) if nps_count else None,
            },
        }

    @_planned_for_its_range
    def figures(self) -> dict[str, Any]:
        """The summary (docs/analytics.md, "Figures"): two queries."""
        return self._figures(self._conversation_rows(), self._event_rows().get(None))

    @_planned_for_its_range
    def table(self, key: str) -> list[dict[str, Any]]:
        """Per ``operator``, ``branch`` or ``region``: the figures flattened, one row per group."""
        column = GROUPS[key]
        conversations = {row["group"]: row for row in self._conversation_rows(TABLE, group=F(column))}
        # A table shows resolutions, reopenings and ratings: not escalations nor transfers.
        events = self._event_rows((STATUS, RATED), group=F(f"conversation__{column}"))
        groups = set(conversations) | set(events)
        presence: dict[int, dict[str, float]] = {}
        if key == "operator":
            presence = self.presence()
            # Someone who was online but handled nothing in the range still has a row, unless the
            # report is narrowed to conversations of an inbox, region or label.
            params = self.params
            if params.inbox is None and params.region is None and params.label is None:
                groups |= set(presence)
        names = self._names(key, groups)
        result = []
        for group_id in sorted(groups, key=lambda value: (value is None, names.get(value or 0, ""), value or 0)):
            figures = self._figures(conversations.get(group_id), events.get(group_id))
            times = {}
            if key == "operator":
                seconds = presence.get(group_id or 0, {})
                times = {f"{status}_seconds": seconds.get(status, 0.0) for status in PRESENCE}
            result.append(
                {
                    "id": group_id,
                    "name": names.get(group_id, "") if group_id is not None else "",
                    "new": figures["conversations"]["new"],
                    "resolved": figures["conversations"]["resolved"],
                    "reopened": figures["conversations"]["reopened"],
                    "missed": figures["conversations"]["missed"],
                    "first_response_median": figures["first_response"]["median"],
                    "first_response_p90": figures["first_response"]["p90"],
                    "resolution_median": figures["resolution"]["median"],
                    "resolution_p90": figures["resolution"]["p90"],
                    "queue_wait_median": figures["queue_wait"]["median"],
                    "csat_average": figures["csat"]["average"],
                    "csat_count": figures["csat"]["count"],
                    "nps": figures["nps"]["score"],
                    **times,
                }
            )
        return result

    @staticmethod
    def _names(key: str, ids: set[int | None]) -> dict[int, str]:
        """The names of the table's groups: one query."""
        wanted = {pk for pk in ids if pk is not None}
        if key == "operator":
            # The users, not their agent profiles: an assignee whose profile was deleted (no longer
            # staff) still has a name, not the empty one of the row of unassigned conversations.
            return {
                user.pk: user.get_full_name() or user.get_username()
                for user in get_user_model().objects.filter(pk__in=wanted)
            }
        model = Branch if key == "branch" else Region
        return dict(model.objects.filter(pk__in=wanted).values_list("pk", "name"))

    def presence(self) -> dict[int, dict[str, float]]:
        """Per operator: seconds online, away and busy within the range (docs/analytics.md): every
        ``PresencePeriod`` overlapping it, clipped to it, an open one counted up to now, summed by
        the database. One query, run by the operators table only."""
        params = self.params
        now = timezone.now()
        # Nothing after now: an open period counts up to now, so a range that starts later (a
        # future day, or tomorrow in a zone ahead) has no time at all, not now − since < 0.
        upto = min(params.until, now)
        if upto <= params.since:
            return {}
        periods = PresencePeriod.objects.filter(started_at__lt=upto).filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=params.since)
        )
        if params.operator is not None:
            periods = periods.filter(user_id=params.operator)
        if params.branch is not None:
            periods = periods.filter(user__agent__branch_id=params.branch)
        clipped = Seconds(
            Least(Coalesce("ended_at", Value(now, output_field=DateTimeField())), Value(upto)),
            Greatest("started_at", Value(params.since)),
        )
        result: dict[int, dict[str, float]] = {}
        for row in periods.order_by().values("user_id", "status").annotate(seconds=Sum(clipped)):
            if row["status"] in PRESENCE and row["seconds"]:
                result.setdefault(row["user_id"], dict.fromkeys(PRESENCE, 0.0))[row["status"]] = round(
                    row["seconds"], 1
                )
        return result

    @_planned_for_its_range
    def series(self) -> list[dict[str, Any]]:
        """Per local day of the range: new, missed and the first response median by the day of
        creation, resolved by the day of the resolution. Two queries."""
        zone = self.params.zone
        days: dict[date, dict[str, Any]] = {}
        day = self.params.start
        while day <= self.params.end:
            days[day] = {
                "date": day.isoformat(),
                "new": 0,
                "resolved": 0,
                "missed": 0,
                "first_response_median": None,
            }
            day += timedelta(days=1)
        only = ("new", "missed", "first_response_count", "first_response_percentiles")
        for row in self._conversation_rows(only, day=TruncDate("created_at", tzinfo=zone)):
            if row["day"] in days and row["new"]:
                bucket = days[row["day"]]
                bucket["new"], bucket["missed"] = row["new"], row["missed"]
                bucket["first_response_median"] = _stats(row, "first_response")["median"]
        for day, figures in self._event_rows((STATUS,), day=TruncDate("created_at", tzinfo=zone)).items():
            if day in days:
                days[day]["resolved"] = figures["resolved"]
        return list(days.values())

    @_planned_for_its_range
    def heatmap(self) -> list[dict[str, Any]]:
        """Weekday (0 = Monday) × local hour of creation: new conversations and mean queue wait.
        One query."""
        zone = self.params.zone
        cells = {
            (row["weekday"] - 1, row["hour"]): row
            for row in self._conversation_rows(
                ("new", "queue_sum", "queue_count"),
                weekday=ExtractIsoWeekDay("created_at", tzinfo=zone),
                hour=ExtractHour("created_at", tzinfo=zone),
            )
        }
        return [
            {
                "weekday": weekday,
                "hour": hour,
                "new": (cells.get((weekday, hour)) or {}).get("new") or 0,
                "queue_wait_mean": _ratio(
                    (cells.get((weekday, hour)) or {}).get("queue_sum"),
                    (cells.get((weekday, hour)) or {}).get("queue_count"),
                ),
            }
            for weekday in range(7)
            for hour in range(24)
        ]

    @_planned_for_its_range
    def ratings(self) -> list[dict[str, Any]]:
        """The ratings given in the range, newest first (the newest ``limit``). The comment is the
        conversation's, shown with its current rating only (a visitor rating again replaces it).
        One query."""
        later = ActivityEvent.objects.filter(conversation_id=OuterRef("conversation_id"), verb=RATED).filter(
            Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
        )
        rows = (
            self._events()
            .filter(verb=RATED, payload__score__isnull=False)
            .annotate(
                rating_score=Cast(KT("payload__score"), IntegerField()),
                rating_scale=Coalesce(KT("payload__scale"), Value("stars"), output_field=CharField()),
                current=~Exists(later),
            )
            .order_by("-created_at", "-conversation_id", "-pk")
            .values_list(
                "conversation_id",
                "created_at",
                "rating_scale",
                "rating_score",
                "current",
                "conversation__rating_score",
                "conversation__rating_comment",
                "conversation__assignee_id",
                "conversation__branch_id",
            )
        )
        if self.params.limit is not None:
            rows = rows[: self.params.limit]
        return [
            {
                "conversation_id": conversation_id,
                "rated_at": rated_at,
                "scale": scale or "stars",
                "score": score,
                "comment": comment if current and stored == score else "",
                "operator_id": assignee_id,
                "branch_id": branch_id,
            }
            for conversation_id, rated_at, scale, score, current, stored, comment, assignee_id, branch_id in rows
        ]


def report(scope: StaffScope, params: ReportParams) -> Report:
    """The report of ``params`` in ``scope``; its methods run the queries."""
    return Report(scope, params)


DEFAULT_DAYS = 30


def filter_choices(scope: StaffScope, *, at: datetime | None = None) -> dict[str, Any]:
    """What the reports page offers in its filters, in the caller's reach, its default zone (the
    caller's branch's, else UTC) and its default range: the last 30 days up to today **in that
    zone** (at 01:00 in Moscow it is already tomorrow in UTC terms of the day; a range ending on
    the UTC day would leave out the conversations of the last hours). An operator's only operator
    is themself."""
    profile = AgentProfile.objects.filter(user_id=scope.user_id).select_related("branch").first()
    tz = profile.branch.timezone if profile and profile.branch_id else "UTC"
    if not is_time_zone(tz):
        tz = "UTC"  # a branch stored before time zones were checked
    today = (at or timezone.now()).astimezone(zoneinfo.ZoneInfo(tz)).date()
    staff = AgentProfile.objects.select_related("user").order_by("user__first_name", "user__username")
    branches = Branch.objects.order_by("name")
    if not scope.sees_all:
        staff = staff.filter(user_id=scope.user_id)
        branches = branches.filter(pk=scope.branch_id) if scope.branch_id else branches.none()

    def options(rows: Any) -> list[dict[str, Any]]:
        return [{"id": pk, "name": name} for pk, name in rows]

    return {
        "tz": tz,
        "start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "end": today.isoformat(),
        "branches": options(branches.values_list("pk", "name")),
        "regions": options(Region.objects.order_by("name").values_list("pk", "name")),
        "inboxes": options(visible_inboxes(scope).order_by("name").values_list("pk", "name")),
        "operators": [
            {"id": profile.user_id, "name": profile.user.get_full_name() or profile.user.get_username()}
            for profile in staff
        ],
        "labels": options(Label.objects.order_by("name").values_list("pk", "name")),
    }
