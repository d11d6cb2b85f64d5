"""Analytics reads (docs/analytics.md defines every figure): a fixed number of queries whatever the
number of rows, then the arithmetic in Python, so PostgreSQL and SQLite give the same figures.

``report(scope, params)`` runs six queries (conversations with their message aggregates, their
audit rows, inboxes and branches for working hours, operators' and regions' names) and ``Report``
computes every table from them; the operators table reads the presence periods too (a seventh). Percentiles interpolate linearly between the closest ranks, as PostgreSQL's
``percentile_cont`` does.
"""

from __future__ import annotations

import math
import zoneinfo
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from messenger.access import StaffScope, visible_conversations, visible_inboxes
from messenger.errors import InvalidInput, NotFound
from messenger.models import (
    ActivityEvent,
    AgentProfile,
    Branch,
    Conversation,
    ConversationStatus,
    Inbox,
    Label,
    MessageDirection,
    PresencePeriod,
    Region,
    SenderType,
)
from messenger.routing.hours import schedule_open_seconds

PRESENCE = ("online", "away", "busy")
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)
ENDED = (ConversationStatus.RESOLVED, ConversationStatus.CLOSED)
ESCALATED = "assignment.escalated"
RAN_OUT = "assignment.escalation_queued"
ASSIGNING = ("assignment.assigned", "assignment.reassigned", "assignment.escalated", "assignment.transferred")
VERBS = ("conversation.status", "conversation.transferred", "conversation.rated", RAN_OUT, *ASSIGNING)


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
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("tz: unknown time zone") from None
    operator = values.get("operator")
    if not scope.sees_all:
        if operator is not None and operator != scope.user_id:
            raise NotFound("No such operator.")
        operator = scope.user_id
    elif operator is not None and not AgentProfile.objects.filter(user_id=operator).exists():
        raise NotFound("No such operator.")
    branch, region, inbox, label = (values.get(name) for name in ("branch", "region", "inbox", "label"))
    if branch is not None and not (
        Branch.objects.filter(pk=branch).exists() and (scope.sees_all or branch == scope.branch_id)
    ):
        raise NotFound("No such branch.")
    if region is not None and not Region.objects.filter(pk=region).exists():
        raise NotFound("No such region.")
    if inbox is not None and not visible_inboxes(scope).filter(pk=inbox).exists():
        raise NotFound("No such inbox.")
    if label is not None and not Label.objects.filter(pk=label).exists():
        raise NotFound("No such label.")
    return ReportParams(
        start=start, end=end, tz=tz, branch=branch, region=region, inbox=inbox, operator=operator, label=label
    )


