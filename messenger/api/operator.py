"""Operator dashboard reads (session auth). State changes go over the operator socket
(``messenger.actions.commands``); these views only parse, check access and call a selector.
"""

# No ``from __future__ import annotations``: a TypedDict tells its optional keys (``NotRequired``)
# only from annotations evaluated when it is defined.
from typing import Any, NotRequired, TypedDict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger import events, selectors
from messenger.access import StaffScope, access_conversation_for_staff, staff_scope
from messenger.actions import visitors
from messenger.api.schema import errors, shape_serializer
from messenger.models import ConversationStatus

TAGS = ["operator"]
STAFF = "For logged-in staff of the messenger (session cookie); an operator sees their branch and their own chats."


class ConversationList(TypedDict):
    results: list[selectors.ConversationRow]
    next_cursor: str | None
    # Only on the first page (no ``cursor``).
    counters: NotRequired[selectors.TabCounters]


class ConversationDetailResponse(TypedDict):
    conversation: selectors.ConversationDetail


class CannedResponseList(TypedDict):
    results: list[selectors.CannedResponseRow]


class OperatorList(TypedDict):
    results: list[selectors.OperatorRow]


class BranchList(TypedDict):
    results: list[selectors.BranchRow]


class LabelList(TypedDict):
    results: list[selectors.LabelRow]


