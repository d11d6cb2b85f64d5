"""The REST API, version 1 (docs/integrations.md): bearer tokens, the token user's access (the same
``StaffScope`` as the dashboard), reads through selectors, every change through the same
``check_*`` door as the operator socket — so open dashboards and widgets see it live, audited
like any other change. Views only parse, call and shape the answer."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from messenger import events, selectors, throttle
from messenger.access import StaffScope, access_contact_for_staff, access_conversation_for_staff, staff_scope
from messenger.actions import commands
from messenger.api.parsers import JSONParser
from messenger.api.schema import errors
from messenger.api.v1 import serializers as shapes
from messenger.api.v1.auth import BearerTokenAuthentication
from messenger.api.v1.errors import TooLarge
from messenger.errors import InvalidInput, NotFound
from messenger.models import ApiToken
from messenger.protocol import Command

TAGS = ["v1"]
MAX_ID = 2**63 - 1
MAX_LABELS = shapes.V1LabelsBody().fields["labels"].max_length


class HasMessengerAccess(BasePermission):
    """A valid token whose user is staff of the messenger now; the scope is kept on the request."""

    message = "The token's user has no access to the messenger."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not isinstance(request.auth, ApiToken):
            return False  # no token at all: 401 (DRF asks the authenticator for WWW-Authenticate)
        request.staff_scope = staff_scope(request.user)
        return request.staff_scope is not None


class V1View(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasMessengerAccess]
    parser_classes = [JSONParser]
    renderer_classes = [JSONRenderer]  # no browsable HTML pages: a program's API

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if any(isinstance(value, int) and value > MAX_ID for value in kwargs.values()):
            raise NotFound()
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise TooLarge(f"The body exceeds {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")

    def check_throttles(self, request: Request) -> None:
        throttle.check(
            "api-token",
            request.auth.pk,
            settings.MESSENGER_API_RATE_PER_TOKEN,
            message="Too many requests with this token; slow down.",
        )

    def scope(self, request: Request) -> StaffScope:
        return request.staff_scope

    def context(self, request: Request) -> commands.OperatorContext:
        return commands.OperatorContext(user=request.user, scope=request.staff_scope)

    def query(self, request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        data = serializer_class(data=request.query_params)
        data.is_valid(raise_exception=True)
        return data.validated_data

    def body(
        self, request: Request, serializer_class: type[serializers.Serializer], *, required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The JSON object's documented fields, as sent: the door checks their values."""
        data = request.data
        if not isinstance(data, dict):
            raise InvalidInput("The body must be a JSON object.")
        unknown = sorted(set(data) - set(serializer_class().fields))
        if unknown:
            raise InvalidInput(f"{unknown[0]}: unknown field", errors={name: ["Unknown field."] for name in unknown})
        missing = [name for name in required if name not in data]
        if missing:
            raise InvalidInput(f"{missing[0]}: required", errors={name: ["Required."] for name in missing})
        return dict(data)


def v1_errors(*statuses: int) -> dict[int, Any]:
    """The error responses of a v1 operation: its own, and those any call may get (401 no valid
    token, 403 no messenger access, 429 throttled, 503 database unavailable), so that a generated
    client parses them as ``Error`` rather than raise on an undocumented status."""
    return errors(*sorted({*statuses, 401, 403, 429, 503}))


PAGE_ERRORS = v1_errors(400)
ONE_ERRORS = v1_errors(404)
WRITE_ERRORS = v1_errors(400, 404, 409, 413, 415)


# --- who am I ------------------------------------------------------------------------------------


class MeView(V1View):
    @extend_schema(
        operation_id="v1_me",
        tags=TAGS,
        summary="The token's user and access",
        responses={200: shapes.V1Me, **v1_errors()},
    )
    def get(self, request: Request) -> Response:
        scope = self.scope(request)
        user = request.user
        profile = getattr(user, "agent", None)
        branch = profile.branch if profile is not None and profile.branch_id else None
        token: ApiToken = request.auth
        return Response(
            {
                "id": user.pk,
                "username": user.get_username(),
                "name": events.user_name(user),
                "email": user.email,
                "role": scope.role,
                "sees_all": scope.sees_all,
                "branch": {"id": branch.pk, "name": branch.name} if branch else None,
                "token": {
                    "prefix": token.prefix,
                    "name": token.name,
                    "created_at": events.iso(token.created_at),
                    "last_used_at": events.iso(token.last_used_at),
                },
            }
        )


# --- conversations -------------------------------------------------------------------------------


