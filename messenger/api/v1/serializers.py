"""The REST API's shapes: query parameters (validated here) and, for the OpenAPI schema, the
request bodies and responses. Responses are built by the same builders as the dashboard's reads
and the socket's frames (``messenger.events``, ``messenger.selectors``); these serializers only
describe them, and tests/test_api_v1.py checks every response against them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from messenger.models import ConversationStatus, MessageDirection

LIST_LIMIT = 100
QUERY_MAX = 200


# --- query parameters ----------------------------------------------------------------------------


class V1PageInput(serializers.Serializer):
    cursor = serializers.CharField(
        required=False, max_length=200, allow_blank=True, default="", help_text="`next_cursor` of the previous page."
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=LIST_LIMIT, default=50)


class AssigneeFilterField(serializers.CharField):
    """An operator's user id, `me` or `none` (unassigned)."""

    def to_internal_value(self, data: Any) -> int | str:
        value = super().to_internal_value(data)
        if value in ("me", "none"):
            return value
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise serializers.ValidationError("A user id, `me` or `none`.")
        return int(value)

    def run_validators(self, value: Any) -> None:
        """Its values are checked above (a user id is an integer, which length validators refuse)."""


class V1ConversationListInput(V1PageInput):
    status = serializers.ChoiceField(
        choices=["active", "any", *ConversationStatus.values],
        required=False,
        default="any",
        help_text="One status, `active` (open, pending or snoozed) or `any`.",
    )
    inbox = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    branch = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    assignee = AssigneeFilterField(required=False, help_text="A user id, `me` or `none`.")
    priority = serializers.IntegerField(required=False, min_value=0, max_value=4)
    label = serializers.CharField(required=False, max_length=60, allow_blank=True, default="")
    q = serializers.CharField(
        required=False,
        max_length=QUERY_MAX,
        allow_blank=True,
        default="",
        help_text="Contact name, e-mail or phone, the conversation's identifier, or text of a message.",
    )
    updated_since = serializers.DateTimeField(
        required=False, help_text="Only conversations changed at or after this ISO 8601 time."
    )


class V1ContactListInput(V1PageInput):
    q = serializers.CharField(
        required=False,
        max_length=QUERY_MAX,
        allow_blank=True,
        default="",
        help_text="Part of the name, e-mail or phone, or the exact external id.",
    )


# --- request bodies ------------------------------------------------------------------------------


class V1SendMessageBody(serializers.Serializer):
    body = serializers.CharField(help_text="The text (Markdown-like formatting, as typed in the dashboard).")
    private = serializers.BooleanField(
        required=False, default=False, help_text="An internal note, which the visitor never sees."
    )
    client_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=64,
        help_text="Your id for this message: a retry with the same id stores nothing new and answers "
        "the stored message (200 instead of 201).",
    )


class V1StatusBody(serializers.Serializer):
    status = serializers.ChoiceField(choices=ConversationStatus.values)
    snoozed_until = serializers.DateTimeField(required=False, help_text="Required (in the future) to snooze.")


class V1PriorityBody(serializers.Serializer):
    priority = serializers.IntegerField(min_value=0, max_value=4, help_text="0 none, 1 low … 4 urgent.")


class V1LabelsBody(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=60),
        max_length=50,
        help_text="The conversation's labels after the change (unknown names are created).",
    )


class V1AssigneeBody(serializers.Serializer):
    assignee_id = serializers.JSONField(
        help_text='A user id, `"me"`, or null to unassign. An operator of another branch takes '
        "the conversation to their branch (a transfer)."
    )


class V1TransferBody(serializers.Serializer):
    branch_id = serializers.IntegerField(
        required=False, help_text="To this branch: its first free operator, else its queue."
    )
    assignee_id = serializers.IntegerField(required=False, help_text="To this operator; the branch follows.")


class V1ContactUpdateBody(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)
    email = serializers.EmailField(required=False, max_length=254, allow_blank=True)
    phone = serializers.CharField(required=False, max_length=40, allow_blank=True)
    external_id = serializers.CharField(
        required=False, max_length=200, allow_blank=True, help_text="Your system's id of this contact."
    )
    custom = serializers.DictField(
        required=False,
        child=serializers.JSONField(),
        help_text="Merged into the custom attributes: at most 30 keys of text, number or boolean.",
    )


# --- responses -----------------------------------------------------------------------------------


class V1Ref(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class V1ContactRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text='The display name ("Visitor #12" when none is known).')
    email = serializers.CharField()
    phone = serializers.CharField()


class V1Rating(serializers.Serializer):
    score = serializers.IntegerField()
    scale = serializers.ChoiceField(
        choices=["stars", "nps"], help_text="The scale the visitor rated on: stars (1–5) or NPS (0–10)."
    )
    comment = serializers.CharField()
    rated_at = serializers.DateTimeField(allow_null=True)


