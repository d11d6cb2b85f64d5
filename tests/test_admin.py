"""Django admin: every model's pages open, the inbox form writes settings, logs stay read-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from messenger import models as m
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db

# Logs and rows only actions write: visible, never added by hand.
VIEW_ONLY = {
    m.AgentConnection,
    m.PresencePeriod,
    m.OutgoingEmail,
    m.ContactInbox,
    m.ConversationEvent,
    m.Message,
    m.Attachment,
    m.ActivityEvent,
    m.WebhookDelivery,
}
# Rows only an action may create, yet whose attributes an admin may edit.
ADDED_BY_ACTIONS_ONLY = {m.Conversation}
MESSENGER_MODELS = [
    m.Branch,
    m.Region,
    m.RoutingRule,
    m.AgentProfile,
    m.AgentConnection,
    m.PresencePeriod,
    m.Inbox,
    m.Contact,
    m.ContactInbox,
    m.Conversation,
    m.ConversationEvent,
    m.Message,
    m.Attachment,
    m.ActivityEvent,
    m.Webhook,
    m.WebhookDelivery,
    m.CannedResponse,
    m.Label,
    m.ApiToken,
    m.OutgoingEmail,
    m.ProactiveTrigger,
]


@pytest.fixture
def superuser_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def one_of_each() -> dict[type[Model], Model]:
    now = timezone.now()
    branch = make_branch("Moscow", timezone="Europe/Moscow")
    region = m.Region.objects.create(name="Central", geoip_codes=["RU"])
    rule = m.RoutingRule.objects.create(region=region, branch=branch)
    operator = make_user("op", branch=branch)
    connection = m.AgentConnection.objects.create(user=operator, channel_name="specific.x!y", last_heartbeat=now)
    period = m.PresencePeriod.objects.create(user=operator, status="online", started_at=now)
    inbox = make_inbox(branch)
    contact = m.Contact.objects.create(name="Visitor", email="v@example.com")
    contact_inbox = m.ContactInbox.objects.create(contact=contact, inbox=inbox)
    conversation = m.Conversation.objects.create(
        inbox=inbox, contact=contact, contact_inbox=contact_inbox, assignee=operator, routing_log=[{"step": "route"}]
    )
    label = m.Label.objects.create(name="vip")
    conversation.labels.add(label)
    event = m.ConversationEvent.objects.create(conversation=conversation, seq=1, type="message.created", created_at=now)
    message = m.Message.objects.create(
        conversation=conversation,
        direction="in",
        sender_type="contact",
        sender_contact=contact,
        body="hi",
        created_at=now,
    )
    attachment = m.Attachment.objects.create(
        conversation=conversation, message=message, file="attachments/x.txt", original_name="x.txt",
        content_type="text/plain", size=3,
    )  # fmt: skip
    activity = m.ActivityEvent.objects.create(actor_user=operator, verb="conversation.created", payload={"a": 1})
    webhook = m.Webhook.objects.create(inbox=inbox, url="https://hooks.example.com/x")
    delivery = m.WebhookDelivery.objects.create(webhook=webhook, event="message.created")
    canned = m.CannedResponse.objects.create(short_code="hello", text="Hello!")
    token = m.ApiToken.objects.create(user=operator, name="CRM", prefix="0123456789", token_hash="0" * 64)
    email = m.OutgoingEmail.objects.create(
        kind="transcript",
        to=["v@example.com"],
        subject="s",
        text="t",
        dedupe_key="admin-test",
        conversation=conversation,
    )
    trigger = m.ProactiveTrigger.objects.create(inbox=inbox, name="Pricing", message="Can we help?")
    return {
        m.ProactiveTrigger: trigger,
        m.Branch: branch,
        m.Region: region,
        m.RoutingRule: rule,
        m.AgentProfile: operator.agent,
        m.AgentConnection: connection,
        m.PresencePeriod: period,
        m.Inbox: inbox,
        m.Contact: contact,
        m.ContactInbox: contact_inbox,
        m.Conversation: conversation,
        m.ConversationEvent: event,
        m.Message: message,
        m.Attachment: attachment,
        m.ActivityEvent: activity,
        m.OutgoingEmail: email,
        m.Webhook: webhook,
        m.WebhookDelivery: delivery,
        m.CannedResponse: canned,
        m.Label: label,
        m.ApiToken: token,
        get_user_model(): operator,
    }


def admin_url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_messenger_model_is_registered():
    registered = {model for model in admin.site._registry if model._meta.app_label == "messenger"}
    assert registered == set(MESSENGER_MODELS)
    assert set(MESSENGER_MODELS) == {
        model for model in m.__dict__.values() if isinstance(model, type) and issubclass(model, Model)
    }


@pytest.mark.parametrize("model", [*MESSENGER_MODELS, "user"], ids=lambda x: x if isinstance(x, str) else x.__name__)
def test_changelist_add_and_change_pages_open(superuser_client, one_of_each, model):
    model = get_user_model() if model == "user" else model
    obj = one_of_each[model]
    assert superuser_client.get(admin_url(model, "changelist")).status_code == 200
    assert superuser_client.get(admin_url(model, "changelist"), {"q": "x"}).status_code == 200
    refused = model in VIEW_ONLY or model in ADDED_BY_ACTIONS_ONLY
    assert superuser_client.get(admin_url(model, "add")).status_code == (403 if refused else 200)
    response = superuser_client.get(admin_url(model, "change", obj.pk))
    assert response.status_code == 200
    # View-only pages offer no save button.
    assert (b'name="_save"' in response.content) is (model not in VIEW_ONLY)


def test_changelists_do_not_query_per_row(superuser_client, one_of_each):
    """list_select_related: five more rows (with new related rows each) cost no extra query."""
    conversation = one_of_each[m.Conversation]
    operator = one_of_each[get_user_model()]
    now = timezone.now()

    def measure(model: type[Model]) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(admin_url(model, "changelist")).status_code == 200
        return len(captured.captured_queries)

    before = {model: measure(model) for model in MESSENGER_MODELS}
    for index in range(5):
        branch = make_branch(f"B{index}")
        region = m.Region.objects.create(name=f"R{index}")
        m.RoutingRule.objects.create(region=region, branch=branch)
        user = make_user(f"u{index}", branch=branch)
        m.AgentConnection.objects.create(user=user, channel_name=f"c{index}", last_heartbeat=now)
        m.PresencePeriod.objects.create(user=user, status="away", started_at=now)
        inbox = make_inbox(branch)
        contact = m.Contact.objects.create(name=f"V{index}", region=region)
        contact_inbox = m.ContactInbox.objects.create(contact=contact, inbox=inbox)
        other = m.Conversation.objects.create(inbox=inbox, contact=contact, contact_inbox=contact_inbox, assignee=user)
        message = m.Message.objects.create(
            conversation=other, direction="in", sender_type="contact", sender_contact=contact, body="x", created_at=now
        )
        m.Attachment.objects.create(
            conversation=other, message=message, file="a.txt", original_name="a.txt", content_type="text/plain", size=1
        )
        m.ActivityEvent.objects.create(actor_user=user, verb="message.created", conversation=other)
        m.ConversationEvent.objects.create(conversation=other, seq=1, type="message.created", created_at=now)
        webhook = m.Webhook.objects.create(inbox=inbox, url=f"https://h{index}.example.com/")
        m.WebhookDelivery.objects.create(webhook=webhook, event="message.created")
        m.CannedResponse.objects.create(short_code=f"c{index}", text="t", branch=branch)
        m.Label.objects.create(name=f"l{index}")
    del conversation, operator
    after = {model: measure(model) for model in MESSENGER_MODELS}
    grown = {
        model.__name__: (before[model], after[model]) for model in MESSENGER_MODELS if after[model] != before[model]
    }
    assert not grown, grown


def test_conversation_change_page_keeps_inbox_branch_and_state_read_only(superuser_client, one_of_each):
    conversation = one_of_each[m.Conversation]
    response = superuser_client.get(admin_url(m.Conversation, "change", conversation.pk))
    form = response.context["adminform"].form
    for name in ("inbox", "branch", "status", "assignee", "labels", "routing_log"):
        assert name not in form.fields
    assert "custom_attributes" in form.fields
    assert b"route" in response.content  # the routing log is shown
    assert b"hi" in response.content  # the messages inline


def test_conversation_save_writes_only_the_attributes(superuser_client, one_of_each):
    conversation = one_of_each[m.Conversation]
    page = superuser_client.get(admin_url(m.Conversation, "change", conversation.pk))
    # An action resolves the conversation while the admin page is open.
    m.Conversation.objects.filter(pk=conversation.pk).update(status="resolved")
    data = {
        "additional_attributes": "{}",
        "custom_attributes": '{"plan": "gold"}',
        "messages-TOTAL_FORMS": "1",
        "messages-INITIAL_FORMS": "1",
        "messages-MIN_NUM_FORMS": "0",
        "messages-MAX_NUM_FORMS": "1000",
        "messages-0-id": str(one_of_each[m.Message].pk),
        "messages-0-conversation": str(conversation.pk),
    }
    assert page.status_code == 200
    response = superuser_client.post(admin_url(m.Conversation, "change", conversation.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    conversation.refresh_from_db()
    assert conversation.custom_attributes == {"plan": "gold"}
    assert conversation.status == "resolved"


def test_conversations_are_not_added_in_the_admin(superuser_client, one_of_each):
    """Only a visitor starts a conversation (the intake's door: routing, audit row, event); an
    empty one added here would take the visitor's one active place with nobody routed to it."""
    inbox = one_of_each[m.Inbox]
    contact = m.Contact.objects.create(name="New")
    contact_inbox = m.ContactInbox.objects.create(contact=contact, inbox=inbox)
    changelist = superuser_client.get(admin_url(m.Conversation, "changelist"))
    assert admin_url(m.Conversation, "add").encode() not in changelist.content
    before = (m.Conversation.objects.count(), m.ActivityEvent.objects.count(), m.ConversationEvent.objects.count())
    response = superuser_client.post(
        admin_url(m.Conversation, "add"),
        {
            "inbox": inbox.pk,
            "contact": contact.pk,
            "contact_inbox": contact_inbox.pk,
            "status": "open",
            "priority": "0",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 403
    after = (m.Conversation.objects.count(), m.ActivityEvent.objects.count(), m.ConversationEvent.objects.count())
    assert after == before


def test_audit_log_is_read_only(superuser_client, one_of_each):
    activity = one_of_each[m.ActivityEvent]
    model_admin = admin.site._registry[m.ActivityEvent]
    request = superuser_client.get(admin_url(m.ActivityEvent, "changelist")).wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, activity)
    assert not model_admin.has_delete_permission(request, activity)
    assert model_admin.has_view_permission(request, activity)
    assert superuser_client.get(admin_url(m.ActivityEvent, "add")).status_code == 403
    assert superuser_client.post(admin_url(m.ActivityEvent, "delete", activity.pk), {"post": "yes"}).status_code == 403
    response = superuser_client.post(admin_url(m.ActivityEvent, "change", activity.pk), {"verb": "forged"})
    assert response.status_code == 403
    activity.refresh_from_db()
    assert activity.verb == "conversation.created"


def test_audit_log_filters_by_verb_date_and_actor(superuser_client, one_of_each):
    operator = one_of_each[get_user_model()]
    m.ActivityEvent.objects.create(actor_label="scheduler", verb="conversation.escalated")
    url = admin_url(m.ActivityEvent, "changelist")
    by_verb = superuser_client.get(url, {"verb": "conversation.escalated"})
    assert by_verb.context["cl"].result_count == 1
    by_actor = superuser_client.get(url, {"actor_user__id__exact": operator.pk})
    assert by_actor.context["cl"].result_count == 1
    today = timezone.localdate()
    by_date = superuser_client.get(
        url, {"created_at__year": today.year, "created_at__month": today.month, "created_at__day": today.day}
    )
    assert by_date.context["cl"].result_count == 2


def test_agent_profile_inline_on_user_admin_and_status_read_only(superuser_client, one_of_each):
    operator = one_of_each[get_user_model()]
    page = superuser_client.get(admin_url(get_user_model(), "change", operator.pk))
    assert b'name="agent-0-role"' in page.content
    inline_form = next(f for f in page.context["inline_admin_formsets"] if f.formset.model is m.AgentProfile)
    assert "status" not in inline_form.formset.forms[0].fields
    profile_form = superuser_client.get(admin_url(m.AgentProfile, "change", operator.agent.pk)).context["adminform"]
    assert "status" not in profile_form.form.fields and "role" in profile_form.form.fields


def test_agent_profile_save_does_not_overwrite_a_concurrent_status(superuser_client, one_of_each):
    profile = one_of_each[m.AgentProfile]
    superuser_client.get(admin_url(m.AgentProfile, "change", profile.pk))
    m.AgentProfile.objects.filter(pk=profile.pk).update(status="away")
    response = superuser_client.post(
        admin_url(m.AgentProfile, "change", profile.pk),
        {
            "user": profile.user_id,
            "role": "supervisor",
            "branch": profile.branch_id,
            "max_concurrent": 7,
            "language": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    profile.refresh_from_db()
    assert (profile.role, profile.max_concurrent, profile.status) == ("supervisor", 7, "away")


def test_contact_inbox_pages_never_show_the_pubsub_token(superuser_client, one_of_each):
    contact_inbox = one_of_each[m.ContactInbox]
    token = contact_inbox.pubsub_token.encode()
    for url in (
        admin_url(m.ContactInbox, "change", contact_inbox.pk),
        admin_url(m.ContactInbox, "changelist"),
        admin_url(m.Contact, "change", contact_inbox.contact_id),
    ):
        assert token not in superuser_client.get(url).content


def test_admin_speaks_russian(superuser_client, one_of_each):
    """The compiled catalogue is committed: model names and inbox form labels are translated."""
    inbox = one_of_each[m.Inbox]
    superuser_client.cookies["django_language"] = "ru"
    page = superuser_client.get(admin_url(m.Inbox, "change", inbox.pk)).content.decode()
    assert "Разрешённые домены" in page and "Понедельник" in page and "Код для вставки" in page
    index = superuser_client.get(reverse("admin:index")).content.decode()
    assert "Журнал аудита" in index or "журнал аудита" in index.lower()


def test_new_user_with_agent_profile_from_the_user_admin(superuser_client):
    branch = make_branch()
    response = superuser_client.post(
        admin_url(get_user_model(), "add"),
        {
            "username": "newop",
            "usable_password": "true",
            "password1": "a-long-password-42",
            "password2": "a-long-password-42",
            "agent-TOTAL_FORMS": "1",
            "agent-INITIAL_FORMS": "0",
            "agent-MIN_NUM_FORMS": "0",
            "agent-MAX_NUM_FORMS": "1",
            "agent-0-role": "operator",
            "agent-0-branch": branch.pk,
            "agent-0-max_concurrent": "3",
            "agent-0-language": "",
        },
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    profile = m.AgentProfile.objects.get(user__username="newop")
    assert (profile.branch, profile.max_concurrent, profile.status) == (branch, 3, "offline")


def test_user_admin_inline_edit_keeps_a_concurrent_status(superuser_client, one_of_each):
    operator = one_of_each[get_user_model()]
    profile = operator.agent
    page = superuser_client.get(admin_url(get_user_model(), "change", operator.pk))
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if key in ("username", "first_name", "last_name", "email")
    }
    m.AgentProfile.objects.filter(pk=profile.pk).update(status="busy")
    data.update(
        {
            "date_joined_0": "2025-01-01",
            "date_joined_1": "10:00:00",
            "is_active": "on",
            "agent-TOTAL_FORMS": "1",
            "agent-INITIAL_FORMS": "1",
            "agent-MIN_NUM_FORMS": "0",
            "agent-MAX_NUM_FORMS": "1",
            "agent-0-id": profile.pk,
            "agent-0-user": operator.pk,
            "agent-0-role": "supervisor",
            "agent-0-branch": profile.branch_id,
            "agent-0-max_concurrent": "9",
            "agent-0-language": "ru",
        }
    )
    response = superuser_client.post(admin_url(get_user_model(), "change", operator.pk), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    profile.refresh_from_db()
    assert (profile.role, profile.max_concurrent, profile.language, profile.status) == ("supervisor", 9, "ru", "busy")
