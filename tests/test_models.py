"""Model invariants: immutable inbox and branch, derived conversation branch, message constraints,
unguessable tokens and the inbox settings schema."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import override_settings
from django.utils import timezone

from messenger.inbox_settings import DEFAULTS, effective_settings, validate_settings
from messenger.models import (
    Contact,
    ContactInbox,
    Conversation,
    Inbox,
    Message,
    MessageDirection,
    SenderType,
)
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db


def make_conversation(inbox: Inbox) -> Conversation:
    contact = Contact.objects.create(name="Visitor")
    contact_inbox = ContactInbox.objects.create(contact=contact, inbox=inbox)
    return Conversation.objects.create(inbox=inbox, contact=contact, contact_inbox=contact_inbox)


def make_message(conversation: Conversation, **fields) -> Message:
    defaults = {
        "direction": MessageDirection.IN,
        "sender_type": SenderType.CONTACT,
        "sender_contact": conversation.contact,
        "body": "hi",
        "created_at": timezone.now(),
    }
    return Message.objects.create(conversation=conversation, **{**defaults, **fields})


# --- Inbox.branch ---------------------------------------------------------------------------------


def test_inbox_branch_can_be_set_at_creation_and_other_fields_change_freely():
    branch = make_branch()
    inbox = make_inbox(branch)
    inbox.name = "Renamed"
    inbox.save()
    assert Inbox.objects.get(pk=inbox.pk).name == "Renamed"


@pytest.mark.parametrize("reload", [False, True])
def test_inbox_branch_cannot_change_once_set(reload):
    inbox = make_inbox(make_branch())
    if reload:
        inbox = Inbox.objects.get(pk=inbox.pk)
    inbox.branch = make_branch()
    with pytest.raises(ValidationError) as error:
        inbox.save()
    assert "branch" in error.value.message_dict
    with pytest.raises(ValidationError):
        inbox.full_clean()


def test_global_inbox_cannot_get_a_branch_later():
    inbox = Inbox.objects.get(pk=make_inbox(None).pk)
    inbox.branch = make_branch()
    with pytest.raises(ValidationError):
        inbox.save()


def test_inbox_branch_cannot_be_removed():
    inbox = Inbox.objects.get(pk=make_inbox(make_branch()).pk)
    inbox.branch = None
    with pytest.raises(ValidationError):
        inbox.save()


# --- Conversation.inbox and .branch ---------------------------------------------------------------


def test_conversation_branch_is_derived_from_the_inbox_at_creation():
    branch = make_branch()
    conversation = make_conversation(make_inbox(branch))
    assert conversation.branch_id == branch.pk
    assert make_conversation(make_inbox(None)).branch_id is None


def test_conversation_inbox_cannot_change():
    conversation = Conversation.objects.get(pk=make_conversation(make_inbox(make_branch())).pk)
    conversation.inbox = make_inbox(conversation.branch)
    with pytest.raises(ValidationError) as error:
        conversation.save()
    assert "inbox" in error.value.message_dict


@pytest.mark.parametrize("reload", [False, True])
def test_conversation_branch_cannot_be_edited_by_hand(reload):
    conversation = make_conversation(make_inbox(make_branch()))
    if reload:
        conversation = Conversation.objects.get(pk=conversation.pk)
    conversation.branch = make_branch()
    with pytest.raises(ValidationError) as error:
        conversation.save()
    assert "branch" in error.value.message_dict


def test_conversation_branch_changes_only_after_allow_branch_change():
    original = make_branch()
    conversation = Conversation.objects.get(pk=make_conversation(make_inbox(original)).pk)
    other = make_branch()
    conversation.branch = other
    conversation.allow_branch_change()
    conversation.save()
    assert Conversation.objects.get(pk=conversation.pk).branch_id == other.pk
    # The permission is spent by one save: the next hand edit is refused again.
    conversation.branch = original
    with pytest.raises(ValidationError):
        conversation.save()


def test_routing_may_choose_another_branch_at_creation():
    """A routed conversation (allow_branch_change before the first save) keeps the routed branch."""
    inbox = make_inbox(make_branch())
    routed = make_branch()
    contact = Contact.objects.create()
    conversation = Conversation(inbox=inbox, contact=contact, branch=routed)
    conversation.allow_branch_change()
    conversation.save()
    assert Conversation.objects.get(pk=conversation.pk).branch_id == routed.pk


# --- Message constraints ----------------------------------------------------------------------------

ALLOWED = [
    ("in", "contact"),
    ("out", "user"),
    ("out", "system"),
    ("out", "bot"),
    ("internal", "user"),
    ("internal", "system"),
]
FORBIDDEN = [
    ("in", "user"),
    ("in", "system"),
    ("in", "bot"),
    ("out", "contact"),
    ("internal", "contact"),
    ("internal", "bot"),
]


@pytest.mark.parametrize(("direction", "sender_type"), ALLOWED)
def test_message_direction_and_sender_that_agree_are_stored(direction, sender_type):
    conversation = make_conversation(make_inbox(None))
    sender = {"sender_contact": conversation.contact} if sender_type == "contact" else {"sender_contact": None}
    make_message(conversation, direction=direction, sender_type=sender_type, **sender)


@pytest.mark.parametrize(("direction", "sender_type"), FORBIDDEN)
def test_message_direction_and_sender_that_disagree_are_refused_by_the_database(direction, sender_type):
    conversation = make_conversation(make_inbox(None))
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(conversation, direction=direction, sender_type=sender_type, sender_contact=None)


def test_contact_message_cannot_name_a_user_and_user_message_cannot_name_a_contact():
    conversation = make_conversation(make_inbox(None))
    user = make_user()
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(conversation, sender_user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(conversation, direction="out", sender_type="user", sender_user=user)


def test_client_id_is_unique_per_conversation_but_null_repeats():
    conversation = make_conversation(make_inbox(None))
    make_message(conversation, client_id="c-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_message(conversation, client_id="c-1")
    # The same client id in another conversation is another message.
    make_message(make_conversation(conversation.inbox), client_id="c-1")
    for _ in range(3):
        make_message(conversation, client_id=None)
    assert conversation.messages.filter(client_id__isnull=True).count() == 3


# --- Tokens -----------------------------------------------------------------------------------------


def test_widget_tokens_are_long_random_and_unique():
    tokens = {make_inbox(None).widget_token for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 32 for token in tokens)


def test_widget_token_unique_in_the_database():
    inbox = make_inbox(None)
    with pytest.raises(IntegrityError), transaction.atomic():
        make_inbox(None, widget_token=inbox.widget_token)


def test_pubsub_tokens_are_long_random_and_unique():
    inbox = make_inbox(None)
    tokens = {
        ContactInbox.objects.create(contact=Contact.objects.create(), inbox=inbox).pubsub_token for _ in range(20)
    }
    assert len(tokens) == 20
    assert all(len(token) >= 32 for token in tokens)
    existing = ContactInbox.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactInbox.objects.create(contact=existing.contact, inbox=inbox, pubsub_token=existing.pubsub_token)


# --- Inbox settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"widget": {"color": "blue"}},
        {"widget": {"color": "#12345"}},
        {"unknown": {}},
        {"widget": {"shape": "round"}},
        {"rating": {"scale": "thumbs"}},
        {"working_hours": {"days": {"monday": [["09:00", "18:00"]]}}},
        {"working_hours": {"days": {"mon": [["9am", "6pm"]]}}},
        {"working_hours": {"holidays": ["31/12/2025"]}},
        {"escalation": {"timeout_seconds": 5}},
        {"security": {"allowed_domains": "example.com"}},
        [],
    ],
)
def test_invalid_inbox_settings_are_refused(settings):
    with pytest.raises(ValidationError):
        validate_settings(settings)
    with pytest.raises(ValidationError):
        Inbox.objects.create(name="Bad", settings=settings)


def test_valid_inbox_settings_are_stored():
    settings = {
        "security": {"allowed_domains": ["shop.example.com", "*.example.org"]},
        "working_hours": {"enabled": True, "timezone": "Europe/Berlin", "days": {"mon": [["09:00", "18:00"]]}},
        "widget": {"color": "#00aa00", "position": "left"},
        "escalation": {"timeout_seconds": 120},
    }
    validate_settings(settings)
    inbox = Inbox.objects.create(name="Good", settings=settings)
    assert inbox.allowed_domains == ["shop.example.com", "*.example.org"]


@override_settings(
    MESSENGER_ESCALATION_TIMEOUT_SECONDS=300, MESSENGER_PRIVACY_URL="https://example.com/p", MESSENGER_PRIVACY_TEXT=""
)
def test_effective_settings_fill_defaults_and_server_fallbacks():
    merged = effective_settings({"widget": {"title": "Help"}})
    assert merged["widget"]["title"] == "Help"
    assert merged["widget"]["color"] == DEFAULTS["widget"]["color"]
    assert merged["rating"] == {"enabled": True, "scale": "stars"}
    assert merged["security"]["allowed_domains"] == []
    assert merged["escalation"]["timeout_seconds"] == 300
    assert merged["privacy"]["url"] == "https://example.com/p"
    assert effective_settings({"escalation": {"timeout_seconds": 60}})["escalation"]["timeout_seconds"] == 60
    # Defaults are copied, never shared.
    merged["security"]["allowed_domains"].append("x")
    assert DEFAULTS["security"]["allowed_domains"] == []


def test_inbox_effective_settings_property_reads_stored_values_over_defaults():
    inbox = make_inbox(None, allowed=["a.example"], settings={"rating": {"scale": "nps"}})
    assert inbox.effective_settings["rating"] == {"enabled": True, "scale": "nps"}
    assert inbox.effective_settings["features"]["attachments"] is True


@pytest.mark.postgres
def test_a_contact_with_more_rows_than_one_statement_takes_can_be_deleted():
    # Server-side binding allows 65 535 parameters per statement; the cascade batches its ids
    # (messenger.db.postgresql) instead of failing, as a retention purge or an erasure would.
    conversation = make_conversation(make_inbox(make_branch()))
    now = timezone.now()
    Message.objects.bulk_create(
        [
            Message(
                conversation=conversation,
                direction=MessageDirection.IN,
                sender_type=SenderType.CONTACT,
                sender_contact=conversation.contact,
                body="hi",
                created_at=now,
            )
            for _ in range(70_000)
        ]
    )
    conversation.contact.delete()
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
