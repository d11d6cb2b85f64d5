"""check_* doors for socket commands: validate, check permission, call the do_* action, and return
the reply frames. Each ``check_*`` runs in one ``database_sync_to_async`` hop of a consumer; an
``acheck_*`` runs a message send on the event loop instead, or returns None for the thread's door.
The REST API (``messenger.api.v1``) calls the same doors for staff (``check_operator_send``,
``check_conversation_change``, ``check_update_contact``), so a change is the same whichever way it
comes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messenger import events, throttle
from messenger.access import (
    StaffScope,
    access_contact_for_staff,
    access_conversation_for_staff,
    access_conversation_for_visitor,
)
from messenger.actions import assignment, conversations, intake, mail, messages, presence, visitors
from messenger.actions.base import Actor
from messenger.errors import Forbidden, InvalidInput
from messenger.models import Contact, ContactInbox, Conversation
from messenger.protocol import Command, FrameError
from messenger.realtime.eventlog import replay_frames
from messenger.throttle import VisitorLimits

HISTORY_PAGE = 50


@dataclass
class VisitorContext:
    # Unsaved (``pk`` None) until the visitor writes or fills a form (``check_become_contact``).
    contact_inbox: ContactInbox
    ip: str | None = None
    page: dict[str, Any] = field(default_factory=dict)
    # The current conversation as of this socket's last send: saves a lookup per message.
    conversation: Conversation | None = None
    # The CAPTCHA was solved when this visitor's rows were made, for the send that made them.
    captcha_passed: bool = False

    @property
    def actor(self) -> Actor:
        return Actor(contact=self.contact_inbox.contact, ip=self.ip)


@dataclass
class OperatorContext:
    user: Any
    scope: StaffScope
    watching: set[int] = field(default_factory=set)
    # Conversations this socket wrote to, as read by access_*: the send path re-checks them under
    # the row lock (messages.StaleConversation) instead of re-reading them per message.
    writable: dict[int, Conversation] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        return Actor(user=self.user)


def _resume(conversation: Conversation, after: int, *, public: bool) -> list[dict[str, Any]]:
    frames = replay_frames(conversation.pk, after=after, public=public)
    last = conversation.last_public_seq if public else conversation.last_seq
    done = events.resume_done_frame(
        conversation_id=conversation.pk, last_id=frames[-1]["id"] if frames else min(after, last)
    )
    return [*frames, done]


# --- visitor ------------------------------------------------------------------------------------


def check_visitor_command(context: VisitorContext, command: Command) -> list[dict[str, Any]]:
    """Run one visitor command; returns the frames to send back to this socket."""
    ci = context.contact_inbox
    kind = command.type
    if kind == "resume":
        conversation = access_conversation_for_visitor(ci, command.int_field("conversation_id"))
        return _resume(conversation, command.int_field("after", minimum=0) or 0, public=True)
    if kind == "message.send":
        result = intake.send_visitor_message(
            actor=context.actor, page=context.page, **_visitor_send_fields(context, command)
        )
        return _visitor_sent(context, command, result)
    if kind in ("message.delivered", "conversation.read"):
        conversation = access_conversation_for_visitor(ci, command.int_field("conversation_id"))
        up_to = command.fields.get("up_to_message_id")
        if kind == "message.delivered":
            messages.mark_delivered(conversation=conversation, reader="contact", up_to_message_id=up_to)
        else:
            messages.mark_read(conversation=conversation, reader="contact", up_to_message_id=up_to)
        return [events.ack_frame(command.ref)] if command.ref is not None else []
    if kind == "conversation.rate":
        with transaction.atomic():
            conversation = access_conversation_for_visitor(ci, command.int_field("conversation_id"), lock=True)
            conversations.do_rate(
                conversation=conversation,
                score=command.fields.get("score"),
                comment=command.fields.get("comment"),
                actor=context.actor,
            )
        return [events.rating_ack(command.ref, conversation)]
    if kind == "conversation.new":
        return [events.new_conversation_ack(command.ref)]
    if kind == "conversation.transcript":
        conversation = access_conversation_for_visitor(ci, command.int_field("conversation_id"))
        address = check_request_transcript(context, conversation=conversation, email=command.fields.get("email"))
        return [events.transcript_ack(command.ref, address)]
    if kind == "contact.update":
        from messenger.actions.contacts import do_update_contact_from_visitor

        if ci.pk is None:  # blank fields from a visitor without rows: nothing to store
            return [events.contact_ack(command.ref, ci.contact)]
        contact = do_update_contact_from_visitor(contact_inbox=ci, fields=command.fields, actor=context.actor)
        return [events.contact_ack(command.ref, contact)]
    if kind == "widget.close":
        visitors.do_close_widget(contact_inbox=ci)
        return [events.ack_frame(command.ref)] if command.ref is not None else []
    raise FrameError(f"Unknown frame type {kind!r}.", code="unknown_type")


# The visitor commands that need the visitor's rows: the first of them makes them.
CONTACT_COMMANDS = frozenset({"message.send", "contact.update"})


def check_become_contact(context: VisitorContext, command: Command) -> ContactInbox:
    """Before a visitor with no rows yet writes or fills a form: the command's input, and for a
    message the gates of a first conversation, are checked first (a refused one makes no row),
    then the rows are made (``contacts.do_become_contact``). Returns the visitor, stored unless
    the command stores nothing."""
    from messenger.actions.contacts import check_become_contact, check_visitor_fields, do_become_contact

    if command.type == "message.send":
        messages.validate_message_input(
            command.fields.get("client_id"), command.fields.get("body"), command.fields.get("attachment_ids")
        )
        limits = _visitor_limits(context, command)
        context.contact_inbox = check_become_contact(
            context.contact_inbox, limits, conversation_id=command.fields.get("conversation_id")
        )
        context.captcha_passed = limits.captcha_passed
    elif check_visitor_fields(command.fields):
        context.contact_inbox = do_become_contact(context.contact_inbox)
    return context.contact_inbox


def check_request_transcript(context: VisitorContext, *, conversation: Conversation, email: Any) -> str:
    """A visitor's request for their conversation by e-mail: to ``email`` when given (validated),
    else to their contact's address; limited per visitor and per client address
    (``MESSENGER_TRANSCRIPT_RATE_PER_VISITOR``, ``…_PER_IP``).
    Returns the address the transcript is queued for."""
    if email is None or email == "":
        address = context.contact_inbox.contact.email
        if not address:
            raise InvalidInput("email: an address is needed.", fields=["email"])
    else:
        if not isinstance(email, str) or len(email) > 254:
            raise InvalidInput("email: must be an e-mail address.", fields=["email"])
        address = email.strip()
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidInput("email: must be an e-mail address.", fields=["email"]) from None
    too_many = "You have asked for too many transcripts; try again later."
    throttle.check(
        "transcript", context.contact_inbox.pk, settings.MESSENGER_TRANSCRIPT_RATE_PER_VISITOR, message=too_many
    )
    throttle.check("transcript-ip", context.ip, settings.MESSENGER_TRANSCRIPT_RATE_PER_IP, message=too_many)
    with transaction.atomic():
        mail.do_queue_transcript(conversation=conversation, email=address)
    return address


def _visitor_send_fields(context: VisitorContext, command: Command) -> dict[str, Any]:
    return {
        "contact_inbox": context.contact_inbox,
        "client_id": command.fields.get("client_id"),
        "body": command.fields.get("body"),
        "attachment_ids": command.fields.get("attachment_ids"),
        "conversation_id": command.fields.get("conversation_id"),
        "known_conversation": context.conversation,
        "limits": _visitor_limits(context, command),
    }


def _visitor_limits(context: VisitorContext, command: Command) -> VisitorLimits:
    return VisitorLimits(
        ip=context.ip,
        captcha=command.fields.get("captcha"),
        honeypot=command.fields.get("website"),
        captcha_passed=context.captcha_passed,
    )


def _visitor_sent(context: VisitorContext, command: Command, result: messages.SendResult) -> list[dict[str, Any]]:
    context.conversation = result.conversation
    context.captcha_passed = False
    payload = events.message_payload(
        result.message, public=True, attachments=getattr(result.message, "_prefetched_attachments", None)
    )
    return [events.message_ack(command.ref, payload, created=result.created, conversation_id=result.conversation.pk)]


async def acheck_visitor_command(context: VisitorContext, command: Command) -> list[dict[str, Any]] | None:
    """A visitor's message to the socket's conversation, on the event loop (PostgreSQL); None
    when the command must run in a thread (``check_visitor_command``)."""
    if command.type != "message.send":
        return None
    result = await messages.asend_visitor_message(**_visitor_send_fields(context, command))
    return None if result is None else _visitor_sent(context, command, result)


class VisitorTypingTarget(NamedTuple):
    conversation_id: int
    branch_id: int | None
    preview_enabled: bool
    name: str


def visitor_typing_target(context: VisitorContext, conversation_id: Any) -> VisitorTypingTarget:
    """Where a visitor's typing frame goes, whether it may carry the draft, and the visitor's name
    as stored now (the pre-chat form may have named them after the socket opened)."""
    conversation = access_conversation_for_visitor(context.contact_inbox, conversation_id)
    return VisitorTypingTarget(
        conversation.pk,
        conversation.branch_id,
        bool(conversation.inbox.effective_settings["features"].get("typing_preview")),
        str(conversation.contact),
    )


# --- operator -----------------------------------------------------------------------------------


def _writable(context: OperatorContext, conversation_id: Any, *, lock: bool = False) -> Conversation:
    conversation = access_conversation_for_staff(context.scope, conversation_id, lock=lock)
    if conversation.pk in context.watching:
        raise Forbidden("Watch mode is read-only.", code="forbidden")
    return conversation


def conversation_snapshot(conversation: Conversation, *, ref: Any, watch: bool) -> dict[str, Any]:
    """The ``conversation.snapshot`` frame: the newest page of messages (all directions) plus the
    summary; staff only."""
    from messenger.selectors import history_page

    labels = list(conversation.labels.values_list("name", flat=True))
    page = history_page(conversation, limit=HISTORY_PAGE)
    return events.snapshot_frame(
        conversation,
        ref=ref,
        labels=labels,
        messages=page["messages"],
        has_more=page["has_more"],
        watch=watch,
    )


def check_operator_command(context: OperatorContext, command: Command) -> list[dict[str, Any]]:
    kind = command.type
    actor = context.actor
    if kind == "ping":
        return [events.pong_frame()]
    if kind == "resume":
        conversation = access_conversation_for_staff(context.scope, command.int_field("conversation_id"))
        return _resume(conversation, command.int_field("after", minimum=0) or 0, public=False)
    if kind == "conversation.open":
        watch = command.bool_field("watch")
        if watch and not context.scope.sees_all:
            raise Forbidden("Only supervisors can watch.")
        with transaction.atomic():
            conversation = access_conversation_for_staff(context.scope, command.int_field("conversation_id"), lock=True)
            if watch:
                context.watching.add(conversation.pk)
            else:
                context.watching.discard(conversation.pk)
                conversations.do_mark_opened(conversation=conversation, user=context.user)
        if watch:
            from messenger.actions.base import audit

            audit(actor, "conversation.watched", target=conversation, conversation=conversation)
        return [conversation_snapshot(conversation, ref=command.ref, watch=watch)]
    if kind == "conversation.close_view":
        conversation_id = command.int_field("conversation_id")
        context.watching.discard(conversation_id)
        return [events.ack_frame(command.ref)] if command.ref is not None else []
    if kind == "message.send":
        result = check_operator_send(context, command)
        return _operator_sent(context, command, result.conversation, result)
    if kind in ("message.delivered", "conversation.read"):
        conversation = access_conversation_for_staff(context.scope, command.int_field("conversation_id"))
        if conversation.pk in context.watching:
            # Invisible: a watching supervisor leaves no receipt.
            return [events.ack_frame(command.ref)] if command.ref is not None else []
        up_to = command.fields.get("up_to_message_id")
        if kind == "message.delivered":
            messages.mark_delivered(conversation=conversation, reader="agent", up_to_message_id=up_to)
        else:
            messages.mark_read(conversation=conversation, reader="agent", up_to_message_id=up_to, user=context.user)
        return [events.ack_frame(command.ref)] if command.ref is not None else []
    if kind == "status.set":
        profile = presence.do_set_status(user=context.user, status=command.str_field("status"), actor=actor)
        return [events.status_ack(command.ref, profile.status)]
    if kind == "visitor.invite":
        visitor_id = command.fields.get("visitor_id")
        invitation_id = visitors.check_invite(
            scope=context.scope, user=context.user, visitor_id=visitor_id, body=command.fields.get("body")
        )
        return [events.invite_ack(command.ref, invitation_id=invitation_id, visitor_id=visitor_id)]
    return [events.conversation_ack(command.ref, check_conversation_change(context, command))]


def check_operator_send(context: OperatorContext, command: Command) -> messages.SendResult:
    """``message.send`` from staff (the socket and the REST API): a reply, or a note when
    ``private``; a resend of a stored ``client_id`` answers that message (``created`` False)."""
    conversation_id = command.fields.get("conversation_id")
    cached = context.writable.get(conversation_id) if isinstance(conversation_id, int) else None
    conversation = (
        cached if cached is not None and cached.pk not in context.watching else _writable(context, conversation_id)
    )

    def send(target: Conversation) -> messages.SendResult:
        return messages.send_operator_message(conversation=target, **_operator_send_fields(context, command))

    try:
        return send(conversation)
    except messages.StaleConversation:
        context.writable.pop(conversation.pk, None)
        return send(_writable(context, conversation.pk))


def check_conversation_change(context: OperatorContext, command: Command) -> Conversation:
    """``conversation.assign`` / ``transfer`` / ``status`` / ``priority`` / ``labels`` from staff
    (the socket and the REST API), under the conversation's row lock: the conversation after it."""
    kind = command.type
    actor = context.actor
    with transaction.atomic():
        conversation = _writable(context, command.fields.get("conversation_id"), lock=True)
        if kind == "conversation.assign":
            assignee_id = command.fields.get("assignee_id")
            if assignee_id == "me":
                assignee_id = context.user.pk
            assignment.do_manual_assign(conversation=conversation, assignee_id=assignee_id, actor=actor)
        elif kind == "conversation.transfer":
            assignment.do_transfer(
                conversation=conversation,
                actor=actor,
                branch_id=command.fields.get("branch_id"),
                assignee_id=command.fields.get("assignee_id"),
            )
        elif kind == "conversation.status":
            raw_until = command.str_field("snoozed_until", required=False, max_length=64)
            try:
                until = parse_datetime(raw_until) if raw_until is not None else None
                if until is not None:
                    # Without an offset: the server's time zone. In UTC it must stay within year
                    # 9999, which is all a database column holds.
                    until = timezone.make_aware(until) if timezone.is_naive(until) else until
                    until.astimezone(UTC)
            except (ValueError, OverflowError):  # well-formed but impossible, such as month 13
                until = None
            if raw_until is not None and until is None:
                raise InvalidInput("snoozed_until: an ISO 8601 date-time")
            conversations.do_change_status(
                conversation=conversation, status=command.str_field("status"), actor=actor, snoozed_until=until
            )
        elif kind == "conversation.priority":
            conversations.do_change_priority(
                conversation=conversation, priority=command.fields.get("priority"), actor=actor
            )
        elif kind == "conversation.labels":
            conversations.do_set_labels(conversation=conversation, labels=command.fields.get("labels"), actor=actor)
        else:
            raise FrameError(f"Unknown frame type {kind!r}.", code="unknown_type")
    return conversation