class V1Conversation(serializers.Serializer):
    """The staff summary of a conversation (as in the socket's `conversation.updated` frames)."""

    id = serializers.IntegerField()
    identifier = serializers.CharField()
    status = serializers.ChoiceField(choices=ConversationStatus.values)
    priority = serializers.IntegerField()
    inbox = V1Ref()
    branch = V1Ref(allow_null=True)
    region = V1Ref(allow_null=True)
    contact = V1ContactRef()
    assignee = V1Ref(allow_null=True)
    unread_for_agent = serializers.IntegerField()
    waiting_since = serializers.DateTimeField(allow_null=True)
    last_activity_at = serializers.DateTimeField(allow_null=True)
    last_message_preview = serializers.CharField()
    assignee_opened_at = serializers.DateTimeField(allow_null=True)
    snoozed_until = serializers.DateTimeField(allow_null=True)
    escalation_count = serializers.IntegerField()
    rating = V1Rating(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)
    last_seq = serializers.IntegerField(help_text="The last event number of the conversation's staff stream.")
    labels = serializers.ListField(child=serializers.CharField())
    is_active = serializers.BooleanField()


class V1ContactDetail(V1ContactRef):
    blocked = serializers.BooleanField()
    region = serializers.CharField(allow_null=True)
    browser = serializers.CharField()
    os = serializers.CharField()
    language = serializers.CharField()
    timezone = serializers.CharField()
    ip = serializers.CharField()
    custom = serializers.DictField()
    custom_labels = serializers.DictField(
        child=serializers.CharField(),
        help_text="The labels the conversation's inbox gives the `custom` fields in its pre-chat form, by name, "
        "in the form's order (a field without a label or no longer in the form is not named).",
    )
    created_at = serializers.DateTimeField(allow_null=True)


class V1VisitorPage(serializers.Serializer):
    url = serializers.CharField()
    title = serializers.CharField()
    referrer = serializers.CharField()


class V1EarlierConversation(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    last_message_preview = serializers.CharField()


class V1ConversationDetail(V1Conversation):
    contact = V1ContactDetail()
    routing_log = serializers.ListField(child=serializers.DictField(), help_text="Why it is where it is.")
    page = V1VisitorPage(help_text="The page the visitor wrote from.")
    invitation = serializers.CharField(
        allow_null=True,
        help_text="The operator's invitation the visitor answered to start it; null when they wrote first.",
    )
    earlier_conversations = V1EarlierConversation(many=True)


class V1Sender(serializers.Serializer):
    type = serializers.ChoiceField(choices=["contact", "user", "system", "bot"])
    id = serializers.IntegerField(required=False, allow_null=True)
    name = serializers.CharField()


class V1Attachment(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    is_image = serializers.BooleanField()
    url = serializers.CharField(help_text="Download URL (staff session or token with access).")


class V1Message(serializers.Serializer):
    """A message as staff see it (as in the socket's `message.created` frames)."""

    id = serializers.IntegerField()
    conversation_id = serializers.IntegerField()
    direction = serializers.ChoiceField(choices=MessageDirection.values, help_text="`internal`: a note.")
    client_id = serializers.CharField(allow_null=True)
    sender = V1Sender()
    body = serializers.CharField(help_text="The text as written.")
    content = serializers.CharField(help_text="The text rendered as safe HTML.")
    attachments = V1Attachment(many=True)
    content_attributes = serializers.DictField()
    created_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    read_at = serializers.DateTimeField(allow_null=True)


class V1Contact(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    display_name = serializers.CharField(help_text='The name, else e-mail, phone or "Visitor #id".')
    email = serializers.CharField()
    phone = serializers.CharField()
    external_id = serializers.CharField()
    blocked = serializers.BooleanField()
    region = V1Ref(allow_null=True)
    language = serializers.CharField()
    custom = serializers.DictField()
    last_activity_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)
    anonymized_at = serializers.DateTimeField(allow_null=True)


class V1Inbox(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    branch = V1Ref(allow_null=True)
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True)


class V1TokenInfo(serializers.Serializer):
    prefix = serializers.CharField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


class V1Me(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField()
    role = serializers.ChoiceField(choices=["operator", "supervisor", "admin"])
    sees_all = serializers.BooleanField(help_text="Supervisors and admins see every branch.")
    branch = V1Ref(allow_null=True)
    token = V1TokenInfo()


def page_of(name: str, item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """``{"results": [item…], "next_cursor": str | null}``."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": item(many=True),
            "next_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as `cursor` for the next page; null on the last."
            ),
        },
    )


V1ConversationPage = page_of("V1ConversationPage", V1Conversation)
V1MessagePage = page_of("V1MessagePage", V1Message)
V1ContactPage = page_of("V1ContactPage", V1Contact)


class V1InboxList(serializers.Serializer):
    results = V1Inbox(many=True)