def percentile(values: list[float], fraction: float) -> float | None:
    """``percentile_cont``: linear interpolation between the closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "median": _round(percentile(values, 0.5)),
        "p90": _round(percentile(values, 0.9)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


@dataclass
class _Row:
    """One conversation and what its messages and audit rows say."""

    id: int
    created_at: datetime
    status: str
    inbox_id: int
    branch_id: int | None
    region_id: int | None
    assignee_id: int | None
    first_in: datetime | None
    first_reply: datetime | None
    messages: int
    first_assigned: datetime | None = None
    resolutions: list[datetime] = field(default_factory=list)
    reopens: list[datetime] = field(default_factory=list)
    transfers: list[datetime] = field(default_factory=list)
    escalations: list[datetime] = field(default_factory=list)
    ran_out: list[datetime] = field(default_factory=list)
    ratings: list[tuple[datetime, int, str]] = field(default_factory=list)
    rating_comment: str = ""
    rated_at: datetime | None = None
    rating_score: int | None = None

    @property
    def first_response(self) -> float | None:
        if self.first_in is None or self.first_reply is None or self.first_reply < self.first_in:
            return None
        return (self.first_reply - self.first_in).total_seconds()

    @property
    def missed(self) -> bool:
        return self.first_in is not None and self.first_reply is None and self.status in ENDED

    @property
    def queue_wait(self) -> float | None:
        """First visitor message → first assignment to a person or first human reply, whichever
        comes first; an assignment before the visitor wrote (routing at the start) waits 0 s."""
        if self.first_in is None:
            return None
        ends = [moment for moment in (self.first_assigned, self.first_reply) if moment is not None]
        return max(0.0, (min(ends) - self.first_in).total_seconds()) if ends else None


def _in_report(scope: StaffScope, params: ReportParams) -> QuerySet[Conversation]:
    """Every conversation in reach, matching the filters, created before the range ends, that had
    something happen in it: created in the range (new), or an audit row in the range (resolved,
    rated, …)."""
    queryset = visible_conversations(scope).filter(created_at__lt=params.until)
    if params.branch is not None:
        queryset = queryset.filter(branch_id=params.branch)
    if params.region is not None:
        queryset = queryset.filter(region_id=params.region)
    if params.inbox is not None:
        queryset = queryset.filter(inbox_id=params.inbox)
    if params.operator is not None:
        queryset = queryset.filter(assignee_id=params.operator)
    if params.label is not None:
        queryset = queryset.filter(labels__id=params.label)
    in_range_audit = ActivityEvent.objects.filter(
        verb__in=VERBS, created_at__gte=params.since, created_at__lt=params.until
    ).values("conversation_id")
    return queryset.filter(Q(created_at__gte=params.since) | Q(pk__in=in_range_audit))


def _conversations(queryset: QuerySet[Conversation]) -> list[_Row]:
    """The conversations with their message aggregates. One query."""
    counted = Q(messages__direction=MessageDirection.IN) | Q(
        messages__direction=MessageDirection.OUT, messages__sender_type=SenderType.USER
    )
    rows = queryset.annotate(
        first_in=Min("messages__created_at", filter=Q(messages__direction=MessageDirection.IN)),
        first_reply=Min(
            "messages__created_at",
            filter=Q(messages__direction=MessageDirection.OUT, messages__sender_type=SenderType.USER),
        ),
        counted=Count("messages", filter=counted),
        deleted=Count("messages", filter=counted & Q(messages__content_attributes__deleted=True)),
    ).values_list(
        "id",
        "created_at",
        "status",
        "inbox_id",
        "branch_id",
        "region_id",
        "assignee_id",
        "first_in",
        "first_reply",
        "counted",
        "deleted",
        "rating_score",
        "rating_comment",
        "rated_at",
    )
    result = []
    for row in rows:
        item = _Row(*row[:9], messages=row[9] - row[10])
        item.rating_score, item.rating_comment, item.rated_at = row[11], row[12], row[13]
        result.append(item)
    return result


def _attach_audit(rows: dict[int, _Row], conversations: QuerySet[Conversation], until: datetime) -> None:
    """The audit rows of these conversations (a subquery, not a list of ids) up to the range's end.
    One query."""
    audit = (
        ActivityEvent.objects.filter(
            conversation_id__in=conversations.values("pk"), verb__in=VERBS, created_at__lt=until
        )
        .order_by("created_at", "id")
        .values_list("conversation_id", "verb", "created_at", "payload")
    )
    for conversation_id, verb, created_at, payload in audit:
        row = rows.get(conversation_id)
        if row is None:  # created between the two queries
            continue
        payload = payload or {}
        if verb == "conversation.status":
            if payload.get("to") == ConversationStatus.RESOLVED:
                row.resolutions.append(created_at)
            elif payload.get("from") in ENDED and payload.get("to") not in ENDED:
                row.reopens.append(created_at)
        elif verb == "conversation.transferred":
            row.transfers.append(created_at)
        elif verb == "conversation.rated" and isinstance(payload.get("score"), int):
            row.ratings.append((created_at, payload["score"], payload.get("scale") or "stars"))
        elif verb == RAN_OUT:
            row.ran_out.append(created_at)
        if verb == ESCALATED:
            row.escalations.append(created_at)
        if verb in ASSIGNING and (payload.get("to") or None) is not None and row.first_assigned is None:
            row.first_assigned = created_at


@dataclass
class Report:
    params: ReportParams
    rows: list[_Row]
    inboxes: dict[int, Inbox]
    branches: dict[int, Branch]
    names: dict[str, dict[int, str]]
    _hours: dict[int, dict[str, Any]] = field(default_factory=dict)

    def _in(self, moment: datetime | None) -> bool:
        return moment is not None and self.params.since <= moment < self.params.until

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.params.zone)

    @property
    def new(self) -> list[_Row]:
        return [row for row in self.rows if self._in(row.created_at)]

    def working_seconds(self, row: _Row, start: datetime, end: datetime) -> float:
        """Open seconds between two moments by the conversation's working hours (docs/analytics.md)."""
        inbox = self.inboxes[row.inbox_id]
        hours = self._hours.get(inbox.pk)
        if hours is None:
            hours = self._hours[inbox.pk] = inbox.effective_settings["working_hours"]
        if not hours["enabled"]:
            return (end - start).total_seconds()
        if hours["use_branch_hours"]:
            branch = self.branches.get(row.branch_id) if row.branch_id else None
            if branch is None or not branch.working_hours:
                return (end - start).total_seconds()
            return schedule_open_seconds(
                branch.working_hours, [], branch.timezone, start, end, calendar=branch.holiday_calendar
            )
        inbox_branch = self.branches.get(inbox.branch_id) if inbox.branch_id else None
        tz_name = hours["timezone"] or (inbox_branch.timezone if inbox_branch else "UTC")
        return schedule_open_seconds(hours["days"], hours["holidays"], tz_name, start, end)

    def figures(self, rows: list[_Row] | None = None) -> dict[str, Any]:
        """The summary figures over ``rows`` (all by default): docs/analytics.md, "Figures"."""
        rows = self.rows if rows is None else rows
        new = [row for row in rows if self._in(row.created_at)]
        first_response = [row.first_response for row in new if row.first_response is not None]
        working = [
            self.working_seconds(row, row.first_in, row.first_reply)  # type: ignore[arg-type]
            for row in new
            if row.first_response is not None
        ]
        resolution = [
            (row.resolutions[0] - row.created_at).total_seconds()
            for row in rows
            if row.resolutions and self._in(row.resolutions[0])
        ]
        queue = [row.queue_wait for row in new if row.queue_wait is not None]
        stars: list[int] = []
        nps: list[int] = []
        for row in rows:
            for moment, score, scale in row.ratings:
                if self._in(moment):
                    (nps if scale == "nps" else stars).append(score)
        promoters = sum(1 for score in nps if score >= 9)
        detractors = sum(1 for score in nps if score <= 6)
        return {
            "conversations": {
                "new": len(new),
                "resolved": sum(1 for row in rows for moment in row.resolutions if self._in(moment)),
                "reopened": sum(1 for row in rows for moment in row.reopens if self._in(moment)),
                "missed": sum(1 for row in new if row.missed),
                "abandoned": sum(1 for row in new if row.missed and row.first_assigned is None),
            },
            "first_response": _stats(first_response),
            "first_response_working_hours": _stats(working),
            "resolution": _stats(resolution),
            "queue_wait": {**_stats(queue), "mean": _mean(queue)},
            "messages_per_conversation": _mean([row.messages for row in new]),
            "escalations": sum(1 for row in rows for moment in row.escalations if self._in(moment)),
            "escalation_chains_ran_out": sum(1 for row in rows for moment in row.ran_out if self._in(moment)),
            "transfers": sum(1 for row in rows for moment in row.transfers if self._in(moment)),
            "csat": {
                "count": len(stars),
                "average": _mean(stars),
                "distribution": {str(score): stars.count(score) for score in range(1, 6)},
            },
            "nps": {
                "count": len(nps),
                "promoters": promoters,
                "passives": len(nps) - promoters - detractors,
                "detractors": detractors,
                "score": round(100 * (promoters - detractors) / len(nps), 1) if nps else None,
            },
        }

    def table(self, key: str) -> list[dict[str, Any]]:
        """Per ``operator``, ``branch`` or ``region``: the figures flattened, one row per group."""
        attribute = {"operator": "assignee_id", "branch": "branch_id", "region": "region_id"}[key]
        groups: dict[int | None, list[_Row]] = defaultdict(list)
        for row in self.rows:
            groups[getattr(row, attribute)].append(row)
        names = self.names[key]
        presence: dict[int, dict[str, float]] = {}
        if key == "operator":
            presence = self.presence()
            # Someone who was online but handled nothing in the range still has a row, unless the
            # report is narrowed to conversations of an inbox, region or label.
            params = self.params
            if params.inbox is None and params.region is None and params.label is None:
                for user_id in presence:
                    groups.setdefault(user_id, [])
        result = []
        for group_id in sorted(groups, key=lambda value: (value is None, names.get(value or 0, ""), value or 0)):
            figures = self.figures(groups[group_id])
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

    def presence(self) -> dict[int, dict[str, float]]:
        """Per operator: seconds online, away and busy within the range (docs/analytics.md): every
        ``PresencePeriod`` overlapping it, clipped to it, an open one counted up to now. One query,
        run by the operators table only."""
        params = self.params
        now = timezone.now()
        periods = PresencePeriod.objects.filter(started_at__lt=params.until).filter(
            Q(ended_at__isnull=True) | Q(ended_at__gt=params.since)
        )
        if params.operator is not None:
            periods = periods.filter(user_id=params.operator)
        if params.branch is not None:
            periods = periods.filter(user__agent__branch_id=params.branch)
        result: dict[int, dict[str, float]] = defaultdict(lambda: dict.fromkeys(PRESENCE, 0.0))
        for user_id, status, started_at, ended_at in periods.values_list("user_id", "status", "started_at", "ended_at"):
            start = max(started_at, params.since)
            end = min(ended_at or now, params.until)
            if end > start:
                result[user_id][status] += (end - start).total_seconds()
        return {user_id: {k: round(v, 1) for k, v in times.items()} for user_id, times in result.items()}

    def series(self) -> list[dict[str, Any]]:
        """Per local day of the range: new, resolved, missed, first response median."""
        days: dict[date, dict[str, Any]] = {}
        day = self.params.start
        while day <= self.params.end:
            days[day] = {"date": day.isoformat(), "new": 0, "resolved": 0, "missed": 0, "_frt": []}
            day += timedelta(days=1)
        for row in self.rows:
            if self._in(row.created_at):
                bucket = days[self._local(row.created_at).date()]
                bucket["new"] += 1
                bucket["missed"] += int(row.missed)
                if row.first_response is not None:
                    bucket["_frt"].append(row.first_response)
            for moment in row.resolutions:
                if self._in(moment):
                    days[self._local(moment).date()]["resolved"] += 1
        return [
            {
                **{k: v for k, v in bucket.items() if k != "_frt"},
                "first_response_median": _round(percentile(bucket["_frt"], 0.5)),
            }
            for bucket in days.values()
        ]

    def heatmap(self) -> list[dict[str, Any]]:
        """Weekday (0 = Monday) × local hour of creation: new conversations and mean queue wait."""
        counts: Counter[tuple[int, int]] = Counter()
        waits: dict[tuple[int, int], list[float]] = defaultdict(list)
        for row in self.new:
            local = self._local(row.created_at)
            cell = (local.weekday(), local.hour)
            counts[cell] += 1
            if row.queue_wait is not None:
                waits[cell].append(row.queue_wait)
        return [
            {
                "weekday": weekday,
                "hour": hour,
                "new": counts[(weekday, hour)],
                "queue_wait_mean": _mean(waits[(weekday, hour)]),
            }
            for weekday in range(7)
            for hour in range(24)
        ]

    def ratings(self) -> list[dict[str, Any]]:
        """The ratings given in the range, newest first, with the comment of the conversation's
        current rating (an earlier rating's comment is replaced when the visitor rates again)."""
        result = []
        for row in self.rows:
            for index, (moment, score, scale) in enumerate(row.ratings):
                if not self._in(moment):
                    continue
                latest = index == len(row.ratings) - 1 and row.rating_score == score
                result.append(
                    {
                        "conversation_id": row.id,
                        "rated_at": moment,
                        "scale": scale,
                        "score": score,
                        "comment": row.rating_comment if latest else "",
                        "operator_id": row.assignee_id,
                        "branch_id": row.branch_id,
                    }
                )
        result.sort(key=lambda item: (item["rated_at"], item["conversation_id"]), reverse=True)
        return result


