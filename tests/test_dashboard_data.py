"""What the dashboard shows comes from the server right: the list's preview keeps the visitor's
question under an automatic reply, and typing frames carry the name the pre-chat form gave."""

import pytest
from channels.db import database_sync_to_async as db

from messenger.actions.base import Actor
from messenger.actions.intake import send_visitor_message
from messenger.actions.messages import send_automatic_message, send_operator_message
from messenger.models import Conversation, SenderType
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import visitor


@pytest.mark.django_db
def test_an_automatic_reply_leaves_the_visitors_question_as_the_preview():
    branch = make_branch()
    inbox = make_inbox(
        branch, settings={"automation": {"auto_reply": {"enabled": True, "message": "Thanks! One minute."}}}
    )
    operator = make_user(branch=branch)
    contact_inbox = visitor(inbox, name="Anna")
    result = send_visitor_message(
        contact_inbox=contact_inbox,
        client_id=new_client_id(),
        body="Where is my order 42?",
        actor=Actor(contact=contact_inbox.contact),
    )
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert conversation.messages.filter(sender_type=SenderType.BOT).exists(), "the auto-reply was sent"
    assert conversation.last_message_preview == "Where is my order 42?"

    # A system notice neither; an operator's reply does replace it.
    send_automatic_message(conversation=conversation, body="Transferred to South", sender_type=SenderType.SYSTEM)
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "Where is my order 42?"
    send_operator_message(
        conversation=conversation, user=operator, client_id=new_client_id(), body="It ships today", private=False
    )
    conversation.refresh_from_db()
    assert conversation.last_message_preview == "It ships today"


@pytest.mark.django_db(transaction=True)
async def test_typing_carries_the_name_the_pre_chat_form_gave():
    def world():
        branch = make_branch()
        inbox = make_inbox(branch)
        return inbox, make_user(branch=branch)

    inbox, operator = await db(world)()
    staff = await operator_socket(operator)
    assert (await staff.connect())[0]
    await staff.expect("hello")
    boot = await db(bootstrap)(inbox)
    visitor = visitor_socket(inbox, boot)
    assert (await visitor.connect())[0]
    await visitor.expect("hello")
    await visitor.command("contact.update", name="Anna Petrova", email="anna@example.com")
    ack = await visitor.command("message.send", client_id=new_client_id(), body="hi")
    conversation_id = ack["data"]["conversation_id"]
    await visitor.send({"type": "typing.start", "conversation_id": conversation_id})
    started = await staff.expect("typing.started", conversation_id=conversation_id)
    assert started["data"]["name"] == "Anna Petrova"
    # Renamed again while the socket stays open: the next frame says so too.
    await visitor.command("contact.update", name="Anna P.")
    await visitor.send({"type": "typing.start", "conversation_id": conversation_id})
    started = await staff.expect("typing.started", conversation_id=conversation_id)
    assert started["data"]["name"] == "Anna P."
    await visitor.close()
    await staff.close()
