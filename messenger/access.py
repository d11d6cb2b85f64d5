"""Permission-checked fetches. A forbidden row answers exactly like a missing one (NotFound)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from messenger.errors import NotFound
from messenger.models import AgentProfile, AgentRole, Contact, ContactInbox, Conversation, Inbox

CONVERSATION_RELATED = ("inbox", "branch", "region", "contact", "assignee", "contact_inbox")


@dataclass(frozen=True)
class StaffScope:
    user_id: int
    role: str
    branch_id: int | None

    @property
    def sees_all(self) -> bool:
        return self.role in (AgentRole.SUPERVISOR, AgentRole.ADMIN)


def staff_scope(user: AbstractBaseUser | None) -> StaffScope | None:
    """The user's role and branch, or None for anyone who is not staff of the messenger."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    try:
        profile: AgentProfile = user.agent
    except AgentProfile.DoesNotExist:
        profile = None
    if profile is None:
        if user.is_superuser:
            return StaffScope(user_id=user.pk, role=AgentRole.ADMIN, branch_id=None)
        return None
    role = AgentRole.ADMIN if user.is_superuser else profile.role
    return StaffScope(user_id=user.pk, role=role, branch_id=profile.branch_id)


def visible_conversations(scope: StaffScope) -> QuerySet[Conversation]:
    queryset = Conversation.objects.all()
    if scope.sees_all:
        return queryset
    return (
        queryset.filter(Q(branch_id=scope.branch_id) | Q(assignee_id=scope.user_id))
        if scope.branch_id
        else queryset.filter(assignee_id=scope.user_id)
    )


def access_conversation_for_staff(
    scope: StaffScope | None, conversation_id: object, *, lock: bool = False
) -> Conversation:
    """Fetch a conversation the staff member may see (``lock``: SELECT … FOR UPDATE of the row)."""
    if scope is None:
        raise NotFound("No such conversation.")
    try:
        conversation_id = int(conversation_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NotFound("No such conversation.") from None
    queryset = visible_conversations(scope).select_related(*CONVERSATION_RELATED)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    conversation = queryset.filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def access_conversation_for_visitor(
    contact_inbox: ContactInbox, conversation_id: object, *, lock: bool = False
) -> Conversation:
    try:
        conversation_id = int(conversation_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NotFound("No such conversation.") from None
    if contact_inbox.pk is None:
        raise NotFound("No such conversation.")  # a visitor with no rows has none
    queryset = Conversation.objects.select_related(*CONVERSATION_RELATED).filter(
        pk=conversation_id, contact_inbox=contact_inbox
    )
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    conversation = queryset.first()
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


def visible_contacts(scope: StaffScope) -> QuerySet[Contact]:
    """Every contact for a supervisor; for an operator, those with a conversation they may see."""
    if scope.sees_all:
        return Contact.objects.all()
    return Contact.objects.filter(Exists(visible_conversations(scope).filter(contact_id=OuterRef("pk"))))


def access_contact_for_staff(scope: StaffScope | None, contact_id: object, *, lock: bool = False) -> Contact:
    """Fetch a contact the staff member may see (``lock``: SELECT … FOR UPDATE of the row)."""
    if scope is None:
        raise NotFound("No such contact.")
    try:
        contact_id = int(contact_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NotFound("No such contact.") from None
    queryset = visible_contacts(scope).select_related("region")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    contact = queryset.filter(pk=contact_id).first()
    if contact is None:
        raise NotFound("No such contact.")
    return contact


def visible_inboxes(scope: StaffScope) -> QuerySet[Inbox]:
    """Every inbox for a supervisor; for an operator, their branch's and the shared ones (no branch)."""
    queryset = Inbox.objects.all()
    if scope.sees_all:
        return queryset
    return queryset.filter(Q(branch__isnull=True) | Q(branch_id=scope.branch_id))
