"""/api/v1/reports/…: the analytics of docs/analytics.md as JSON, each table also as CSV (`…/csv`).

The query parameters are validated here, the range, zone and filters in reach by
``messenger.reports.check_params``; the figures come from ``messenger.reports``.
"""

from __future__ import annotations

import csv
import io
from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from messenger import reports
from messenger.api.schema import errors
from messenger.api.v1.views import TAGS, V1View

MAX_ID = 2**63 - 1
# A text cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(…), +cmd|…):
# the CSV export writes it after an apostrophe, so a visitor's comment or a name stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
REPORT_ERRORS = errors(400, 401, 403, 404, 429, 503)


# --- query parameters ----------------------------------------------------------------------------


class V1ReportInput(serializers.Serializer):
    start = serializers.DateField(help_text="First local day of the range (YYYY-MM-DD), in `tz`.")
    end = serializers.DateField(help_text=f"Last local day, inclusive; at most {reports.MAX_DAYS} days in all.")
    tz = serializers.CharField(
        required=False, default="UTC", max_length=64, help_text="IANA time zone of the days and hours."
    )
    branch = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    region = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    inbox = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    operator = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="An operator's user id (an operator: only their own)."
    )
    label = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="A label's id.")


class V1RatingsInput(V1ReportInput):
    limit = serializers.IntegerField(
        required=False,
        default=100,
        min_value=1,
        max_value=1000,
        help_text="The newest N ratings (the CSV export has them all; the summary counts them all).",
    )


# --- responses -----------------------------------------------------------------------------------


class V1ReportRange(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    tz = serializers.CharField()
    since = serializers.DateTimeField(help_text="The range's first moment (UTC).")
    until = serializers.DateTimeField(help_text="The moment after the range (UTC).")


class V1Durations(serializers.Serializer):
    count = serializers.IntegerField()
    median = serializers.FloatField(allow_null=True, help_text="Seconds.")
    p90 = serializers.FloatField(allow_null=True, help_text="Seconds.")


class V1QueueWait(V1Durations):
    mean = serializers.FloatField(allow_null=True, help_text="Seconds.")


class V1ConversationCounts(serializers.Serializer):
    new = serializers.IntegerField()
    resolved = serializers.IntegerField()
    reopened = serializers.IntegerField()
    missed = serializers.IntegerField()
    abandoned = serializers.IntegerField()


class V1Csat(serializers.Serializer):
    count = serializers.IntegerField()
    average = serializers.FloatField(allow_null=True)
    distribution = serializers.DictField(child=serializers.IntegerField(), help_text="Stars (1–5) → ratings.")


class V1Nps(serializers.Serializer):
    count = serializers.IntegerField()
    promoters = serializers.IntegerField()
    passives = serializers.IntegerField()
    detractors = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True, help_text="% promoters − % detractors.")


class V1ReportFigures(serializers.Serializer):
    conversations = V1ConversationCounts()
    first_response = V1Durations()
    first_response_working_hours = V1Durations()
    resolution = V1Durations()
    queue_wait = V1QueueWait()
    messages_per_conversation = serializers.FloatField(allow_null=True)
    escalations = serializers.IntegerField()
    escalation_chains_ran_out = serializers.IntegerField()
    transfers = serializers.IntegerField()
    csat = V1Csat()
    nps = V1Nps()


class V1ReportSummary(serializers.Serializer):
    range = V1ReportRange()
    figures = V1ReportFigures()


class V1ReportGroupRow(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="None: conversations without one.")
    name = serializers.CharField(allow_blank=True, help_text="Empty for the row of conversations without one.")
    new = serializers.IntegerField()
    resolved = serializers.IntegerField()
    reopened = serializers.IntegerField()
    missed = serializers.IntegerField()
    first_response_median = serializers.FloatField(allow_null=True)
    first_response_p90 = serializers.FloatField(allow_null=True)
    resolution_median = serializers.FloatField(allow_null=True)
    resolution_p90 = serializers.FloatField(allow_null=True)
    queue_wait_median = serializers.FloatField(allow_null=True)
    csat_average = serializers.FloatField(allow_null=True)
    csat_count = serializers.IntegerField()
    nps = serializers.FloatField(allow_null=True)


