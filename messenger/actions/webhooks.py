"""Webhook deliveries: claiming the due ones, sending one, recording what the receiver answered,
and the admin's doors (redeliver, test event, secret rotation, re-enable).
docs/integrations.md, "Webhooks", is the contract these implement.

Invariants:
* The outbox rows are written with the events they report (``messenger.webhooks``); this module
  only sends them. Delivery is at least once: a receiver deduplicates by the delivery id (or by
  ``conversation_id`` + ``event_id``).
* ``do_claim_due_deliveries`` leases each due row with one conditional UPDATE (``locked_until``),
  so two ticks racing hand each row to one of them (on PostgreSQL the second skips the rows the
  first holds and takes the next ones); ``do_deliver`` starts an attempt only if the
  row still has the attempt count the claim saw (a job run twice sends once).
* Outcomes: 2xx delivered; a timeout, connection error, 5xx or 429 is retried with exponential
  backoff and jitter (429's ``Retry-After`` honoured, capped) until ``MESSENGER_WEBHOOK_RETRY_HOURS``
  after the event; any other status (3xx included: redirects are not followed) or a refused
  target fails at once. ``MESSENGER_WEBHOOK_DISABLE_AFTER`` deliveries failed for good in a row
  disable the webhook, with the reason and time.
"""

from __future__ import annotations

import http.client
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from messenger import jobs, webhook_http
from messenger.actions.base import Actor, audit
from messenger.db import offline
from messenger.dbwrite import Statement
from messenger.models import Contact, Webhook, WebhookDelivery
from messenger.models.webhook import TEST_EVENT, new_webhook_secret
from messenger.realtime.broadcast import dumps
from messenger.webhooks import (
    body_of,
    contact_data,
    envelope_text,
    outbox_statements,
    signature_header,
    webhook_test_data,
)

DELIVER_TASK = "messenger.tasks.deliver_webhook"
# At least this, and always longer than a send can take (``lease_for_request``): a live attempt
# is never claimed twice.
LEASE = timedelta(seconds=120)
CLAIM_BATCH = 100
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 6 * 3600
RETRY_AFTER_MAX_SECONDS = 3600
PENDING = WebhookDelivery.Status.PENDING
DELIVERED = WebhookDelivery.Status.DELIVERED
FAILED = WebhookDelivery.Status.FAILED


def lease_for_request() -> timedelta:
    """How long a claimed or started delivery is held: past the request's whole deadline
    (``webhook_http.total_deadline``), with a margin to record the outcome."""
    deadline = webhook_http.total_deadline(settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS)
    return max(LEASE, timedelta(seconds=deadline + 60))


def do_claim_due_deliveries(*, now: datetime | None = None, limit: int = CLAIM_BATCH) -> list[tuple[int, int]]:
    """Lease the due pending deliveries of active webhooks; (id, attempts) of each claimed row."""
    now = now or timezone.now()
    table = WebhookDelivery._meta.db_table
    webhooks = Webhook._meta.db_table
    at = offline().ops.adapt_datetimefield_value(now)
    until = offline().ops.adapt_datetimefield_value(now + lease_for_request())
    free = "status = %s AND (locked_until IS NULL OR locked_until < %s)"
    # PostgreSQL: a racing claim takes the next rows instead of waiting for these and finding
    # them taken (SQLite has one writer at a time: nothing to skip).
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = (
        f"UPDATE {table} SET locked_until = %s WHERE id IN ("  # noqa: S608
        f"SELECT id FROM {table} WHERE {free} AND next_attempt_at <= %s"
        f" AND webhook_id IN (SELECT id FROM {webhooks} WHERE is_active)"
        f" ORDER BY next_attempt_at, id LIMIT %s{skip_locked})"
        # Re-checked on the row itself: a racing claim that committed first wins it.
        f" AND {free} RETURNING id, attempts"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [until, PENDING.value, at, at, limit, PENDING.value, at])
        return [(row[0], row[1]) for row in cursor.fetchall()]


def do_send_due_deliveries(*, now: datetime | None = None) -> int:
    """The tick job: claim the due deliveries and hand each to ``jobs.submit``."""
    claimed = do_claim_due_deliveries(now=now)
    for delivery_pk, attempts in claimed:
        jobs.submit(DELIVER_TASK, delivery_pk, attempts)
    return len(claimed)


@dataclass(frozen=True)
class Outcome:
    status: str
    response_status: int | None = None
    response_body: str = ""
    duration_ms: int | None = None
    error: str = ""
    retry: bool = False
    retry_after_seconds: float | None = None


def valid_secrets(webhook: Webhook, now: datetime) -> list[str]:
    """The secrets a request is signed with: the current one, and the previous one while its
    overlap after a rotation lasts."""
    secrets = [webhook.secret]
    if webhook.previous_secret and webhook.previous_secret_expires_at and webhook.previous_secret_expires_at > now:
        secrets.append(webhook.previous_secret)
    return secrets