class ConversationListView(V1View):
    @extend_schema(
        operation_id="v1_conversations_list",
        tags=TAGS,
        summary="Conversations the token's user may see, newest activity first",
        parameters=[shapes.V1ConversationListInput],
        responses={200: shapes.V1ConversationPage, **PAGE_ERRORS},
    )
    def get(self, request: Request) -> Response:
        values = self.query(request, shapes.V1ConversationListInput)
        scope = self.scope(request)
        assignee = values.get("assignee")
        filters = selectors.ConversationFilters(
            tab="unassigned" if assignee == "none" else "all",
            status="" if values["status"] == "any" else values["status"],
            inbox_id=values.get("inbox"),
            branch_id=values.get("branch"),
            priority=values.get("priority"),
            label=values["label"],
            query=values["q"].strip(),
            assignee_id=scope.user_id if assignee == "me" else assignee if isinstance(assignee, int) else None,
            updated_since=values.get("updated_since"),
        )
        page = selectors.conversation_rows(scope, filters, cursor=values["cursor"] or None, limit=values["limit"])
        return Response({"results": page.rows, "next_cursor": page.next_cursor})


class ConversationView(V1View):
    @extend_schema(
        operation_id="v1_conversations_retrieve",
        tags=TAGS,
        summary="One conversation: summary, contact, visitor's page, earlier conversations, routing log",
        responses={200: shapes.V1ConversationDetail, **ONE_ERRORS},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = access_conversation_for_staff(self.scope(request), conversation_id)
        return Response(selectors.conversation_detail(conversation))


class ConversationMessagesView(V1View):
    @extend_schema(
        operation_id="v1_conversations_messages_list",
        tags=TAGS,
        summary="Messages and notes, newest page first; each page in chronological order",
        parameters=[shapes.V1PageInput],
        responses={200: shapes.V1MessagePage, **v1_errors(400, 404)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        values = self.query(request, shapes.V1PageInput)
        conversation = access_conversation_for_staff(self.scope(request), conversation_id)
        page = selectors.message_rows(conversation, cursor=values["cursor"] or None, limit=values["limit"])
        return Response({"results": page.rows, "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="v1_conversations_messages_create",
        tags=TAGS,
        summary="Send a reply to the visitor, or an internal note (`private`), as the token's user",
        request=shapes.V1SendMessageBody,
        examples=[
            OpenApiExample(
                "A reply", value={"body": "It ships **today**.", "client_id": "crm-4711"}, request_only=True
            ),
            OpenApiExample("An internal note", value={"body": "VIP customer", "private": True}, request_only=True),
        ],
        responses={
            201: OpenApiResponse(shapes.V1Message, description="Sent."),
            200: OpenApiResponse(shapes.V1Message, description="Already sent with this `client_id`."),
            **WRITE_ERRORS,
        },
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        fields = self.body(request, shapes.V1SendMessageBody)
        fields.setdefault("client_id", uuid.uuid4().hex)
        result = commands.check_operator_send(
            self.context(request),
            Command(type="message.send", ref=None, fields={**fields, "conversation_id": conversation_id}),
        )
        message = events.message_payload(
            result.message, public=False, attachments=getattr(result.message, "_prefetched_attachments", None)
        )
        return Response(message, status=201 if result.created else 200)


class ConversationChangeView(V1View):
    """A POST that changes one thing of a conversation through the operator socket's door."""

    command: str = ""
    required: tuple[str, ...] = ()
    shape: type[serializers.Serializer] = serializers.Serializer

    def limit(self, fields: dict[str, Any]) -> None:
        """What the API refuses beyond the door's own checks."""

    def post(self, request: Request, conversation_id: int) -> Response:
        fields = self.body(request, self.shape, required=self.required)
        self.limit(fields)
        conversation = commands.check_conversation_change(
            self.context(request),
            Command(type=self.command, ref=None, fields={**fields, "conversation_id": conversation_id}),
        )
        return Response(selectors.conversation_row(conversation))


def change_schema(name: str, summary: str, shape: type[serializers.Serializer]) -> Any:
    return extend_schema(
        operation_id=f"v1_conversations_{name}",
        tags=TAGS,
        summary=summary,
        description="Through the same door as the operator socket's command: broadcast live to the "
        "dashboards (and to the visitor where they see it) and audited as the token's user.",
        request=shape,
        responses={
            200: OpenApiResponse(shapes.V1Conversation, description="The conversation after it."),
            **WRITE_ERRORS,
        },
    )


class ConversationStatusView(ConversationChangeView):
    command = "conversation.status"
    required = ("status",)
    shape = shapes.V1StatusBody

    @change_schema("status", "Set the status (resolve, reopen, snooze …)", shapes.V1StatusBody)
    @extend_schema(
        examples=[
            OpenApiExample("Resolve", value={"status": "resolved"}, request_only=True),
            OpenApiExample(
                "Snooze", value={"status": "snoozed", "snoozed_until": "2026-12-06T09:00:00Z"}, request_only=True
            ),
        ]
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)


class ConversationPriorityView(ConversationChangeView):
    command = "conversation.priority"
    required = ("priority",)
    shape = shapes.V1PriorityBody

    @change_schema("priority", "Set the priority", shapes.V1PriorityBody)
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)


class ConversationLabelsView(ConversationChangeView):
    command = "conversation.labels"
    required = ("labels",)
    shape = shapes.V1LabelsBody

    def limit(self, fields: dict[str, Any]) -> None:
        if isinstance(fields["labels"], list) and len(fields["labels"]) > MAX_LABELS:
            raise InvalidInput(f"labels: at most {MAX_LABELS}")

    @change_schema("labels", "Replace the labels", shapes.V1LabelsBody)
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)


class ConversationAssigneeView(ConversationChangeView):
    command = "conversation.assign"
    required = ("assignee_id",)
    shape = shapes.V1AssigneeBody

    @change_schema("assignee", "Assign to an operator (or yourself, or nobody)", shapes.V1AssigneeBody)
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)


class ConversationTransferView(ConversationChangeView):
    command = "conversation.transfer"
    shape = shapes.V1TransferBody

    @change_schema("transfer", "Transfer to another branch or operator", shapes.V1TransferBody)
    def post(self, request: Request, conversation_id: int) -> Response:
        return super().post(request, conversation_id)


# --- contacts ------------------------------------------------------------------------------------


class ContactListView(V1View):
    @extend_schema(
        operation_id="v1_contacts_list",
        tags=TAGS,
        summary="Contacts the token's user may see, newest first",
        parameters=[shapes.V1ContactListInput],
        responses={200: shapes.V1ContactPage, **PAGE_ERRORS},
    )
    def get(self, request: Request) -> Response:
        values = self.query(request, shapes.V1ContactListInput)
        page = selectors.contact_rows(
            self.scope(request), query=values["q"].strip(), cursor=values["cursor"] or None, limit=values["limit"]
        )
        return Response({"results": page.rows, "next_cursor": page.next_cursor})


class ContactView(V1View):
    @extend_schema(
        operation_id="v1_contacts_retrieve",
        tags=TAGS,
        summary="One contact",
        responses={200: shapes.V1Contact, **ONE_ERRORS},
    )
    def get(self, request: Request, contact_id: int) -> Response:
        return Response(selectors.contact_row(access_contact_for_staff(self.scope(request), contact_id)))

    @extend_schema(
        operation_id="v1_contacts_partial_update",
        tags=TAGS,
        summary="Change a contact's details (the fields sent; `custom` is merged)",
        request=shapes.V1ContactUpdateBody,
        responses={200: shapes.V1Contact, **WRITE_ERRORS},
    )
    def patch(self, request: Request, contact_id: int) -> Response:
        fields = self.body(request, shapes.V1ContactUpdateBody)
        contact = commands.check_update_contact(self.context(request), contact_id, fields)
        return Response(selectors.contact_row(contact))


class ContactConversationsView(V1View):
    @extend_schema(
        operation_id="v1_contacts_conversations_list",
        tags=TAGS,
        summary="A contact's conversations that the token's user may see, newest activity first",
        parameters=[shapes.V1PageInput],
        responses={200: shapes.V1ConversationPage, **v1_errors(400, 404)},
    )
    def get(self, request: Request, contact_id: int) -> Response:
        values = self.query(request, shapes.V1PageInput)
        scope = self.scope(request)
        contact = access_contact_for_staff(scope, contact_id)
        page = selectors.conversation_rows(
            scope,
            selectors.ConversationFilters(contact_id=contact.pk),
            cursor=values["cursor"] or None,
            limit=values["limit"],
        )
        return Response({"results": page.rows, "next_cursor": page.next_cursor})


# --- inboxes -------------------------------------------------------------------------------------


class InboxListView(V1View):
    @extend_schema(
        operation_id="v1_inboxes_list",
        tags=TAGS,
        summary="Inboxes the token's user works with",
        responses={200: shapes.V1InboxList, **v1_errors()},
    )
    def get(self, request: Request) -> Response:
        return Response({"results": selectors.inboxes(self.scope(request))})