class V1ReportOperatorRow(V1ReportGroupRow):
    online_seconds = serializers.FloatField(
        help_text="Seconds online within the range (docs/analytics.md): connected with status online."
    )
    away_seconds = serializers.FloatField(help_text="Seconds connected with status away within the range.")
    busy_seconds = serializers.FloatField(help_text="Seconds connected with status busy within the range.")


class V1ReportSeriesRow(serializers.Serializer):
    date = serializers.DateField()
    new = serializers.IntegerField()
    resolved = serializers.IntegerField()
    missed = serializers.IntegerField()
    first_response_median = serializers.FloatField(allow_null=True)


class V1ReportHeatCell(serializers.Serializer):
    weekday = serializers.IntegerField(help_text="0 = Monday.")
    hour = serializers.IntegerField()
    new = serializers.IntegerField()
    queue_wait_mean = serializers.FloatField(allow_null=True)


class V1ReportRating(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    rated_at = serializers.DateTimeField()
    scale = serializers.ChoiceField(choices=["stars", "nps"])
    score = serializers.IntegerField()
    comment = serializers.CharField(allow_blank=True, help_text="The current rating's comment; empty otherwise.")
    operator_id = serializers.IntegerField(allow_null=True)
    branch_id = serializers.IntegerField(allow_null=True)


def _table(row: type[serializers.Serializer], name: str) -> type[serializers.Serializer]:
    return type(name, (serializers.Serializer,), {"range": V1ReportRange(), "results": row(many=True)})


# --- views ---------------------------------------------------------------------------------------


class ReportView(V1View):
    """One report: ``build`` turns the loaded report into its rows (a table) or its object."""

    columns: ClassVar[tuple[str, ...]] = ()

    input_class: ClassVar[type[serializers.Serializer]] = V1ReportInput

    def load(self, request: Request) -> reports.Report:
        data = self.input_class(data=request.query_params)
        data.is_valid(raise_exception=True)
        scope = self.scope(request)
        return reports.report(scope, reports.check_params(scope, dict(data.validated_data)))

    def build(self, report: reports.Report) -> Any:
        raise NotImplementedError

    def envelope(self, report: reports.Report) -> dict[str, Any]:
        params = report.params
        return {
            "range": {
                "start": params.start,
                "end": params.end,
                "tz": params.tz,
                "since": params.since,
                "until": params.until,
            },
            "results": self.build(report),
        }

    def get(self, request: Request) -> Response:
        return Response(self.serializer_class(self.envelope(self.load(request))).data)

    serializer_class: ClassVar[type[serializers.Serializer]]


def csv_cell(value: Any) -> Any:
    """A value as the CSV export writes it: empty for null, text that a spreadsheet would run as a
    formula behind an apostrophe (CSV injection); numbers as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class ReportCsvView(ReportView):
    """The same rows as text/csv, one column per field, a header line first; a text cell that a
    spreadsheet would read as a formula starts with an apostrophe (``csv_cell``)."""

    def get(self, request: Request) -> HttpResponse:  # type: ignore[override]
        report = self.load(request)
        rows = self.serializer_class(self.envelope(report)).data["results"]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        for row in rows:
            writer.writerow([csv_cell(row[column]) for column in self.columns])
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{self.filename}-{report.params.start}-{report.params.end}.csv"'
        )
        return response

    filename: ClassVar[str] = "report"


ROWS: dict[str, tuple[type[serializers.Serializer], Any, str]] = {
    "operators": (V1ReportOperatorRow, lambda report: report.table("operator"), "The figures per operator (assignee)"),
    "branches": (V1ReportGroupRow, lambda report: report.table("branch"), "The figures per branch"),
    "regions": (V1ReportGroupRow, lambda report: report.table("region"), "The figures per region"),
    "series": (
        V1ReportSeriesRow,
        lambda report: report.series(),
        "Per local day: new, resolved, missed, first response",
    ),
    "heatmap": (
        V1ReportHeatCell,
        lambda report: report.heatmap(),
        "Weekday × local hour: new conversations, queue wait",
    ),
    "ratings": (V1ReportRating, lambda report: report.ratings(), "Ratings given in the range, with comments"),
}
SHAPES = {name: _table(row, f"V1Report{name.title()}") for name, (row, _build, _summary) in ROWS.items()}


def report_views(
    name: str,
    *,
    json_base: type[ReportView],
    csv_base: type[ReportCsvView],
    operation_prefix: str,
    tags: list[str],
    responses: dict[Any, Any],
    class_prefix: str = "Report",
    description: str | None = None,
) -> tuple[type, type]:
    """The JSON and the CSV view of one table over ``json_base``/``csv_base`` (the authentication:
    a bearer token for /api/v1/, the session for the dashboard): the same shape, rows and columns."""
    row, build, summary = ROWS[name]
    shape = SHAPES[name]
    columns = tuple(row().fields)

    json_input = V1RatingsInput if name == "ratings" else V1ReportInput

    class Json(json_base):  # type: ignore[valid-type,misc]
        serializer_class = shape
        input_class = json_input

        @extend_schema(
            operation_id=f"{operation_prefix}_{name}",
            tags=tags,
            summary=summary,
            description=description,
            parameters=[json_input],
            responses={200: shape, **responses},
        )
        def get(self, request: Request) -> Response:
            return super().get(request)

    class Csv(csv_base):  # type: ignore[valid-type,misc]
        serializer_class = shape
        filename = name

        @extend_schema(
            operation_id=f"{operation_prefix}_{name}_csv",
            tags=tags,
            summary=f"{summary} (CSV)",
            description=description,
            parameters=[V1ReportInput],
            responses={
                (200, "text/csv"): OpenApiResponse(
                    OpenApiTypes.STR, description="A header line, then one line per row."
                ),
                **responses,
            },
        )
        def get(self, request: Request) -> HttpResponse:
            return super().get(request)

    Json.build = staticmethod(build)  # type: ignore[method-assign,assignment]
    Csv.build = staticmethod(build)  # type: ignore[method-assign,assignment]
    Csv.columns = columns
    title = name.title()
    Json.__name__, Csv.__name__ = f"{class_prefix}{title}View", f"{class_prefix}{title}CsvView"
    Json.__qualname__, Csv.__qualname__ = Json.__name__, Csv.__name__
    return Json, Csv


class SummaryMixin:
    """The summary: one object of figures, not a table."""

    serializer_class = V1ReportSummary

    def get(self, request: Request) -> Response:
        report = self.load(request)  # type: ignore[attr-defined]
        envelope = self.envelope(report)  # type: ignore[attr-defined]
        return Response(V1ReportSummary({"range": envelope["range"], "figures": envelope["results"]}).data)

    def build(self, report: reports.Report) -> Any:
        return report.figures()


SUMMARY = "The report's figures: conversations, first response, resolution, queue, escalations, ratings"


class ReportSummaryView(SummaryMixin, ReportView):
    @extend_schema(
        operation_id="v1_reports_summary",
        tags=TAGS,
        summary=SUMMARY,
        parameters=[V1ReportInput],
        responses={200: V1ReportSummary, **REPORT_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


VIEWS = {
    name: report_views(
        name,
        json_base=ReportView,
        csv_base=ReportCsvView,
        operation_prefix="v1_reports",
        tags=TAGS,
        responses=REPORT_ERRORS,
    )
    for name in ROWS
}
