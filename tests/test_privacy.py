"""GDPR export / anonymisation (commands, actions, admin actions) and the audit log of SPEC §9."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings

from messenger.actions.assignment import do_manual_assign, do_transfer
from messenger.actions.base import Actor
from messenger.actions.conversations import do_change_priority, do_change_status
from messenger.actions.intake import send_visitor_message
from messenger.actions.messages import send_operator_message
from messenger.actions.privacy import REMOVED, do_anonymise_contact
from messenger.models import ActivityEvent, Attachment, Contact, ContactInbox, Conversation, ConversationEvent, Message
from messenger.tokens import read_session_token
from tests.conftest import bootstrap, new_client_id, visitor_rows
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(tmp_path):
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        yield tmp_path


@pytest.fixture
def chat(media):
    branch = make_branch()
    inbox = make_inbox(branch)
    operator = make_user(branch=branch)
    boot = bootstrap(inbox)
    contact_inbox = visitor_rows(boot)
    contact = contact_inbox.contact
    Contact.objects.filter(pk=contact.pk).update(
        name="Anna Secret", email="anna@example.com", phone="+7 900", external_id="crm-1", custom_attributes={"vip": 1}
    )
    contact.refresh_from_db()
    first = send_visitor_message(
        contact_inbox=contact_inbox, client_id=new_client_id(), body="my card is 4111", actor=Actor(contact=contact)
    )
    conversation = first.conversation
    upload = Attachment.objects.create(
        conversation=conversation,
        file=ContentFile(b"passport scan", name="passport.png"),
        original_name="passport.png",
        content_type="image/png",
        size=13,
        uploaded_by_contact=contact,
    )
    with_file = send_visitor_message(
        contact_inbox=contact_inbox,
        client_id=new_client_id(),
        body="",
        attachment_ids=[upload.pk],
        actor=Actor(contact=contact),
    )
    conversation = Conversation.objects.get(pk=conversation.pk)
    reply = send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="Thanks")
    send_operator_message(conversation=conversation, user=operator, client_id=new_client_id(), body="odd", private=True)
    Conversation.objects.filter(pk=conversation.pk).update(rating_score=5, rating_comment="Anna says great")
    return {
        "inbox": inbox,
        "operator": operator,
        "boot": boot,
        "contact": contact,
        "conversation": conversation,
        "messages": [first.message, with_file.message],
        "reply": reply.message,
        "upload": upload,
        "path": upload.file.path,
    }


def _export(contact_id: int) -> dict:
    out = StringIO()
    call_command("export_contact", str(contact_id), stdout=out)
    return json.loads(out.getvalue())


def test_export_contact_command(chat):
    data = _export(chat["contact"].pk)
    assert set(data) == {"contact", "contact_inboxes", "conversations"}
    assert data["contact"]["email"] == "anna@example.com" and data["contact"]["custom_attributes"] == {"vip": 1}
    assert [ci["inbox_id"] for ci in data["contact_inboxes"]] == [chat["inbox"].pk]
    assert "pubsub_token" not in json.dumps(data) and chat["boot"]["pubsub_token"] not in json.dumps(data)
    (conversation,) = data["conversations"]
    bodies = [m["body"] for m in conversation["messages"]]
    assert bodies == ["my card is 4111", "", "Thanks"]  # the internal note is staff-only
    assert conversation["attachments"][0]["name"] == "passport.png"
    assert conversation["rating"]["score"] == 5
    audit = ActivityEvent.objects.get(verb="contact.exported")
    assert audit.target_id == str(chat["contact"].pk) and audit.actor_label == "manage.py"


def test_export_unknown_contact_is_a_command_error():
    with pytest.raises(CommandError):
        call_command("export_contact", "999999", stdout=StringIO())


def test_anonymise_contact_command(chat, django_capture_on_commit_callbacks):
    conversation = chat["conversation"]
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("anonymise_contact", str(chat["contact"].pk), stdout=out)
    contact = Contact.objects.get(pk=chat["contact"].pk)
    assert (contact.name, contact.email, contact.phone, contact.external_id) == ("", "", "", "")
    assert contact.additional_attributes == {} and contact.custom_attributes == {}
    assert contact.anonymized_at is not None
    # Conversations and the operator's messages stay; the contact's text is gone everywhere.
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    for message in Message.objects.filter(pk__in=[m.pk for m in chat["messages"]]):
        assert message.body == REMOVED and REMOVED in message.content
    assert Message.objects.get(pk=chat["reply"].pk).body == "Thanks"
    stored = json.dumps(list(ConversationEvent.objects.values("payload", "public_payload")))
    assert "4111" not in stored and "Anna" not in stored and "anna@example.com" not in stored
    conversation.refresh_from_db()
    assert "ip" not in conversation.additional_attributes and "page" not in conversation.additional_attributes
    assert conversation.rating_score == 5 and conversation.rating_comment == ""
    # Attachments: rows and files removed.
    assert not Attachment.objects.filter(pk=chat["upload"].pk).exists()
    import os

    assert not os.path.exists(chat["path"])
    # The old browser session cannot read anything any more.
    session = read_session_token(chat["boot"]["session_token"])
    assert not ContactInbox.objects.filter(pk=session.contact_inbox_id, pubsub_token=session.pubsub_token).exists()
    audit = ActivityEvent.objects.get(verb="contact.anonymised")
    assert audit.payload == {"messages": 2, "attachments": 1, "conversations": 1}
    assert _export(contact.pk)["conversations"][0]["messages"][0]["body"] == REMOVED


def test_anonymise_rolls_back_and_keeps_files_on_failure(chat, monkeypatch, django_capture_on_commit_callbacks):
    from messenger.actions import privacy

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(privacy, "audit", boom)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        do_anonymise_contact(contact_id=chat["contact"].pk, actor=Actor.system())
    import os

    assert os.path.exists(chat["path"])
    assert Contact.objects.get(pk=chat["contact"].pk).email == "anna@example.com"
    assert Message.objects.get(pk=chat["messages"][0].pk).body == "my card is 4111"


def test_admin_actions_export_and_anonymise(chat, admin_user):
    client = Client()
    client.force_login(admin_user)
    url = "/admin/messenger/contact/"
    response = client.post(url, {"action": "export_contacts", "_selected_action": [chat["contact"].pk]})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert json.loads(response.content)[0]["contact"]["email"] == "anna@example.com"
    response = client.post(url, {"action": "anonymise_contacts", "_selected_action": [chat["contact"].pk]})
    assert response.status_code == 302
    assert Contact.objects.get(pk=chat["contact"].pk).anonymized_at is not None
    assert ActivityEvent.objects.filter(verb="contact.anonymised", actor_user=admin_user).count() == 1
    assert ActivityEvent.objects.filter(verb="contact.exported", actor_user=admin_user).count() == 1


# --- audit log (SPEC §9: supervisor views, sends, status / assignment / priority / transfer) -------


def test_staff_changes_are_audited(chat):
    conversation = Conversation.objects.get(pk=chat["conversation"].pk)
    operator = chat["operator"]
    other = make_user(branch=conversation.branch)
    second_branch = make_branch()
    make_user(branch=second_branch)
    actor = Actor(user=operator)
    assert ActivityEvent.objects.filter(
        verb="message.sent", target_id=str(chat["reply"].pk), actor_user=operator
    ).exists()
    assert ActivityEvent.objects.filter(verb="message.note", actor_user=operator).count() == 1
    do_change_priority(conversation=conversation, priority=3, actor=actor)
    do_manual_assign(conversation=conversation, assignee_id=other.pk, actor=actor)
    do_change_status(conversation=conversation, status="pending", actor=actor)
    do_transfer(conversation=conversation, actor=actor, branch_id=second_branch.pk)
    verbs = list(
        ActivityEvent.objects.filter(conversation=conversation, actor_user=operator).values_list("verb", flat=True)
    )
    for verb in ("conversation.priority", "conversation.status", "conversation.transferred"):
        assert verb in verbs, (verb, verbs)
    assert any(verb.startswith("assignment.") for verb in verbs), verbs


def test_audit_log_is_read_only_and_filterable_in_admin(chat, admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/admin/messenger/activityevent/?verb=message.sent")
    assert response.status_code == 200
    event = ActivityEvent.objects.filter(verb="message.sent").first()
    assert client.get(f"/admin/messenger/activityevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/messenger/activityevent/add/").status_code == 403
    assert client.post(f"/admin/messenger/activityevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
