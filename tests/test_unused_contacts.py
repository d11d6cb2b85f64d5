"""Page views without a word: no audit row per view, and the contacts they made are purged once idle
(messenger/actions/schedule.py, ``do_purge_unused_contacts``)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone

from messenger import tasks
from messenger.actions.base import Actor
from messenger.actions.conversations import do_start_conversation
from messenger.actions.schedule import do_purge_unused_contacts
from messenger.actions.widget import visitor_connect
from messenger.models import ActivityEvent, Contact, ContactInbox, Conversation
from tests.conftest import bootstrap, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox
from tests.test_routing_helpers import is_postgres, start


@pytest.mark.django_db
def test_a_page_view_writes_no_audit_row():
    inbox = make_inbox(make_branch())
    response = Client().post(
        "/api/widget/bootstrap/",
        {"widget_token": inbox.widget_token},
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
    )
    assert response.status_code == 200
    assert Contact.objects.count() == ContactInbox.objects.count() == 0  # no row until they write
    assert ActivityEvent.objects.count() == 0


def _idle(contact_id: int, days: int) -> None:
    Contact.objects.filter(pk=contact_id).update(last_activity_at=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
def test_contacts_that_never_wrote_are_purged_once_idle(settings):
    settings.MESSENGER_RETENTION_UNUSED_CONTACT_DAYS = 30
    inbox, other_inbox = make_inbox(make_branch()), make_inbox(make_branch())
    viewer = bootstrap(inbox)
    viewer_inbox = visitor_rows(viewer)
    # The same visitor on a second site: one contact, two contact inboxes, both go.
    ContactInbox.objects.create(contact=viewer_inbox.contact, inbox=other_inbox)
    recent = visitor_rows(bootstrap(inbox))
    wrote = start(inbox).contact_id
    kept = {
        "wrote": wrote,
        "named": Contact.objects.create(name="Anna").pk,
        "e-mail": Contact.objects.create(email="a@example.com").pk,
        "phone": Contact.objects.create(phone="+1 555").pk,
        "external id": Contact.objects.create(external_id="crm-7").pk,
        "custom form field": Contact.objects.create(custom_attributes={"order": "A-1"}).pk,
        "blocked": Contact.objects.create(blocked=True).pk,
    }
    never_seen = Contact.objects.create().pk  # no last_activity_at: its creation time counts
    Contact.objects.filter(pk=never_seen).update(created_at=timezone.now() - timedelta(days=31))
    # A contact row of the old page-view audit, with the visitor's IP.
    ActivityEvent.objects.create(
        actor_contact_id=viewer_inbox.contact_id,
        verb="contact.created",
        target_type="contact",
        target_id=str(viewer_inbox.contact_id),
        ip="203.0.113.5",
    )
    for contact_id in (viewer_inbox.contact_id, *kept.values()):
        _idle(contact_id, 31)
    _idle(recent.contact_id, 29)

    assert do_purge_unused_contacts() == 2
    assert not Contact.objects.filter(pk__in=[viewer_inbox.contact_id, never_seen]).exists()
    assert not ContactInbox.objects.filter(contact_id=viewer_inbox.contact_id).exists()
    assert set(Contact.objects.values_list("pk", flat=True)) == {*kept.values(), recent.contact_id}
    assert Conversation.objects.filter(contact_id=wrote).count() == 1
    assert list(ActivityEvent.objects.filter(actor_label="retention").values_list("verb", "payload")) == [
        ("retention.unused_contacts_purged", {"contacts": 2, "idle_days": 30})
    ]
    assert not ActivityEvent.objects.filter(verb="contact.created").exists()
    assert do_purge_unused_contacts() == 0

    # The widget that still holds the purged session goes on as a visitor without rows (the same
    # visitor id, nothing stored) until they write again.
    back = visitor_connect(
        widget_token=inbox.widget_token, token=viewer["session_token"], origin=VISITOR_ORIGIN, ip=None
    )
    assert back.contact_inbox is not None and back.contact_inbox.pk is None
    assert back.contact_inbox.source_id == viewer["visitor_id"]
    again = bootstrap(inbox, pubsub_token=viewer["pubsub_token"])
    assert (again["pubsub_token"], again["visitor_id"]) == (viewer["pubsub_token"], viewer["visitor_id"])
    assert not ContactInbox.objects.filter(source_id=viewer["visitor_id"]).exists()

    # Any number of them, a batch at a time.
    Contact.objects.bulk_create([Contact(last_activity_at=timezone.now() - timedelta(days=40)) for _ in range(7)])
    assert do_purge_unused_contacts(batch=3) == 7
    assert ActivityEvent.objects.filter(verb="retention.unused_contacts_purged").first().payload["contacts"] == 7

    settings.MESSENGER_RETENTION_UNUSED_CONTACT_DAYS = 0  # off
    _idle(recent.contact_id, 400)
    assert do_purge_unused_contacts() == 0
    settings.MESSENGER_RETENTION_UNUSED_CONTACT_DAYS = 30
    assert tasks.retention()["retention_unused_contacts"] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_first_message_committed_while_the_purge_waits_keeps_its_contact(settings):
    if not is_postgres():
        pytest.skip("needs PostgreSQL: SQLite serialises all writers, so there is no race to prove")
    settings.MESSENGER_RETENTION_UNUSED_CONTACT_DAYS = 30
    inbox = make_inbox(make_branch())
    contact_inbox = visitor_rows(bootstrap(inbox))
    _idle(contact_inbox.contact_id, 31)
    started, release, purged, errors = threading.Event(), threading.Event(), [], []

    def visitor_writes() -> None:
        try:
            with transaction.atomic():
                # The conversation's foreign key holds the contact row until the commit.
                do_start_conversation(contact_inbox=contact_inbox, actor=Actor(contact=contact_inbox.contact))
                started.set()
                release.wait(10)
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            started.set()
            connections.close_all()

    def purge() -> None:
        try:
            purged.append(do_purge_unused_contacts())
        except Exception as error:  # noqa: BLE001
            errors.append(error)
        finally:
            connections.close_all()

    writer = threading.Thread(target=visitor_writes)
    writer.start()
    started.wait(10)
    purger = threading.Thread(target=purge)
    purger.start()
    purger.join(1)
    assert purger.is_alive()  # waiting for the contact's row
    release.set()
    writer.join()
    purger.join()
    assert errors == []
    assert purged == [0]
    assert Conversation.objects.filter(contact_id=contact_inbox.contact_id).count() == 1
