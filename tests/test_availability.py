"""What the widget calls "operators available" is who automatic assignment may pick: supervisors and
admins online do not count (messenger/selectors.py, ``assignable_profiles``)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from messenger.models import AgentRole, Conversation
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def test_only_assignable_operators_make_the_widget_say_online():
    def world():
        branch = make_branch()
        return {
            "inbox": make_inbox(branch),
            "supervisor": make_user(role=AgentRole.SUPERVISOR, branch=branch),
            "admin": make_user(role=AgentRole.ADMIN, branch=branch),
            "operator": make_user(branch=branch, status="offline"),
        }

    world = await database_sync_to_async(world)()
    staff = [await operator_socket(world["supervisor"]), await operator_socket(world["admin"])]
    for socket in staff:
        assert (await socket.connect())[0]
        await socket.expect("hello")

    boot = await database_sync_to_async(bootstrap)(world["inbox"])
    assert boot["operators_available"] is False
    visitor = visitor_socket(world["inbox"], boot)
    assert (await visitor.connect())[0]
    assert (await visitor.expect("hello"))["operators_available"] is False
    # What the widget said is what happens: nobody can be assigned the chat.
    ack = await visitor.command("message.send", client_id=new_client_id(), body="anyone there?")
    conversation_id = ack["data"]["conversation_id"]
    assert (await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)).assignee_id is None

    operator = await operator_socket(world["operator"])
    assert (await operator.connect())[0]
    await operator.expect("hello")
    await operator.command("status.set", status="online")
    presence = await visitor.expect("presence")
    while presence["data"].get("operators_available") is not True:
        presence = await visitor.expect("presence")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.assignee_id == world["operator"].pk
    assert (await database_sync_to_async(bootstrap)(world["inbox"]))["operators_available"] is True
    for socket in (visitor, operator, *staff):
        await socket.close()