def request_headers(delivery: WebhookDelivery, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "X-Messenger-Event": delivery.event,
        "X-Messenger-Delivery": str(delivery.delivery_id),
        "X-Messenger-Timestamp": str(timestamp),
        "X-Messenger-Signature": signature_header(valid_secrets(delivery.webhook, now), timestamp, body),
    }


def do_deliver(*, delivery_pk: int, attempts: int, now: datetime | None = None) -> str | None:
    """One attempt at the claimed delivery (``attempts``: its count when claimed), and its
    outcome recorded; None when the row has moved on (another run took this attempt)."""
    now = now or timezone.now()
    mine = WebhookDelivery.objects.filter(pk=delivery_pk, status=PENDING, attempts=attempts)
    started = mine.filter(webhook__is_active=True).update(
        attempts=F("attempts") + 1, last_attempt_at=now, locked_until=now + lease_for_request()
    )
    if not started:
        # Disabled since the claim: the row waits, free for the tick once re-enabled.
        mine.update(locked_until=None)
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_pk)
    outcome = _attempt(delivery, now)
    _record(delivery, outcome, now)
    return outcome.status


def _attempt(delivery: WebhookDelivery, now: datetime) -> Outcome:
    body = body_of(delivery).encode()
    headers = request_headers(delivery, body, now)
    try:
        target = webhook_http.resolve(delivery.webhook.url)
    except webhook_http.Unresolvable as error:
        return Outcome(status=PENDING, error=str(error), retry=True)
    except webhook_http.UnsafeTarget as error:
        return Outcome(status=FAILED, error=f"refused: {error}")
    try:
        response = webhook_http.post(target, body, headers, timeout=settings.MESSENGER_WEBHOOK_TIMEOUT_SECONDS)
    except TimeoutError:
        return Outcome(status=PENDING, error="timed out", retry=True)
    except (OSError, http.client.HTTPException) as error:
        # The exception may quote what the receiver sent (a bad status line): NUL included.
        error_text = webhook_http.storable(f"{type(error).__name__}: {error}")
        return Outcome(status=PENDING, error=error_text, retry=True)
    except ValueError as error:
        # A request that cannot be written (the URL): no retry would do better, and an escaping
        # exception would leave the row leased, sent again at every lease, never failed.
        return Outcome(status=FAILED, error=webhook_http.storable(f"{type(error).__name__}: {error}"))
    answered = {
        "response_status": response.status,
        "response_body": response.body,
        "duration_ms": response.duration_ms,
    }
    if 200 <= response.status < 300:
        return Outcome(status=DELIVERED, **answered)
    if response.status == 429 or response.status >= 500:
        retry_after = retry_after_seconds(response.retry_after, now) if response.status == 429 else None
        return Outcome(
            status=PENDING, error=f"HTTP {response.status}", retry=True, retry_after_seconds=retry_after, **answered
        )
    if 300 <= response.status < 400:
        return Outcome(status=FAILED, error=f"HTTP {response.status}: redirects are not followed", **answered)
    return Outcome(status=FAILED, error=f"HTTP {response.status}", **answered)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from ``now``, capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 1.0), RETRY_AFTER_MAX_SECONDS)


