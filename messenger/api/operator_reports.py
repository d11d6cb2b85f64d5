"""/api/operator/reports/…: the reports of /api/v1/reports/ for the dashboard's reports page, with
the staff session instead of a bearer token. The same query, shapes, rows and CSV columns: these
views are the v1 views over a session-authenticated base (``messenger.api.v1.reports``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response

from messenger.api.operator import STAFF, IsMessengerStaff
from messenger.api.schema import errors
from messenger.api.v1 import reports as v1
from messenger.api.v1 import reports_now

TAGS = ["operator"]
ERRORS = errors(400, 403, 404, 503)
DESCRIPTION = (
    STAFF + " The same query and answer as the /api/v1/reports/ operation of the same name "
    "(docs/analytics.md); an operator's figures are always their own."
)


class SessionReportMixin:
    """Staff session instead of a bearer token; no per-token throttle (there is no token)."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsMessengerStaff]

    def check_throttles(self, request: Request) -> None:
        return None


class SessionReportView(SessionReportMixin, v1.ReportView):
    pass


class SessionReportCsvView(SessionReportMixin, v1.ReportCsvView):
    pass


class SessionReportSummaryView(v1.SummaryMixin, SessionReportView):
    @extend_schema(
        operation_id="operator_reports_summary",
        tags=TAGS,
        summary=v1.SUMMARY,
        description=DESCRIPTION,
        parameters=[v1.V1ReportInput],
        responses={200: v1.V1ReportSummary, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


VIEWS = {
    name: v1.report_views(
        name,
        json_base=SessionReportView,
        csv_base=SessionReportCsvView,
        operation_prefix="operator_reports",
        tags=TAGS,
        responses=ERRORS,
        class_prefix="SessionReport",
        description=DESCRIPTION,
    )
    for name in v1.ROWS
}


class SessionReportNowView(SessionReportMixin, reports_now.NowMixin, reports_now.V1View):
    """The live "now" panel (docs/analytics.md, "Now") for the reports page."""

    @extend_schema(
        operation_id="operator_reports_now",
        tags=TAGS,
        summary=reports_now.SUMMARY,
        description=DESCRIPTION,
        parameters=[reports_now.V1NowInput],
        responses={200: reports_now.V1ReportNow, **ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)
