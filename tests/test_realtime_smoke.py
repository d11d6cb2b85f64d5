import pytest
from channels.db import database_sync_to_async

from messenger.models import Conversation, Message
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def test_visitor_and_operator_exchange_messages():
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    operator = await database_sync_to_async(make_user)(branch=branch)
    boot = await database_sync_to_async(bootstrap)(inbox)

    op = await operator_socket(operator)
    connected, _ = await op.connect()
    assert connected
    hello = await op.expect("hello")
    assert hello["role"] == "operator"

    visitor = visitor_socket(inbox, boot)
    connected, _ = await visitor.connect()
    assert connected
    hello = await visitor.expect("hello")
    assert hello["conversation_id"] is None
    assert hello["operators_available"] is True

    client_id = new_client_id()
    ack = await visitor.command("message.send", client_id=client_id, body="Hello **there**")
    assert ack["type"] == "ack", ack
    conversation_id = ack["data"]["conversation_id"]
    created = await op.expect("message.created", conversation_id=conversation_id)
    assert created["data"]["message"]["content"] == "Hello <strong>there</strong>"

    snapshot = await op.command("conversation.open", conversation_id=conversation_id)
    assert snapshot["type"] == "conversation.snapshot"
    reply = await op.command("message.send", conversation_id=conversation_id, client_id=new_client_id(), body="Hi!")
    assert reply["type"] == "ack", reply
    got = await visitor.expect("message.created")
    if got["data"]["message"]["direction"] == "in":  # the visitor's own message echoes to its other tabs
        got = await visitor.expect("message.created")
    assert got["data"]["message"]["body"] == "Hi!"

    again = await visitor.command("message.send", client_id=client_id, body="Hello **there**")
    assert again["data"]["created"] is False
    assert (
        await database_sync_to_async(Message.objects.filter(conversation_id=conversation_id, direction="in").count)()
        == 1
    )
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.assignee_id == operator.pk
    await visitor.close()
    await op.close()
