"""The live "now" panel of the reports (docs/analytics.md, "Now"): ``GET /api/v1/reports/now`` with
a bearer token and ``GET /api/operator/reports/now/`` with the staff session — the same query and
answer, from ``messenger.reports_now`` (the session view: ``messenger.api.operator_reports``)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from messenger import reports_now
from messenger.api.schema import errors
from messenger.api.v1.views import TAGS, V1View

MAX_ID = 2**63 - 1
SUMMARY = "Now: waiting conversations, the longest wait, open conversations per operator, who is online"


class V1NowInput(serializers.Serializer):
    branch = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="Conversations of this branch, and its staff."
    )
    inbox = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="Conversations of this inbox (the staff: all)."
    )


class V1NowFilters(serializers.Serializer):
    branch = serializers.IntegerField(allow_null=True)
    inbox = serializers.IntegerField(allow_null=True)


class V1NowLongest(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    since = serializers.DateTimeField(help_text="The conversation's `waiting_since`: its oldest unanswered message.")
    seconds = serializers.FloatField(help_text="`at` − `since`; clients count on from `since`.")
    assignee_id = serializers.IntegerField(allow_null=True)
    branch_id = serializers.IntegerField(allow_null=True)
    inbox_id = serializers.IntegerField()


class V1NowWaiting(serializers.Serializer):
    count = serializers.IntegerField(help_text="Active conversations whose visitor waits for a human answer.")
    unassigned = serializers.IntegerField(help_text="Of those, without an assignee.")
    longest = V1NowLongest(allow_null=True, help_text="The one waiting longest; null when none waits.")


class V1NowOpen(serializers.Serializer):
    count = serializers.IntegerField(help_text="Active conversations (open, pending, snoozed).")
    unassigned = serializers.IntegerField()


class V1NowPresent(serializers.Serializer):
    online = serializers.IntegerField()
    away = serializers.IntegerField()
    busy = serializers.IntegerField()


class V1NowOperator(serializers.Serializer):
    id = serializers.IntegerField(help_text="The user's id.")
    name = serializers.CharField()
    role = serializers.CharField(allow_blank=True)
    branch_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(
        help_text="`online`, `away` or `busy`: the manual status while a socket is live; `offline` without one."
    )
    connected = serializers.BooleanField(help_text="A dashboard socket heartbeated within the presence timeout.")
    open = serializers.IntegerField(help_text="Active conversations assigned to them.")
    waiting = serializers.IntegerField(help_text="Of those, waiting for an answer.")
    max_concurrent = serializers.IntegerField(allow_null=True)


class V1ReportNow(serializers.Serializer):
    at = serializers.DateTimeField(help_text="The server's time of the reading (UTC).")
    filters = V1NowFilters()
    waiting = V1NowWaiting()
    open = V1NowOpen()
    present = V1NowPresent(help_text="Staff connected, per status.")
    operators = V1NowOperator(many=True, help_text="Staff connected or with an open conversation.")


class NowMixin:
    def get(self, request: Request) -> Response:
        data = V1NowInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        scope = self.scope(request)  # type: ignore[attr-defined]
        params = reports_now.check_params(scope, dict(data.validated_data))
        return Response(V1ReportNow(reports_now.now(scope, params)).data)


class ReportNowView(NowMixin, V1View):
    @extend_schema(
        operation_id="v1_reports_now",
        tags=TAGS,
        summary=SUMMARY,
        description='docs/analytics.md, "Now". An operator\'s figures are their own.',
        parameters=[V1NowInput],
        responses={200: V1ReportNow, **errors(400, 401, 403, 404, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)