class IsMessengerStaff(BasePermission):
    """Logged-in staff of the messenger; the scope is kept on the request for the view."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        scope = staff_scope(request.user)
        request.staff_scope = scope
        return scope is not None


class IsSupervisor(IsMessengerStaff):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return super().has_permission(request, view) and request.staff_scope.sees_all


class StaffView(APIView):
    permission_classes = [IsMessengerStaff]

    def scope(self, request: Request) -> StaffScope:
        return request.staff_scope


class ConversationListInput(serializers.Serializer):
    tab = serializers.ChoiceField(choices=selectors.TABS, required=False, default="all")
    status = serializers.ChoiceField(
        choices=["", "active", "any", *ConversationStatus.values], required=False, allow_blank=True, default=""
    )
    inbox = serializers.IntegerField(required=False, min_value=1)
    branch = serializers.IntegerField(required=False, min_value=1)
    priority = serializers.IntegerField(required=False, min_value=0, max_value=4)
    label = serializers.CharField(required=False, max_length=60, allow_blank=True, default="")
    q = serializers.CharField(required=False, max_length=200, allow_blank=True, default="", trim_whitespace=True)
    cursor = serializers.CharField(required=False, max_length=200, allow_blank=True, default="")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=selectors.LIST_PAGE)


class ConversationListView(StaffView):
    """GET /api/operator/conversations/ — keyset-paginated by (last_activity_at, id)."""

    @extend_schema(
        operation_id="operator_conversation_list",
        tags=TAGS,
        summary="List conversations",
        description=STAFF
        + " Newest activity first, keyset-paginated: pass `next_cursor` back as `cursor` for the next page. "
        "The first page also has the tab counters.",
        parameters=[ConversationListInput],
        responses={200: shape_serializer(ConversationList), **errors(400, 403, 503)},
    )
    def get(self, request: Request) -> Response:
        data = ConversationListInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        values: dict[str, Any] = data.validated_data
        scope = self.scope(request)
        # "all" for an operator is everything they may see (their branch plus their own chats).
        filters = selectors.ConversationFilters(
            tab=values["tab"],
            status=values["status"],
            inbox_id=values.get("inbox"),
            branch_id=values.get("branch"),
            priority=values.get("priority"),
            label=values["label"],
            query=values["q"],
        )
        page = selectors.conversation_rows(scope, filters, cursor=values["cursor"] or None, limit=values["limit"])
        payload: dict[str, Any] = {"results": page.rows, "next_cursor": page.next_cursor}
        if not values["cursor"]:
            payload["counters"] = selectors.tab_counters(scope)
        return Response(payload)


class HistoryInput(serializers.Serializer):
    before = serializers.IntegerField(required=False, min_value=1)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=200, default=selectors.HISTORY_PAGE)


class ConversationMessagesView(StaffView):
    """GET /api/operator/conversations/<id>/messages/?before=<message id> — older pages."""

    @extend_schema(
        operation_id="operator_conversation_messages",
        tags=TAGS,
        summary="A page of a conversation's messages",
        description=STAFF + " Messages older than `before` (all of them, internal notes included), oldest first.",
        parameters=[HistoryInput],
        responses={200: shape_serializer(selectors.HistoryPage), **errors(400, 403, 404, 503)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        data = HistoryInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        conversation = access_conversation_for_staff(self.scope(request), conversation_id)
        return Response(
            selectors.history_page(
                conversation, before_id=data.validated_data.get("before"), limit=data.validated_data["limit"]
            )
        )


class ConversationDetailView(StaffView):
    """GET /api/operator/conversations/<id>/ — summary, contact, earlier conversations, routing log."""

    @extend_schema(
        operation_id="operator_conversation_detail",
        tags=TAGS,
        summary="One conversation",
        description=STAFF + " The summary, the contact, the page, earlier conversations and the routing log.",
        responses={200: shape_serializer(ConversationDetailResponse), **errors(403, 404, 503)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation_for_staff(self.scope(request), conversation_id)
        return Response({"conversation": selectors.conversation_detail(conversation)})


class CannedResponseListView(StaffView):
    @extend_schema(
        operation_id="operator_canned_response_list",
        tags=TAGS,
        summary="Canned responses",
        description=STAFF + " The shared ones and those of the operator's branch.",
        responses={200: shape_serializer(CannedResponseList), **errors(403, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.canned_responses(self.scope(request))})


class OperatorListView(StaffView):
    @extend_schema(
        operation_id="operator_operator_list",
        tags=TAGS,
        summary="Operators",
        description=STAFF + " Every active operator with branch, status, live socket and load.",
        responses={200: shape_serializer(OperatorList), **errors(403, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.operators()})


class BranchListView(StaffView):
    @extend_schema(
        operation_id="operator_branch_list",
        tags=TAGS,
        summary="Branches",
        description=STAFF + " The active branches.",
        responses={200: shape_serializer(BranchList), **errors(403, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.branches()})


class LabelListView(StaffView):
    @extend_schema(
        operation_id="operator_label_list",
        tags=TAGS,
        summary="Labels",
        description=STAFF,
        responses={200: shape_serializer(LabelList), **errors(403, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.labels()})


class FairnessView(APIView):
    """GET /api/operator/fairness/ — supervisors and admins only."""

    permission_classes = [IsSupervisor]

    @extend_schema(
        operation_id="operator_fairness",
        tags=TAGS,
        summary="Assignment fairness",
        description="For supervisors and admins (session cookie): assignments per operator today and "
        "this week, the spread between operators, and the current load.",
        responses={200: shape_serializer(selectors.Fairness), **errors(403, 503)},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.fairness())


class VisitorList(TypedDict):
    """The visitors on pages with the widget now; ``results`` the ``limit`` who arrived last."""

    count: int
    results: list[events.LiveVisitor]


class VisitorListInput(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=200)


class VisitorListView(StaffView):
    @extend_schema(
        operation_id="operator_visitor_list",
        tags=TAGS,
        summary="Live visitors",
        description=STAFF + " The visitors on pages with the widget now (a supervisor: every inbox; an operator: their"
        " branch's inboxes), newest visit first; live changes come as `visitors.changed` frames on the"
        " operator socket (docs/protocol.md).",
        parameters=[VisitorListInput],
        responses={200: shape_serializer(VisitorList), **errors(400, 403, 503)},
    )
    def get(self, request: Request) -> Response:
        data = VisitorListInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        count, results = visitors.live_list(self.scope(request), limit=data.validated_data["limit"])
        return Response({"count": count, "results": results})
