"""What the dashboard shows comes from the server right: the list's preview keeps the visitor's
question under an automatic reply, typing frames carry the name the pre-chat form gave, a rating
carries the scale it was given on and the contact's form fields the labels of the inbox's form."""

import pytest
from channels.db import database_sync_to_async as db
from django.test import Client

from messenger import events
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_status, do_rate
from messenger.actions.intake import send_visitor_message
from messenger.actions.messages import send_automatic_message, send_operator_message
from messenger.models import AgentRole, Conversation, ConversationStatus, SenderType
from tests.conftest import bootstrap, new_client_id, operator_socket, visitor_socket
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import start, visitor


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


def dashboard_views(conversation: Conversation, client: Client) -> list[dict]:
    """The conversation as the dashboard gets it: its list row, its detail, the socket's staff
    summary and the visitor's."""
    rows = client.get("/api/operator/conversations/", {"tab": "all", "status": "any"}).json()["results"]
    detail = client.get(f"/api/operator/conversations/{conversation.pk}/").json()["conversation"]
    fresh = Conversation.objects.select_related("inbox", "contact", "branch", "region", "assignee").get(
        pk=conversation.pk
    )
    return [
        *(row for row in rows if row["id"] == conversation.pk),
        detail,
        events.conversation_staff(fresh),
        events.conversation_public(fresh),
    ]


@pytest.mark.django_db
def test_a_rating_carries_the_scale_it_was_given_on():
    inbox = make_inbox(make_branch())
    client = Client()
    client.force_login(make_user(role=AgentRole.SUPERVISOR))
    conversation = start(inbox, name="Anna")
    actor = Actor(contact=conversation.contact)
    do_change_status(conversation=conversation, status=ConversationStatus.RESOLVED, actor=Actor.system("test"))
    do_rate(conversation=conversation, score=4, comment="Quick and kind", actor=actor)
    views = dashboard_views(conversation, client)
    assert len(views) == 4
    assert [(view["rating"]["score"], view["rating"]["scale"]) for view in views] == [(4, "stars")] * 4

    # The inbox moves to NPS: the 4 given on stars stays 4 of 5 stars.
    inbox.settings = {**inbox.settings, "rating": {"enabled": True, "scale": "nps"}}
    inbox.save(update_fields=["settings"])
    assert [view["rating"]["scale"] for view in dashboard_views(conversation, client)] == ["stars"] * 4

    # Rated again after the next resolution, on the scale of the day.
    conversation = Conversation.objects.select_related("inbox").get(pk=conversation.pk)
    do_change_status(conversation=conversation, status=ConversationStatus.OPEN, actor=Actor.system("test"))
    do_change_status(conversation=conversation, status=ConversationStatus.RESOLVED, actor=Actor.system("test"))
    assert [view["rating"] for view in dashboard_views(conversation, client)] == [None] * 4
    do_rate(conversation=conversation, score=9, comment="", actor=actor)
    assert [(view["rating"]["score"], view["rating"]["scale"]) for view in dashboard_views(conversation, client)] == [
        (9, "nps")
    ] * 4


@pytest.mark.django_db
def test_the_contact_panel_names_the_form_fields_by_the_inbox_labels():
    inbox = make_inbox(
        make_branch(),
        settings={
            "pre_chat": {
                "fields": [
                    {"name": "name", "label": "Your name", "type": "text"},
                    {"name": "order_number", "label": "Order no.", "type": "text"},
                    {"name": "city", "type": "text"},
                    {"name": "company", "label": "Company", "type": "text"},
                ]
            }
        },
    )
    client = Client()
    client.force_login(make_user(role=AgentRole.SUPERVISOR))
    stored = {"city": "Riga", "company": "Acme", "order_number": "A-42", "plan": "gold"}
    conversation = start(inbox, name="Anna", custom_attributes=stored)
    contact = client.get(f"/api/operator/conversations/{conversation.pk}/").json()["conversation"]["contact"]
    assert contact["custom"] == stored
    # The stored fields the form labels, in the form's order: "city" has no label, "plan" is no
    # longer in the form.
    assert list(contact["custom_labels"].items()) == [("order_number", "Order no."), ("company", "Company")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_the_scale_the_audit_recorded_with_each_rating():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    inbox = make_inbox(make_branch())
    chats = [start(inbox, name=f"Visitor {index}") for index in range(4)]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("messenger")
    executor.migrate([("messenger", "0015_proactive_triggers")])
    then = executor.loader.project_state(("messenger", "0015_proactive_triggers")).apps
    old_conversation, old_event = (then.get_model("messenger", name) for name in ("Conversation", "ActivityEvent"))
    try:
        # Rated on NPS, then (after the next resolution) on stars; rated on NPS; rated with an
        # audit row of no scale; rated once, since resolved again and not rated.
        audits = [["nps", "stars"], ["nps"], [None], ["stars"]]
        for chat, scales in zip(chats, audits, strict=True):
            for scale in scales:
                payload = {"score": 3} if scale is None else {"score": 3, "scale": scale}
                old_event.objects.create(verb="conversation.rated", conversation_id=chat.pk, payload=payload)
        old_conversation.objects.filter(pk__in=[chat.pk for chat in chats[:3]]).update(rating_score=3)
    finally:
        MigrationExecutor(connection).migrate(latest)

    scales = dict(Conversation.objects.values_list("pk", "rating_scale"))
    assert [scales[chat.pk] for chat in chats] == ["stars", "nps", "", ""]
    # The one without: the inbox's current scale.
    third = Conversation.objects.select_related("inbox").get(pk=chats[2].pk)
    assert events.conversation_public(third)["rating"] == {
        "score": 3,
        "scale": "stars",
        "comment": "",
        "rated_at": None,
    }
