"""Automatic replies: the inbox's auto-reply on the first visitor message, and the
out-of-hours reply. Neither counts as a first reply nor clears ``waiting_since``.

Both fire once: on the message that started the conversation, and only while no human has
replied. Hours are the conversation's (its inbox's, or its branch's with ``use_branch_hours``).
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from messenger.actions.messages import send_automatic_message
from messenger.models import Conversation, Message
from messenger.routing.hours import conversation_is_open


def after_visitor_message(*, conversation: Conversation, message: Message, started: bool) -> Message | None:
    """Called after the visitor's message committed; ``started``: it opened the conversation."""
    if not started or conversation.first_reply_created_at is not None:
        return None
    settings = conversation.inbox.effective_settings
    if settings["working_hours"]["enabled"] and not conversation_is_open(conversation):
        text = (
            settings["automation"]["out_of_hours_reply"]
            or settings["offline"]["message"]
            or _("We are closed now and will answer during working hours.")
        )
        return send_automatic_message(conversation=conversation, body=text, kind="out_of_hours")
    auto_reply = settings["automation"]["auto_reply"]
    if auto_reply["enabled"] and auto_reply["message"]:
        return send_automatic_message(conversation=conversation, body=auto_reply["message"], kind="auto_reply")
    return None
