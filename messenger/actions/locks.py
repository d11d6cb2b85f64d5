"""Row locks shared by several actions, and the order they are taken in.

Lock order, everywhere: the contact (held while a conversation is started), then the conversation
row, then an operator's ``AgentProfile`` row (``assignment``). A change to one conversation locks
its row first (``lock_conversation`` here, or ``access_*(lock=True)`` in ``messenger.access`` for a
row fetched with a permission check) and writes under that lock.
"""

from __future__ import annotations

from messenger.access import CONVERSATION_RELATED
from messenger.models import Conversation


def lock_conversation(conversation_id: int) -> Conversation:
    """Re-read and lock a conversation row (inside a transaction)."""
    return (
        Conversation.objects.select_related(*CONVERSATION_RELATED)
        .select_for_update(of=("self",))
        .get(pk=conversation_id)
    )
