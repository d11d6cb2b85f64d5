"""Attachments: upload (visitor or operator) and permission-checked download.

Invariants:
* The stored ``content_type`` comes from the file's bytes (``filetype``), never from its name or
  the browser's claim; a file whose detected type is not allowed by the inbox is refused.
* An upload is bound to a conversation at once but to a message only when ``message.send`` names
  it (``messages._store_message``); until then nobody else can attach it.
* A visitor's upload that starts a conversation starts it through the visitor's one door
  (``intake.upload_visitor_attachment``): pre-chat form, CAPTCHA and the per-IP counter.
* A download answers NotFound for anything but staff who may see the conversation, or a link token
  issued to that conversation's visitor: a forbidden file looks exactly like a missing one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import filetype
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from messenger.access import access_conversation_for_staff, staff_scope
from messenger.actions.base import Actor, audit
from messenger.errors import Forbidden, InvalidInput, NotFound
from messenger.models import Attachment, ContactInbox, Conversation, Inbox
from messenger.tokens import read_attachment_token

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class DetectedFile:
    content_type: str
    width: int | None
    height: int | None


def limits(inbox: Inbox) -> tuple[int, list[str]]:
    """(max size in bytes, allowed content types): the inbox's, capped by the global maximum."""
    configured = inbox.effective_settings["attachments"]
    max_size = min(int(configured["max_size"]), settings.MESSENGER_ATTACHMENT_MAX_SIZE)
    return max_size, list(configured["allowed_types"])


def sniff_content_type(head: bytes) -> str:
    """The type the bytes say. Markup is named as such so that it can be refused (and never inlined)."""
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    if b"\x00" in head:
        return "application/octet-stream"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the sniff boundary is still text.
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
    lowered = text.lstrip().lower()
    if "<svg" in lowered[:2048]:
        return "image/svg+xml"
    if lowered.startswith(("<!doctype html", "<html", "<script", "<head", "<body", "<iframe")) or "<script" in lowered:
        return "text/html"
    return "text/plain"


def image_size(upload: UploadedFile) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    upload.seek(0)
    try:
        with Image.open(io.BytesIO(upload.read())) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput("file: the image cannot be read") from None
    finally:
        upload.seek(0)
    return width, height


def check_file(inbox: Inbox, upload: Any) -> DetectedFile:
    """Validate an uploaded file against the inbox's limits; the type is detected from the content."""
    if not isinstance(upload, UploadedFile):
        raise InvalidInput("file: a file is required")
    max_size, allowed = limits(inbox)
    if upload.size is None or upload.size == 0:
        raise InvalidInput("file: the file is empty", code="file_empty")
    if upload.size > max_size:
        raise InvalidInput(f"file: at most {max_size} bytes", code="file_too_large", max_size=max_size)
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    content_type = sniff_content_type(head)
    if content_type not in allowed:
        raise InvalidInput(
            f"file: type {content_type} is not allowed", code="file_type_not_allowed", content_type=content_type
        )
    width = height = None
    if content_type in IMAGE_TYPES:
        width, height = image_size(upload)
    return DetectedFile(content_type=content_type, width=width, height=height)


def _clean_name(name: str | None) -> str:
    base = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>').strip() or "file"
    return cleaned[-255:]


def _store(
    *, conversation: Conversation, upload: UploadedFile, detected: DetectedFile, contact: Any = None, user: Any = None
) -> Attachment:
    attachment = Attachment(
        conversation=conversation,
        original_name=_clean_name(upload.name),
        content_type=detected.content_type,
        size=upload.size,
        width=detected.width,
        height=detected.height,
        uploaded_by_contact=contact,
        uploaded_by_user=user,
    )
    # The stored name never reuses the visitor's: it is only shown, never trusted.
    attachment.file.save(f"upload.{detected.content_type.rsplit('/', 1)[-1][:10]}", upload, save=False)
    attachment.save()
    return attachment


def check_visitor_upload(*, contact_inbox: ContactInbox, upload: Any) -> DetectedFile:
    """A visitor's file, before anything is stored: the contact may write, the inbox takes files,
    and the file passes the inbox's limits (``check_file``)."""
    if contact_inbox.contact.blocked:
        raise Forbidden("You cannot send messages.", code="blocked")
    if not contact_inbox.inbox.effective_settings["features"].get("attachments", True):
        # The per-inbox flag: the widget hides the picker, the server refuses the upload.
        raise Forbidden("Attachments are turned off for this site.", code="attachments_disabled")
    return check_file(contact_inbox.inbox, upload)


def do_store_visitor_attachment(
    *, conversation: Conversation, contact_inbox: ContactInbox, upload: Any, detected: DetectedFile, actor: Actor
) -> Attachment:
    """Store a visitor's checked file (``check_visitor_upload``) in ``conversation``, theirs
    (``intake.upload_visitor_attachment`` finds or starts it)."""
    with transaction.atomic():
        attachment = _store(conversation=conversation, upload=upload, detected=detected, contact=contact_inbox.contact)
        audit(actor, "attachment.uploaded", target=attachment, conversation=conversation)
    return attachment


def do_upload_operator_attachment(*, conversation: Conversation, user: Any, upload: Any) -> Attachment:
    """``conversation`` came from ``access_conversation_for_staff``."""
    detected = check_file(conversation.inbox, upload)
    with transaction.atomic():
        attachment = _store(conversation=conversation, upload=upload, detected=detected, user=user)
        audit(Actor(user=user), "attachment.uploaded", target=attachment, conversation=conversation)
    return attachment


def access_attachment(attachment_id: int, *, user: Any = None, link_token: str | None = None) -> Attachment:
    """The attachment, when ``user`` is staff who may see its conversation or ``link_token`` was
    issued to that conversation's visitor (links are only ever issued inside that visitor's payloads)."""
    attachment = Attachment.objects.select_related("conversation").filter(pk=attachment_id).first()
    if attachment is None:
        raise NotFound("No such file.")
    if link_token:
        contact_inbox_id = read_attachment_token(link_token, attachment.pk)
        if contact_inbox_id is not None and contact_inbox_id == attachment.conversation.contact_inbox_id:
            return attachment
    scope = staff_scope(user) if user is not None else None
    if scope is not None:
        access_conversation_for_staff(scope, attachment.conversation_id)
        return attachment
    raise NotFound("No such file.")