def check_update_contact(context: OperatorContext, contact_id: Any, fields: dict[str, Any]) -> Contact:
    """Staff edit a contact they may see (the REST API), under the contact's row lock."""
    from messenger.actions.contacts import do_update_contact

    with transaction.atomic():
        contact = access_contact_for_staff(context.scope, contact_id, lock=True)
        return do_update_contact(contact=contact, fields=fields, actor=context.actor)


def _operator_send_fields(context: OperatorContext, command: Command) -> dict[str, Any]:
    return {
        "user": context.user,
        "client_id": command.fields.get("client_id"),
        "body": command.fields.get("body"),
        "private": command.bool_field("private"),
        "attachment_ids": command.fields.get("attachment_ids"),
    }


def _operator_sent(
    context: OperatorContext, command: Command, conversation: Conversation, result: messages.SendResult
) -> list[dict[str, Any]]:
    if len(context.writable) > 500:
        context.writable.clear()
    context.writable[conversation.pk] = conversation
    payload = events.message_payload(
        result.message, public=False, attachments=getattr(result.message, "_prefetched_attachments", None)
    )
    return [events.message_ack(command.ref, payload, created=result.created)]


async def acheck_operator_command(context: OperatorContext, command: Command) -> list[dict[str, Any]] | None:
    """A reply to a conversation this socket has written to (its access was checked then, and the
    send re-checks it under the row lock), on the event loop (PostgreSQL); None when the command
    must run in a thread (``check_operator_command``)."""
    if command.type != "message.send":
        return None
    conversation_id = command.fields.get("conversation_id")
    conversation = context.writable.get(conversation_id) if isinstance(conversation_id, int) else None
    if conversation is None or conversation.pk in context.watching:
        return None
    result = await messages.asend_operator_message(conversation=conversation, **_operator_send_fields(context, command))
    if result is None:
        context.writable.pop(conversation.pk, None)  # the thread's path reads it afresh
        return None
    return _operator_sent(context, command, conversation, result)


def operator_typing_target(context: OperatorContext, conversation_id: Any) -> tuple[int, int | None, int | None]:
    """(conversation id, branch id, contact-inbox id); watchers never type."""
    conversation = _writable(context, conversation_id)
    return conversation.pk, conversation.branch_id, conversation.contact_inbox_id
