"""Intake: a visitor's way in. Finding or starting their conversation, sending their message,
taking their file. The workflow above the actions: it calls them in order, and their follow-ups.

Invariants:
* One door: every path that may start a visitor's conversation (a message, a file upload) goes
  through ``visitor_conversation``.
* A visitor (contact inbox) has at most one active conversation: the partial unique index
  ``conversation_one_active_per_visitor`` holds it, and a start that loses a race (two tabs at
  once) joins the winner's conversation (``conversations.do_start_conversation``).
* Before the visitor's transport (``limits`` given) starts a conversation, whether a message or a
  file starts it: the pre-chat form is complete and the CAPTCHA threshold is passed; the per-IP
  counter of new conversations counts each one started. A message also counts the send rates
  first and the flood limit once its conversation is known. Trusted server-side callers pass no
  limits and are not gated.
* A ``client_id`` is stored once per visitor (``message_client_id_once_per_contact``): a resend,
  and the loser of two tabs sending it at once, get the stored message (``created=False``).
* Follow-ups run once the message is committed, called from here: ``automation.after_visitor_message``,
  and the offline notice of a conversation it started (``mail.do_notify_offline``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from messenger import formatting
from messenger.access import access_conversation_for_visitor
from messenger.actions import attachments, automation, contacts, conversations, mail, messages, visitors
from messenger.actions.base import Actor
from messenger.errors import Conflict, Forbidden
from messenger.models import Attachment, ContactInbox, Conversation, Message
from messenger.models.conversation import ACTIVE_STATUSES
from messenger.throttle import VisitorLimits


@dataclass(frozen=True)
class VisitorConversation:
    conversation: Conversation
    started: bool


def visitor_conversation(
    *,
    contact_inbox: ContactInbox,
    actor: Actor,
    current: Conversation | None,
    limits: VisitorLimits | None = None,
    page: dict[str, Any] | None = None,
    sending: bool = False,
) -> VisitorConversation:
    """The one door: ``current`` (the visitor's active conversation as the caller just read it, or
    the active one a message names), else a conversation started once the visitor passes the
    gates (see the module's invariants); ``started`` says whether this call started it.

    ``sending``: a message send, whose send rates are counted here, before anything is written.
    """
    if current is not None:
        if sending and limits is not None:
            limits.check_send(contact_inbox_id=contact_inbox.pk, conversation_id=current.pk)
        return VisitorConversation(conversation=current, started=False)
    if limits is not None:
        if sending:
            limits.check_send(contact_inbox_id=contact_inbox.pk)
        contacts.check_pre_chat_complete(contact_inbox=contact_inbox)
        limits.check_new_conversation()
    # An operator invited the visitor: the conversation their answer starts is that operator's.
    invitation = visitors.answered_invitation(contact_inbox)
    invited_by = visitors.invited_operator(invitation) if invitation is not None else None
    conversation, started = conversations.do_start_conversation(
        contact_inbox=contact_inbox,
        actor=actor,
        page=page,
        ip=actor.ip,
        invited_by=invited_by,
        invitation=invitation.body if invitation is not None else None,
    )
    if started and invitation is not None:
        visitors.forget_invitation(contact_inbox.source_id)
    if limits is not None:
        if started:
            limits.count_new_conversation()
        if sending:
            limits.check_flood(conversation_id=conversation.pk)
    return VisitorConversation(conversation=conversation, started=started)


def send_visitor_message(
    *,
    contact_inbox: ContactInbox,
    client_id: Any,
    body: Any,
    attachment_ids: Any = None,
    conversation_id: Any = None,
    actor: Actor,
    page: dict[str, Any] | None = None,
    known_conversation: Conversation | None = None,
    limits: VisitorLimits | None = None,
) -> messages.SendResult:
    """Store a visitor's message; starts a conversation when the visitor has no active one.

    ``known_conversation`` is the socket's cached current conversation: it saves the lookup, and
    the store re-checks its status under the row lock and looks for a resend and a block in the
    same statement. ``limits`` (from the visitor's transport): honeypot, send rates, flood limit,
    pre-chat form and CAPTCHA, all checked before anything is written.
    """
    draft = _draft(client_id, body, attachment_ids)

    if _is_known(contact_inbox, conversation_id, known_conversation):
        try:
            message = _store(contact_inbox, known_conversation, draft, limits=limits, checked_here=True)
        except _AlreadyStored as stored:
            return _resent(stored.message_id)
        except _StaleConversation:
            pass  # resolved under the visitor: the full path below finds or starts the next one
        else:
            return messages.SendResult(message=message, created=True, conversation=known_conversation)

    # The contact is read fresh: a block made after the socket connected stops it too.
    existing_id, blocked, current_id = _resend_check(contact_inbox, draft, with_current=conversation_id is None)
    if existing_id is not None:
        return _resent(existing_id)
    if blocked:
        raise Forbidden("You cannot send messages.", code="blocked")
    if conversation_id is not None:
        current = access_conversation_for_visitor(contact_inbox, conversation_id)
        if current.status not in ACTIVE_STATUSES:
            raise Conflict("This conversation is resolved; start a new one.", code="conversation_resolved")
    else:
        current = _conversation_by_id(current_id)

    door = visitor_conversation(
        contact_inbox=contact_inbox, actor=actor, current=current, limits=limits, page=page, sending=True
    )
    try:
        try:
            message = _store(contact_inbox, door.conversation, draft)
        except _StaleConversation:
            if conversation_id is not None:
                raise Conflict(
                    "This conversation is resolved; start a new one.", code="conversation_resolved"
                ) from None
            # Resolved by an operator since the lookup: the next conversation passes the same
            # gates as any other (the send rates were counted once, above).
            door = visitor_conversation(
                contact_inbox=contact_inbox,
                actor=actor,
                current=_current_conversation(contact_inbox),
                limits=limits,
                page=page,
            )
            message = _store(contact_inbox, door.conversation, draft)
    except _AlreadyStored as stored:
        return _resent(stored.message_id)  # another tab stored this client_id first
    automation.after_visitor_message(conversation=door.conversation, message=message, started=door.started)
    if door.started:
        mail.do_notify_offline(conversation=door.conversation, body=message.body)
    return messages.SendResult(message=message, created=True, conversation=door.conversation)


def upload_visitor_attachment(
    *,
    contact_inbox: ContactInbox,
    upload: Any,
    actor: Actor,
    limits: VisitorLimits | None = None,
    page: dict[str, Any] | None = None,
) -> Attachment:
    """Store a visitor's file in their active conversation, started here (through the door, with
    its gates) when there is none."""
    detected = attachments.check_visitor_upload(contact_inbox=contact_inbox, upload=upload)
    door = visitor_conversation(
        contact_inbox=contact_inbox, actor=actor, current=_current_conversation(contact_inbox), limits=limits, page=page
    )
    return attachments.do_store_visitor_attachment(
        conversation=door.conversation, contact_inbox=contact_inbox, upload=upload, detected=detected, actor=actor
    )


# --- the message store ----------------------------------------------------------------------------
# Everything this workflow uses of ``messages``' send internals, in one place.

_AlreadyStored = messages.AlreadyStored
_StaleConversation = messages.StaleConversation


@dataclass(frozen=True)
class _Draft:
    client_id: str
    body: str
    content: str
    attachment_ids: list[int]


def _draft(client_id: Any, body: Any, attachment_ids: Any) -> _Draft:
    client_id, body, attachment_ids = messages.validate_message_input(client_id, body, attachment_ids)
    content = messages.fitting_content(formatting.render(body), body)
    return _Draft(client_id=client_id, body=body, content=content, attachment_ids=attachment_ids)


def _is_known(contact_inbox: ContactInbox, conversation_id: Any, known: Conversation | None) -> bool:
    return messages._to_known_conversation(contact_inbox, conversation_id, known)


def _store(
    contact_inbox: ContactInbox,
    conversation: Conversation,
    draft: _Draft,
    *,
    limits: VisitorLimits | None = None,
    checked_here: bool = False,
) -> Message:
    """Write the message (``_AlreadyStored``: a resend, or the same ``client_id`` stored by another
    tab meanwhile; ``_StaleConversation``: resolved meanwhile). The resend and block checks ride
    on the store's lock every time; ``checked_here``: the send rates too."""
    checks = messages._visitor_checks(contact_inbox, draft.client_id, limits if checked_here else None)
    fields = messages._visitor_fields(
        contact_inbox, conversation, draft.body, draft.content, draft.client_id, draft.attachment_ids, checks
    )
    return messages._store_message(**fields)


def _resent(message_id: int) -> messages.SendResult:
    message = messages._stored(message_id)
    return messages.SendResult(message=message, created=False, conversation=message.conversation)


def _resend_check(
    contact_inbox: ContactInbox, draft: _Draft, *, with_current: bool
) -> tuple[int | None, bool, int | None]:
    return messages._resend_check(
        draft.client_id,
        contact_inbox_id=contact_inbox.pk,
        contact_id=contact_inbox.contact_id,
        with_current=with_current,
    )


def _conversation_by_id(conversation_id: int | None) -> Conversation | None:
    return messages._conversation_by_id(conversation_id)


def _current_conversation(contact_inbox: ContactInbox) -> Conversation | None:
    return messages.current_conversation(contact_inbox)