def report(scope: StaffScope, params: ReportParams) -> Report:
    """Load what every table needs: six queries whatever the number of rows (none included)."""
    queryset = _in_report(scope, params)
    conversations = _conversations(queryset)
    rows = {row.id: row for row in conversations}
    _attach_audit(rows, queryset, params.until)
    inboxes = {inbox.pk: inbox for inbox in Inbox.objects.all()}
    branches = {branch.pk: branch for branch in Branch.objects.all()}
    # Staff and regions are small tables: all their names, one query each.
    operators = {
        profile.user_id: (profile.user.get_full_name() or profile.user.get_username())
        for profile in AgentProfile.objects.select_related("user")
    }
    names = {
        "operator": operators,
        "branch": {pk: branch.name for pk, branch in branches.items()},
        "region": dict(Region.objects.values_list("pk", "name")),
    }
    return Report(params=params, rows=conversations, inboxes=inboxes, branches=branches, names=names)


def filter_choices(scope: StaffScope) -> dict[str, Any]:
    """What the reports page offers in its filters, in the caller's reach, and its default zone
    (the caller's branch's, else UTC). An operator's only operator is themself."""
    profile = AgentProfile.objects.filter(user_id=scope.user_id).select_related("branch").first()
    tz = profile.branch.timezone if profile and profile.branch_id else "UTC"
    staff = AgentProfile.objects.select_related("user").order_by("user__first_name", "user__username")
    branches = Branch.objects.order_by("name")
    if not scope.sees_all:
        staff = staff.filter(user_id=scope.user_id)
        branches = branches.filter(pk=scope.branch_id) if scope.branch_id else branches.none()

    def options(rows: Any) -> list[dict[str, Any]]:
        return [{"id": pk, "name": name} for pk, name in rows]

    return {
        "tz": tz,
        "branches": options(branches.values_list("pk", "name")),
        "regions": options(Region.objects.order_by("name").values_list("pk", "name")),
        "inboxes": options(visible_inboxes(scope).order_by("name").values_list("pk", "name")),
        "operators": [
            {"id": profile.user_id, "name": profile.user.get_full_name() or profile.user.get_username()}
            for profile in staff
        ],
        "labels": options(Label.objects.order_by("name").values_list("pk", "name")),
    }