def backoff_seconds(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: 30 s doubling up to 6 h, ±20 % jitter."""
    base = min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS)
    return base * random.uniform(0.8, 1.2)


def _record(delivery: WebhookDelivery, outcome: Outcome, now: datetime) -> None:
    fields: dict[str, Any] = {
        "response_status": outcome.response_status,
        "response_body": outcome.response_body,
        "duration_ms": outcome.duration_ms,
        "last_error": outcome.error[:2000],
        "locked_until": None,
    }
    status = outcome.status
    if outcome.retry:
        delay = outcome.retry_after_seconds or backoff_seconds(delivery.attempts)
        next_attempt = now + timedelta(seconds=delay)
        if next_attempt > delivery.created_at + timedelta(hours=settings.MESSENGER_WEBHOOK_RETRY_HOURS):
            status = FAILED
            fields["last_error"] = f"{outcome.error} (gave up after {delivery.attempts} attempts)"[:2000]
        else:
            fields["next_attempt_at"] = next_attempt
    if status == DELIVERED:
        fields["delivered_at"] = now
    if status != PENDING:
        fields["next_attempt_at"] = None
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=PENDING).update(
            status=status, **fields
        )
        if not updated:
            return
        webhook = delivery.webhook
        if status == DELIVERED:
            Webhook.objects.filter(pk=webhook.pk, consecutive_failures__gt=0).update(consecutive_failures=0)
        elif status == FAILED:
            _count_failure(webhook.pk, now=now, error=fields["last_error"])


def _count_failure(webhook_pk: int, *, now: datetime, error: str) -> None:
    webhook = Webhook.objects.select_for_update().get(pk=webhook_pk)
    webhook.consecutive_failures += 1
    changed = ["consecutive_failures"]
    limit = settings.MESSENGER_WEBHOOK_DISABLE_AFTER
    if webhook.is_active and limit and webhook.consecutive_failures >= limit:
        webhook.is_active = False
        webhook.disabled_at = now
        webhook.disabled_reason = f"{webhook.consecutive_failures} deliveries in a row failed; the last: {error}"[:500]
        changed += ["is_active", "disabled_at", "disabled_reason"]
    webhook.save(update_fields=changed)
    if "is_active" in changed:
        audit(Actor.system("webhooks"), "webhook.disabled", target=webhook, payload={"reason": webhook.disabled_reason})


def do_purge_delivery_log(*, now: datetime | None = None, batch: int = 5000) -> int:
    """The retention of the delivery log: finished deliveries (delivered or failed) older than
    ``MESSENGER_WEBHOOK_LOG_DAYS`` are deleted; pending ones stay. Returns how many."""
    days = settings.MESSENGER_WEBHOOK_LOG_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = WebhookDelivery.objects.filter(status__in=[DELIVERED, FAILED], created_at__lt=cutoff)
    deleted = 0
    while True:
        ids = list(finished.order_by("id").values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]


# --- the admin's doors ------------------------------------------------------------------------------


def do_redeliver(*, delivery: WebhookDelivery, actor: Actor, now: datetime | None = None) -> WebhookDelivery:
    """A new delivery of the same event (a new delivery id, the same ``conversation_id`` and
    ``event_id``), due now."""
    now = now or timezone.now()
    with transaction.atomic():
        copy = WebhookDelivery.objects.create(
            webhook_id=delivery.webhook_id,
            event=delivery.event,
            payload=delivery.payload,
            conversation_id=delivery.conversation_id,
            event_seq=delivery.event_seq,
            next_attempt_at=now,
            created_at=now,
        )
        audit(actor, "webhook.redelivered", target=copy, payload={"of": str(delivery.delivery_id)})
    return copy


def do_send_test_event(*, webhook: Webhook, actor: Actor, now: datetime | None = None) -> WebhookDelivery:
    """A ``webhook.test`` delivery, due now (whatever the webhook subscribes to)."""
    now = now or timezone.now()
    payload = envelope_text(
        event=TEST_EVENT,
        created_at=now,
        inbox_id=webhook.inbox_id,
        conversation_id=None,
        event_id=None,
        data_json=dumps(webhook_test_data(webhook)),
    )
    with transaction.atomic():
        delivery = WebhookDelivery.objects.create(
            webhook=webhook, event=TEST_EVENT, payload=payload, next_attempt_at=now, created_at=now
        )
        audit(actor, "webhook.test_sent", target=webhook)
    return delivery


def do_rotate_secret(*, webhook: Webhook, actor: Actor, now: datetime | None = None) -> Webhook:
    """A new secret; the old one stays valid (requests carry both signatures) for
    ``MESSENGER_WEBHOOK_SECRET_OVERLAP_HOURS``."""
    now = now or timezone.now()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = now + timedelta(hours=settings.MESSENGER_WEBHOOK_SECRET_OVERLAP_HOURS)
        webhook.secret = new_webhook_secret()
        webhook.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
        audit(actor, "webhook.secret_rotated", target=webhook)
    return webhook


def do_enable_webhook(*, webhook: Webhook, actor: Actor) -> Webhook:
    """Active again, its run of failures forgotten; its pending deliveries are sent again."""
    with transaction.atomic():
        webhook.is_active = True
        webhook.consecutive_failures = 0
        webhook.disabled_at = None
        webhook.disabled_reason = ""
        webhook.save(update_fields=["is_active", "consecutive_failures", "disabled_at", "disabled_reason"])
        audit(actor, "webhook.enabled", target=webhook)
    return webhook


def contact_event_statements(
    *, contact: Contact, inbox_id: int, created: bool, changes: list[str], now: datetime | None = None
) -> list[Statement]:
    """The outbox INSERT of ``contact.created`` / ``contact.updated`` for the webhooks of
    ``inbox_id`` that subscribe (none: it inserts nothing), for the caller to run inside the
    change's transaction with its own writes (``dbwrite.execute``: one round trip on PostgreSQL)."""
    now = now or timezone.now()
    return outbox_statements(
        ["contact.created" if created else "contact.updated"],
        vendor=offline().vendor,
        inbox_id=inbox_id,
        conversation_id=None,
        event_id=None,
        created_at=now,
        created_at_param=offline().ops.adapt_datetimefield_value(now),
        data_json=dumps(contact_data(contact, changes=changes)),
    )
