"""Django admin for every Messenger model.

Configuration rows (branches, regions, rules, inboxes, canned responses, labels, webhooks) are
edited here directly. Conversations are never added here (only a visitor starts one). Their state
(status, assignee, priority, labels, branch) and the message log are shown read-only: changing them here would skip the events, audit rows and
counters that ``messenger.actions`` keep, so those changes belong to the dashboard or to admin
actions that call the actions. Logs (audit, conversation events, webhook deliveries, operator
sockets) are view-only.
"""

from __future__ import annotations

import contextvars
import copy
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings as django_settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet, URLField
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from messenger import webhook_http
from messenger.actions import mail
from messenger.actions import webhooks as webhook_actions
from messenger.actions.base import Actor
from messenger.admin_forms import (
    PreChatFieldsField,
    WeeklyHoursField,
    hours_from_rows,
    pre_chat_from_rows,
)
from messenger.inbox_settings import (
    DEFAULTS,
    MAX_ESCALATION_TIMEOUT_SECONDS,
    MIN_ESCALATION_TIMEOUT_SECONDS,
    deep_merge,
    known_settings,
    validate_settings,
)
from messenger.models import (
    ActivityEvent,
    AgentConnection,
    AgentProfile,
    Attachment,
    Branch,
    CannedResponse,
    Contact,
    ContactInbox,
    Conversation,
    ConversationEvent,
    EmailKind,
    Inbox,
    Label,
    Message,
    OutgoingEmail,
    PresencePeriod,
    ProactiveTrigger,
    Region,
    RoutingRule,
    Webhook,
    WebhookDelivery,
)
from messenger.models.branch import validate_timezone
from messenger.models.webhook import ALL_EVENTS_FILTER, WEBHOOK_EVENTS
from messenger.working_hours import schedule_problems

User = get_user_model()

# The request of the change form being rendered, for read-only fields that need the site's origin
# (the admin instance is shared between threads, so it cannot hold the request itself).
_current_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar(
    "messenger_admin_request", default=None
)


def pretty_json(value: Any) -> str:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


class ViewOnlyMixin:
    """Logs and derived rows: visible to staff, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


# --- Branches and routing ------------------------------------------------------------------------


class FormShownReadOnly:
    """Staff who may only view a row see its form with every input disabled: Django's read-only
    text shows a field that only the form has (the inbox's settings, a branch's Always open) as
    None, and the hours or the GeoIP codes as JSON."""

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False, change: bool = False, **kwargs: Any
    ) -> Any:
        obj = kwargs.get("obj")
        if change and not self.has_change_permission(request, obj):  # type: ignore[attr-defined]
            adminform = context["adminform"]
            form = adminform.form
            for field in form.fields.values():
                field.disabled = True
            # The model's own fields are not in a view-only form: Django's text shows those well.
            shown = flatten_fieldsets(adminform.fieldsets)
            context["adminform"] = helpers.AdminForm(
                form,
                list(adminform.fieldsets),
                {},
                [name for name in shown if name not in form.fields],
                model_admin=self,
            )
        return super().render_change_form(request, context, add, change, **kwargs)  # type: ignore[misc]


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 0
    fields = ("region", "branch", "priority", "is_active")
    autocomplete_fields = ("region", "branch")


class BranchAdminForm(forms.ModelForm):
    """The branch's hours as a row per weekday; stored as ``Branch.working_hours`` after the
    check ``Branch.save`` applies (``messenger.working_hours``)."""

    always_open = forms.BooleanField(
        label=_("Always open"),
        required=False,
        help_text=_("No working hours: the branch takes chats at any time. Untick to set the days below."),
    )
    working_hours = WeeklyHoursField(
        label=_("Opening hours"),
        help_text=_(
            "Local time of the branch's time zone. Several intervals a day for a break; a day ticked closed is "
            "closed. Public holidays of the holiday calendar are closed too."
        ),
    )

    class Meta:
        model = Branch
        fields = ("name", "timezone", "holiday_calendar", "fallback_branch", "is_active", "working_hours")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.working_hours
        self.fields["always_open"].initial = not stored
        self.initial.setdefault("working_hours", stored)  # a view-only form has no model fields
        if problems := schedule_problems(stored):
            self.fields["working_hours"].help_text = format_html(
                "<strong>{}</strong> {}",
                _("The stored hours are not valid; those days count as closed until saved here:"),
                " ".join(problems),
            )

    def clean_holiday_calendar(self) -> str:
        import holidays

        code = self.cleaned_data["holiday_calendar"].strip().upper()
        if code and code not in holidays.list_supported_countries():
            raise ValidationError(
                _("%(code)s is not a country with a holiday calendar; use an ISO code such as RU or DE."),
                params={"code": code},
            )
        return code

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("always_open"):
            cleaned["working_hours"] = {}
            return cleaned
        days, problems = hours_from_rows(cleaned.get("working_hours"))
        if not problems and not any(days.values()):
            problems = [
                _(
                    "Every day is ticked closed: the branch would never take a chat. Enter the hours of a day, "
                    "tick Always open, or untick Active to close the branch."
                )
            ]
        if problems:
            self.add_error("working_hours", problems)
        else:
            cleaned["working_hours"] = days
        return cleaned


@admin.register(Branch)
class BranchAdmin(FormShownReadOnly, admin.ModelAdmin):
    class Media:
        css = {"all": ("messenger/admin-forms.css",)}

    form = BranchAdminForm
    fieldsets = (
        (None, {"fields": ("name", "timezone", "holiday_calendar", "fallback_branch", "is_active")}),
        (_("Working hours"), {"fields": ("always_open", "working_hours")}),
    )
    list_display = ("name", "timezone", "holiday_calendar", "fallback_branch", "is_active", "created_at")
    list_filter = ("is_active", "timezone")
    search_fields = ("name",)
    list_select_related = ("fallback_branch",)
    autocomplete_fields = ("fallback_branch",)
    inlines = (RoutingRuleInline,)


class RegionAdminForm(forms.ModelForm):
    """The GeoIP codes as text (``RU, BY, RU-MOW``), not as a JSON list."""

    geoip_codes = forms.CharField(
        label=_("GeoIP codes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "Country codes (RU) or region codes (RU-MOW) as the GeoIP database gives them, separated by commas, "
            "spaces or new lines. A code belongs to one region only."
        ),
    )

    class Meta:
        model = Region
        fields = ("name", "geoip_codes")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.geoip_codes if isinstance(self.instance.geoip_codes, list) else []
        self.initial["geoip_codes"] = ", ".join(str(code) for code in stored)

    def clean_geoip_codes(self) -> list[str]:
        """The typed codes as a list; ``Region.clean`` checks them."""
        return [code for code in re.split(r"[\s,;]+", self.cleaned_data["geoip_codes"]) if code]


@admin.register(Region)
class RegionAdmin(FormShownReadOnly, admin.ModelAdmin):
    form = RegionAdminForm
    list_display = ("name", "codes")
    search_fields = ("name",)
    inlines = (RoutingRuleInline,)

    @admin.display(description=_("GeoIP codes"))
    def codes(self, obj: Region) -> str:
        return ", ".join(str(code) for code in obj.geoip_codes) if isinstance(obj.geoip_codes, list) else "—"


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "region", "branch", "priority", "is_active")
    list_editable = ("priority", "is_active")
    list_filter = ("is_active", "branch", "region")
    search_fields = ("region__name", "branch__name")
    list_select_related = ("region", "branch")
    autocomplete_fields = ("region", "branch")


# --- Staff ---------------------------------------------------------------------------------------

# ``status`` is the operator's own switch (dashboard); flipping it here would skip the presence
# broadcast and the queue sweep that ``do_set_status`` performs.
AGENT_READONLY = ("status", "last_seen", "last_assigned_at")


class AgentProfileInline(admin.StackedInline):
    model = AgentProfile
    fk_name = "user"
    can_delete = False
    extra = 0
    max_num = 1
    fields = (
        "role",
        "branch",
        "max_concurrent",
        "language",
        "status",
        "last_seen",
        "email_when_unread",
        "email_unread_minutes",
    )
    readonly_fields = AGENT_READONLY
    verbose_name = _("agent profile")


def save_changed_fields(form: forms.ModelForm) -> None:
    """Save a new profile whole, an existing one only in the fields the form changed.

    Presence actions write ``status``/``last_seen`` concurrently; a full save from a page opened
    earlier would put stale values back.
    """
    instance = form.instance
    if instance.pk is None:
        instance.save()
    elif form.changed_data:
        instance.save(update_fields=form.changed_data)


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = (*DjangoUserAdmin.inlines, AgentProfileInline)
    list_display = ("username", "email", "first_name", "last_name", "agent_role", "agent_branch", "is_staff")
    list_select_related = ("agent", "agent__branch")
    list_filter = (*DjangoUserAdmin.list_filter, "agent__role", "agent__branch")

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is not AgentProfile:
            super().save_formset(request, form, formset, change)
            return
        # The admin's change message reads these lists, which formset.save() would have filled.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for profile_form in formset.forms:
            if not profile_form.has_changed():
                continue
            is_new = profile_form.instance.pk is None
            profile_form.save(commit=False)
            save_changed_fields(profile_form)
            if is_new:
                formset.new_objects.append(profile_form.instance)
            else:
                formset.changed_objects.append((profile_form.instance, profile_form.changed_data))

    @admin.display(description=_("role"), ordering="agent__role")
    def agent_role(self, obj: Any) -> str:
        profile = getattr(obj, "agent", None)
        return profile.get_role_display() if profile else "—"

    @admin.display(description=_("branch"), ordering="agent__branch__name")
    def agent_branch(self, obj: Any) -> str:
        profile = getattr(obj, "agent", None)
        return str(profile.branch) if profile and profile.branch_id else "—"


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "branch", "status", "max_concurrent", "last_seen")
    list_filter = ("role", "status", "branch")
    search_fields = ("user__username", "user__first_name", "user__last_name", "user__email")
    list_select_related = ("user", "branch")
    autocomplete_fields = ("user", "branch")
    readonly_fields = AGENT_READONLY

    def save_model(self, request: HttpRequest, obj: AgentProfile, form: forms.ModelForm, change: bool) -> None:
        save_changed_fields(form)


@admin.register(AgentConnection)
class AgentConnectionAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("user", "channel_name", "connected_at", "last_heartbeat")
    list_filter = ("connected_at",)
    search_fields = ("user__username", "channel_name")
    list_select_related = ("user",)


@admin.register(PresencePeriod)
class PresencePeriodAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """Time online / away / busy (docs/analytics.md): written by the presence actions only."""

    list_display = ("user", "status", "started_at", "ended_at")
    list_filter = ("status", "started_at")
    search_fields = ("user__username",)
    list_select_related = ("user",)
    date_hierarchy = "started_at"


# --- Inbox ---------------------------------------------------------------------------------------

# Content types the sniffer of ``messenger.actions.attachments`` recognises, offered as boxes; a
# stored type not listed here is offered too, so that saving keeps it.
ATTACHMENT_TYPES = (
    ("image/png", _("PNG images")),
    ("image/jpeg", _("JPEG images")),
    ("image/gif", _("GIF images")),
    ("image/webp", _("WebP images")),
    ("image/heic", _("HEIC images (iPhone)")),
    ("application/pdf", _("PDF documents")),
    ("text/plain", _("Plain text")),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _("Word documents (.docx)")),
    ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _("Excel spreadsheets (.xlsx)")),
    ("application/zip", _("ZIP archives")),
    ("audio/mpeg", _("MP3 audio")),
    ("video/mp4", _("MP4 video")),
)
# The switches of ``settings.features`` the widget and the server read (DEFAULTS["features"]).
FEATURES = (
    ("attachments", _("Visitors may send files")),
    ("emoji", _("Emoji picker in the widget")),
    ("pre_chat_form", _("Ask the pre-chat form before the first message")),
    ("queue_position", _("Tell a waiting visitor their place in the queue")),
    ("typing_preview", _("Operators see what the visitor is typing before it is sent")),
)
MIB = 1024 * 1024
BOXES = forms.CheckboxSelectMultiple(attrs={"class": "messenger-boxes"})


def split_lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def strings(value: Any) -> list[str]:
    """A stored list of texts as the form shows it: a lone text (stored before the check) is one
    line, not a line per character; anything else is nothing."""
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def allowed_host(domain: str) -> str:
    """'https://Магазин.рф:8443/' → 'xn--80aa…', '*.Example.com' → '*.example.com'; else ValidationError."""
    wildcard = domain.startswith("*.")
    rest = domain[2:] if wildcard else domain
    try:
        parts = urlsplit(rest if "//" in rest else f"//{rest}")
        parts.port  # noqa: B018 — raises on a port that is not a number
        host = (parts.hostname or "").rstrip(".")
        if not host or "*" in rest or " " in rest or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(domain)
        host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise ValidationError(
            _("%(domain)s is not a host name: write shop.example.com, or *.example.com for every subdomain."),
            params={"domain": domain},
        ) from None
    return f"*.{host}" if wildcard else host


def stored_settings_problems(stored: Any) -> list[str]:
    try:
        validate_settings(stored)
    except ValidationError as error:
        return error.messages
    return []


def megabytes(size: int) -> Decimal:
    return (Decimal(size) / MIB).quantize(Decimal("0.01"))


class InboxAdminForm(forms.ModelForm):
    """Edits every key of ``Inbox.settings`` as form fields: text, boxes, rows of hours and of
    pre-chat fields. The result is merged over the stored settings (keys no field knows, such as
    a feature switch of a later version, are kept) and checked by ``validate_settings``, the
    check ``Inbox.save`` applies, before anything is stored."""

    allowed_domains = forms.CharField(
        label=_("Allowed domains"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line: shop.example.com, or *.example.com for every subdomain."),
    )
    offline_enabled = forms.BooleanField(label=_("Offline form enabled"), required=False)
    offline_message = forms.CharField(
        label=_("Offline message"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    offline_collect_contact = forms.BooleanField(
        label=_("Offer the visitor a form to leave their contact details"), required=False
    )
    privacy_url = forms.URLField(label=_("Privacy policy URL"), required=False, assume_scheme="https")
    privacy_text = forms.CharField(
        label=_("Privacy notice"), required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )
    working_hours_enabled = forms.BooleanField(label=_("Working hours enabled"), required=False)
    working_hours_use_branch = forms.BooleanField(
        label=_("Follow the branch's hours"),
        required=False,
        help_text=_("Take days, time zone and holidays from the branch instead of the fields below."),
    )
    working_hours_timezone = forms.CharField(
        label=_("Time zone"),
        required=False,
        max_length=64,
        help_text=_("For example Europe/Moscow. Empty: the branch's time zone (UTC for a global inbox)."),
    )
    hours = WeeklyHoursField(
        label=_("Opening hours"),
        help_text=_(
            "Local time of the time zone above. Several intervals a day for a break; a day ticked closed is closed."
        ),
    )
    holidays = forms.CharField(
        label=_("Holidays"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One date per line, YYYY-MM-DD."),
    )
    rating_enabled = forms.BooleanField(label=_("Ask for a rating"), required=False)
    rating_scale = forms.ChoiceField(
        label=_("Rating scale"), choices=[("stars", _("Stars (1-5)")), ("nps", _("NPS (0-10)"))]
    )
    auto_reply_enabled = forms.BooleanField(label=_("Auto-reply enabled"), required=False)
    auto_reply_message = forms.CharField(
        label=_("Auto-reply message"), required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )
    out_of_hours_reply = forms.CharField(
        label=_("Out-of-hours reply"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Sent on a visitor's first message outside working hours. Empty: the offline message."),
    )
    widget_color = forms.RegexField(
        label=_("Widget colour"),
        regex=r"^#[0-9a-fA-F]{6}$",
        error_messages={"invalid": _("A colour like #2563eb.")},
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    widget_title = forms.CharField(label=_("Widget title"), required=False, max_length=120)
    widget_greeting = forms.CharField(
        label=_("Greeting"), required=False, max_length=1000, widget=forms.Textarea(attrs={"rows": 2})
    )
    widget_position = forms.ChoiceField(
        label=_("Widget position"), choices=[("right", _("Bottom right")), ("left", _("Bottom left"))]
    )
    widget_language = forms.ChoiceField(
        label=_("Widget language"),
        required=False,
        choices=[("", _("Visitor's browser")), ("en", _("English")), ("ru", _("Russian"))],
    )
    features = forms.MultipleChoiceField(label=_("Features"), required=False, choices=FEATURES, widget=BOXES)
    attachments_max_size = forms.DecimalField(
        label=_("Largest file (MB)"),
        required=False,
        max_digits=9,
        decimal_places=2,
    )
    attachments_allowed_types = forms.MultipleChoiceField(
        label=_("Files visitors and operators may send"),
        required=False,
        choices=ATTACHMENT_TYPES,
        widget=BOXES,
        help_text=_("The type is read from the file's content, not from its name."),
    )
    pre_chat_fields = PreChatFieldsField(
        label=_("Pre-chat form fields"),
        help_text=_(
            "Asked when the pre-chat form feature is on. The names name, email and phone fill the contact; "
            "others are kept as the contact's attributes under that name. No fields: name and e-mail, both "
            "required. To add a field, fill an empty row; to delete one, tick Remove."
        ),
    )
    escalation_timeout = forms.IntegerField(
        label=_("Escalation timeout (seconds)"),
        required=False,
        min_value=MIN_ESCALATION_TIMEOUT_SECONDS,
        max_value=MAX_ESCALATION_TIMEOUT_SECONDS,
        help_text=_("From 10 to 604800 (a week). Empty: the server default (MESSENGER_ESCALATION_TIMEOUT_SECONDS)."),
    )

    class Meta:
        model = Inbox
        fields = ("name", "branch", "is_active", "notification_emails")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.settings if self.instance.pk else {}
        # Settings stored before the check existed (a shell, a migration) may not fit the schema:
        # the fields show what the server can read of them, the problems are listed above them
        # (``stored_problems``), and saving drops what could never be valid.
        self.stored_problems = stored_settings_problems(stored)
        self.stored = known_settings(copy.deepcopy(stored))
        # Defaults rather than effective settings: the server-wide fallbacks (privacy text,
        # escalation timeout) must not be copied into the inbox when it is saved.
        current = deep_merge(DEFAULTS, self.stored)
        hours = current["working_hours"]
        attachments = current["attachments"]
        attachments["allowed_types"] = strings(attachments["allowed_types"])
        server_limit = django_settings.MESSENGER_ATTACHMENT_MAX_SIZE
        stored_size = self.stored.get("attachments", {}).get("max_size")
        if isinstance(stored_size, bool):
            stored_size = None
        initial = {
            "allowed_domains": "\n".join(strings(current["security"]["allowed_domains"])),
            "offline_enabled": current["offline"]["enabled"],
            "offline_message": current["offline"]["message"],
            "offline_collect_contact": current["offline"]["collect_contact"],
            "privacy_url": current["privacy"]["url"],
            "privacy_text": current["privacy"]["text"],
            "working_hours_enabled": hours["enabled"],
            "working_hours_use_branch": hours["use_branch_hours"],
            "working_hours_timezone": hours["timezone"],
            "hours": hours["days"],
            "holidays": "\n".join(strings(hours["holidays"])),
            "rating_enabled": current["rating"]["enabled"],
            "rating_scale": current["rating"]["scale"],
            "auto_reply_enabled": current["automation"]["auto_reply"]["enabled"],
            "auto_reply_message": current["automation"]["auto_reply"]["message"],
            "out_of_hours_reply": current["automation"]["out_of_hours_reply"],
            "widget_color": current["widget"]["color"],
            "widget_title": current["widget"]["title"],
            "widget_greeting": current["widget"]["greeting"],
            "widget_position": current["widget"]["position"],
            "widget_language": current["widget"]["language"],
            "features": [key for key, _label in FEATURES if current["features"].get(key)],
            "attachments_max_size": megabytes(stored_size) if isinstance(stored_size, int) else None,
            "attachments_allowed_types": attachments["allowed_types"],
            "pre_chat_fields": current["pre_chat"]["fields"],
            "escalation_timeout": current["escalation"]["timeout_seconds"],
        }
        for name, value in initial.items():
            self.fields[name].initial = value
        known = {value for value, _label in ATTACHMENT_TYPES}
        extra = [(value, value) for value in attachments["allowed_types"] if value not in known]
        self.fields["attachments_allowed_types"].choices = [*ATTACHMENT_TYPES, *extra]
        help_text = _(
            "1 MB = 1 048 576 bytes; at most %(limit)s MB, the server's limit (MESSENGER_ATTACHMENT_MAX_SIZE). "
            "Empty: that limit."
        ) % {"limit": megabytes(server_limit)}
        if isinstance(stored_size, int):
            help_text += " " + _("Stored: %(bytes)s bytes (kept unless this field is changed).") % {
                "bytes": stored_size
            }
        self.fields["attachments_max_size"].help_text = help_text
        if problems := schedule_problems(hours["days"]):
            self.fields["hours"].help_text = format_html(
                "<strong>{}</strong> {}",
                _("The stored hours are not valid; those days count as closed until saved here:"),
                " ".join(problems),
            )

    def clean_allowed_domains(self) -> list[str]:
        """Each line as the host a browser's Origin names (``domain_allowed`` compares hosts):
        lower case, an international name in its ASCII form (xn--…), no scheme, port or path."""
        hosts = []
        for domain in split_lines(self.cleaned_data["allowed_domains"]):
            hosts.append(allowed_host(domain))
        return list(dict.fromkeys(hosts))

    def clean_working_hours_timezone(self) -> str:
        value = self.cleaned_data["working_hours_timezone"].strip()
        if value:
            validate_timezone(value)
        return value

    def clean_holidays(self) -> list[str]:
        days = []
        for line in split_lines(self.cleaned_data["holidays"]):
            try:
                days.append(date.fromisoformat(line).isoformat())
            except ValueError as error:
                raise ValidationError(_("%(value)s is not a date (YYYY-MM-DD)."), params={"value": line}) from error
        return sorted(set(days))

    def clean_attachments_max_size(self) -> int | None:
        """Bytes. An unchanged field keeps the stored number exactly (the MB shown are rounded)."""
        value = self.cleaned_data["attachments_max_size"]
        stored = self.stored.get("attachments", {}).get("max_size")
        if "attachments_max_size" not in self.changed_data:
            return stored if isinstance(stored, int) else None
        if value is None:
            return None
        size = int(value * MIB)
        if value < Decimal("0.01"):
            raise ValidationError(_("At least 0.01 MB."))
        limit = django_settings.MESSENGER_ATTACHMENT_MAX_SIZE
        if size > limit:
            raise ValidationError(
                _("At most %(limit)s MB: the server's limit (MESSENGER_ATTACHMENT_MAX_SIZE)."),
                params={"limit": megabytes(limit)},
            )
        return size

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        days, problems = hours_from_rows(cleaned.get("hours"))
        follows_own_hours = cleaned.get("working_hours_enabled") and not cleaned.get("working_hours_use_branch")
        if not problems and follows_own_hours and not any(days.values()):
            problems = [
                _(
                    "Working hours are on, yet every day is ticked closed: visitors would always find the inbox "
                    "closed. Enter the hours of a day, or untick Working hours enabled."
                )
            ]
        if problems:
            self.add_error("hours", problems)
        fields, problems = pre_chat_from_rows(cleaned.get("pre_chat_fields"))
        if problems:
            self.add_error("pre_chat_fields", problems)
        features = cleaned.get("features") or []
        if "attachments" in features and not cleaned.get("attachments_allowed_types"):
            self.add_error(
                "attachments_allowed_types",
                _("Tick at least one type, or untick the feature that lets visitors send files."),
            )
        if self.errors:
            return cleaned
        attachments: dict[str, Any] = {"allowed_types": cleaned["attachments_allowed_types"]}
        if cleaned["attachments_max_size"] is not None:
            attachments["max_size"] = cleaned["attachments_max_size"]
        edited = {
            "security": {"allowed_domains": cleaned["allowed_domains"]},
            "offline": {
                "enabled": cleaned["offline_enabled"],
                "message": cleaned["offline_message"],
                "collect_contact": cleaned["offline_collect_contact"],
            },
            "privacy": {"url": cleaned["privacy_url"], "text": cleaned["privacy_text"]},
            "working_hours": {
                "enabled": cleaned["working_hours_enabled"],
                "use_branch_hours": cleaned["working_hours_use_branch"],
                "timezone": cleaned["working_hours_timezone"],
                "holidays": cleaned["holidays"],
            },
            "automation": {
                "auto_reply": {"enabled": cleaned["auto_reply_enabled"], "message": cleaned["auto_reply_message"]},
                "out_of_hours_reply": cleaned["out_of_hours_reply"],
            },
            "rating": {"enabled": cleaned["rating_enabled"], "scale": cleaned["rating_scale"]},
            "features": {key: key in features for key, _label in FEATURES},
            "widget": {
                "color": cleaned["widget_color"],
                "title": cleaned["widget_title"],
                "greeting": cleaned["widget_greeting"],
                "position": cleaned["widget_position"],
                "language": cleaned["widget_language"],
            },
            "escalation": {"timeout_seconds": cleaned["escalation_timeout"]},
        }
        merged = deep_merge(self.stored, edited)
        # Replaced, not merged: a day closed in the form is closed, a removed field is gone, the
        # size left empty is the server's limit.
        merged["working_hours"]["days"] = {day: intervals for day, intervals in days.items() if intervals}
        merged["pre_chat"] = {**merged.get("pre_chat", {}), "fields": fields}
        merged["attachments"] = attachments
        try:
            validate_settings(merged)
        except ValidationError as error:
            self.add_error(None, error)
            return cleaned
        self.instance.settings = merged
        return cleaned


class ProactiveTriggerInline(admin.StackedInline):
    """The inbox's automatic invitations (docs/widget.md, "Invitations"); the model's ``clean``
    checks the numbers and the message."""

    model = ProactiveTrigger
    extra = 0
    fields = (
        ("name", "is_active"),
        ("kind", "seconds", "page_number"),
        "url_pattern",
        "message",
        "only_within_working_hours",
    )


@admin.register(ProactiveTrigger)
class ProactiveTriggerAdmin(admin.ModelAdmin):
    """Every inbox's automatic invitations in one list; each is also edited on its inbox's page."""

    list_display = ("name", "inbox", "kind", "seconds", "page_number", "url_pattern", "is_active")
    list_filter = ("is_active", "kind", "inbox")
    search_fields = ("name", "url_pattern", "message")
    list_select_related = ("inbox",)
    fields = ("inbox", *ProactiveTriggerInline.fields)


@admin.register(Inbox)
class InboxAdmin(FormShownReadOnly, admin.ModelAdmin):
    inlines = [ProactiveTriggerInline]

    class Media:
        css = {"all": ("messenger/admin-forms.css",)}

    form = InboxAdminForm
    list_display = ("name", "branch", "is_active", "domains", "created_at")
    list_filter = ("is_active", "branch")
    search_fields = ("name", "widget_token")
    list_select_related = ("branch",)
    fieldsets = (
        (None, {"fields": ("name", "branch", "is_active", "widget_token", "embed_snippet")}),
        (_("Security"), {"fields": ("allowed_domains",)}),
        (
            _("Widget"),
            {"fields": ("widget_title", "widget_greeting", "widget_color", "widget_position", "widget_language")},
        ),
        (
            _("Offline and privacy"),
            {
                "fields": (
                    "offline_enabled",
                    "offline_message",
                    "offline_collect_contact",
                    "notification_emails",
                    "privacy_url",
                    "privacy_text",
                )
            },
        ),
        (
            _("Working hours"),
            {
                "fields": (
                    "working_hours_enabled",
                    "working_hours_use_branch",
                    "working_hours_timezone",
                    "hours",
                    "holidays",
                )
            },
        ),
        (
            _("Automation and rating"),
            {
                "fields": (
                    "auto_reply_enabled",
                    "auto_reply_message",
                    "out_of_hours_reply",
                    "rating_enabled",
                    "rating_scale",
                )
            },
        ),
        (_("Features and files"), {"fields": ("features", "attachments_max_size", "attachments_allowed_types")}),
        (_("Pre-chat form"), {"fields": ("pre_chat_fields",)}),
        (_("Escalation"), {"fields": ("escalation_timeout",)}),
        (_("Stored settings"), {"classes": ("collapse",), "fields": ("stored_settings",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Inbox | None = None) -> tuple[str, ...]:
        # The branch is chosen once (Inbox.save refuses a change): conversations keep pointing at it.
        if obj is None:
            return ("widget_token", "embed_snippet", "stored_settings")
        return ("branch", "widget_token", "embed_snippet", "stored_settings")

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        problems = getattr(context["adminform"].form, "stored_problems", [])
        if problems:
            messages.warning(
                request,
                format_html(
                    "{} {}",
                    _(
                        "The stored settings are not valid (written before the check existed); the fields show what "
                        "the server reads of them, and saving stores what they show:"
                    ),
                    "; ".join(problems),
                ),
            )
        return super().render_change_form(request, context, *args, **kwargs)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = _current_request.set(request)
        try:
            response = super().changeform_view(request, *args, **kwargs)
            # Rendered here, while the request is still visible to ``embed_snippet``.
            if isinstance(response, TemplateResponse):
                response.render()
            return response
        finally:
            _current_request.reset(token)

    @admin.display(description=_("Allowed domains"))
    def domains(self, obj: Inbox) -> str:
        return ", ".join(obj.allowed_domains) or "—"

    @admin.display(description=_("Settings as stored (JSON)"))
    def stored_settings(self, obj: Inbox | None) -> str:
        """What the server reads (over the defaults), for support; edited through the fields above."""
        return pretty_json(obj.settings if obj is not None and obj.pk else {})

    @admin.display(description=_("Embed snippet"))
    def embed_snippet(self, obj: Inbox | None) -> str:
        if obj is None or not obj.pk:
            return _("Shown after the inbox is saved.")
        origin = widget_origin(_current_request.get())
        # One stable URL for both: the loader fetches the current widget.js (docs/widget.md).
        embed = f'<script async src="{origin}/static/messenger/widget-loader.js" data-widget-token="{obj.widget_token}"'
        return format_html(
            "<p>{}</p><pre style='white-space: pre-wrap'>{}</pre><p>{}</p><pre style='white-space: pre-wrap'>{}</pre>",
            _("Paste before </body> on a page of an allowed domain:"),
            embed + ' data-load-after="0"></script>',
            _("Or the lazy loader, which fetches the widget 3 seconds after the page loads:"),
            embed + ' data-load-after="3"></script>',
        )


def widget_origin(request: HttpRequest | None) -> str:
    """The public origin of this server: MESSENGER_PUBLIC_WS_URL when set, else the request's."""
    public = django_settings.MESSENGER_PUBLIC_WS_URL
    if public:
        scheme, _sep, rest = public.partition("://")
        host = rest.split("/", 1)[0]
        return f"{'https' if scheme == 'wss' else 'http'}://{host}"
    if request is None:
        return ""
    return f"{request.scheme}://{request.get_host()}"


# --- Contacts ------------------------------------------------------------------------------------


class ContactInboxInline(admin.TabularInline):
    model = ContactInbox
    extra = 0
    can_delete = False
    # The pubsub token authorises the visitor's socket: it is never displayed.
    fields = ("inbox", "source_id", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("__str__", "email", "phone", "region", "blocked", "last_activity_at", "created_at")
    list_filter = ("blocked", "region", "created_at")
    search_fields = ("name", "email", "phone", "external_id")
    date_hierarchy = "created_at"
    list_select_related = ("region",)
    readonly_fields = ("last_activity_at", "anonymized_at", "created_at")
    inlines = (ContactInboxInline,)


@admin.register(ContactInbox)
class ContactInboxAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("contact", "inbox", "source_id", "created_at")
    list_filter = ("inbox",)
    search_fields = ("source_id", "contact__name", "contact__email")
    list_select_related = ("contact", "inbox")
    exclude = ("pubsub_token",)


# --- Conversations and messages ------------------------------------------------------------------


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "direction", "sender_type", "sender", "body", "read_at")
    readonly_fields = fields
    ordering = ("created_at", "id")
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).select_related("sender_user", "sender_contact")

    @admin.display(description=_("sender"))
    def sender(self, obj: Message) -> str:
        return str(obj.sender_user or obj.sender_contact or obj.get_sender_type_display())


# Everything a conversation's life changes: written by the actions only (see the module docstring).
CONVERSATION_STATE_FIELDS = (
    "identifier",
    "branch",
    "region",
    "status",
    "priority",
    "assignee",
    "labels",
    "assignee_assigned_at",
    "assignee_opened_at",
    "assignee_last_read_at",
    "escalation_deadline",
    "escalation_count",
    "waiting_since",
    "first_reply_created_at",
    "last_activity_at",
    "contact_last_seen_at",
    "agent_last_seen_at",
    "snoozed_until",
    "resolved_at",
    "rating_score",
    "rating_comment",
    "rating_scale",
    "rated_at",
    "rating_requested_at",
    "unread_for_agent",
    "unread_for_contact",
    "last_message_preview",
    "last_seq",
    "last_public_seq",
    "created_at",
    "updated_at",
    "routing_log_display",
)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """No "add": a conversation is started by its visitor's first message or file, through the
    visitor's one door (``intake.visitor_conversation``: routing, assignment, audit row, event, one
    active conversation per visitor). An empty one made here would have no visitor waiting on it,
    yet hold that visitor's one active place."""

    list_display = (
        "id",
        "contact",
        "inbox",
        "branch",
        "status",
        "priority",
        "assignee",
        "escalation_count",
        "last_activity_at",
        "created_at",
    )
    list_filter = ("status", "priority", "branch", "inbox", "region", "labels", "created_at")
    search_fields = ("identifier", "contact__name", "contact__email", "contact__phone", "last_message_preview")
    date_hierarchy = "created_at"
    list_select_related = ("contact", "inbox", "branch", "assignee")
    autocomplete_fields = ("contact",)
    raw_id_fields = ("contact_inbox",)
    inlines = (MessageInline,)
    fieldsets = (
        (None, {"fields": ("identifier", "inbox", "contact", "branch", "region", "status", "priority", "labels")}),
        (
            _("Assignment"),
            {
                "fields": (
                    "assignee",
                    "assignee_assigned_at",
                    "assignee_opened_at",
                    "assignee_last_read_at",
                    "escalation_deadline",
                    "escalation_count",
                    "routing_log_display",
                )
            },
        ),
        (
            _("Timeline"),
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "waiting_since",
                    "first_reply_created_at",
                    "last_activity_at",
                    "contact_last_seen_at",
                    "agent_last_seen_at",
                    "snoozed_until",
                    "resolved_at",
                )
            },
        ),
        (
            _("Rating"),
            {"fields": ("rating_score", "rating_scale", "rating_comment", "rated_at", "rating_requested_at")},
        ),
        (
            _("Attributes"),
            {"fields": ("additional_attributes", "custom_attributes"), "classes": ("collapse",)},
        ),
        (
            _("Counters"),
            {
                "fields": (
                    "unread_for_agent",
                    "unread_for_contact",
                    "last_message_preview",
                    "last_seq",
                    "last_public_seq",
                ),
                "classes": ("collapse",),
            },
        ),
    )

    # The inbox is fixed at creation and the branch is derived (Conversation.save enforces both).
    readonly_fields = ("inbox", "contact", "contact_inbox", *CONVERSATION_STATE_FIELDS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Conversation, form: forms.ModelForm, change: bool) -> None:
        # Only the attribute fields are editable; a full save would write back a status or
        # assignee that an action changed while this page was open.
        fields = [name for name in form.changed_data if name in ("additional_attributes", "custom_attributes")]
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])

    @admin.display(description=_("routing log"))
    def routing_log_display(self, obj: Conversation) -> str:
        return pretty_json(obj.routing_log)


@admin.register(ConversationEvent)
class ConversationEventAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("conversation", "seq", "public_seq", "type", "created_at")
    list_filter = ("type", "created_at")
    search_fields = ("conversation__identifier", "type")
    date_hierarchy = "created_at"
    list_select_related = ("conversation__contact",)
    raw_id_fields = ("conversation",)


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    can_delete = False
    fields = ("original_name", "content_type", "size", "width", "height", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """View-only: messages are written by the send actions (events, counters, receipts)."""

    list_display = ("id", "conversation", "direction", "sender_type", "short_body", "created_at", "read_at")
    list_filter = ("direction", "sender_type", "created_at")
    search_fields = ("body", "client_id", "conversation__identifier")
    date_hierarchy = "created_at"
    list_select_related = ("conversation__contact",)
    raw_id_fields = ("conversation", "sender_contact", "sender_user")
    inlines = (AttachmentInline,)

    @admin.display(description=_("text"))
    def short_body(self, obj: Message) -> str:
        return obj.body[:80]


@admin.register(Attachment)
class AttachmentAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("original_name", "content_type", "size", "conversation", "message", "created_at")
    list_filter = ("content_type", "created_at")
    search_fields = ("original_name",)
    date_hierarchy = "created_at"
    list_select_related = ("conversation__contact", "message")
    raw_id_fields = ("conversation", "message", "uploaded_by_contact", "uploaded_by_user")


# --- Audit log -----------------------------------------------------------------------------------


@admin.register(ActivityEvent)
class ActivityEventAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "actor", "verb", "target", "conversation", "ip")
    list_filter = ("verb", "created_at", "actor_label", ("actor_user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("verb", "target_id", "actor_user__username", "actor_label")
    date_hierarchy = "created_at"
    list_select_related = ("actor_user", "actor_contact", "conversation__contact")
    raw_id_fields = ("actor_user", "actor_contact", "conversation")
    fields = (
        "created_at",
        "actor_user",
        "actor_contact",
        "actor_label",
        "verb",
        "target_type",
        "target_id",
        "conversation",
        "ip",
        "payload_display",
    )
    readonly_fields = fields

    @admin.display(description=_("actor"))
    def actor(self, obj: ActivityEvent) -> str:
        return str(obj.actor_user or obj.actor_contact or obj.actor_label or "—")

    @admin.display(description=_("target"))
    def target(self, obj: ActivityEvent) -> str:
        return f"{obj.target_type}:{obj.target_id}" if obj.target_type else "—"

    @admin.display(description=_("payload"))
    def payload_display(self, obj: ActivityEvent) -> str:
        return pretty_json(obj.payload)


# --- Integrations --------------------------------------------------------------------------------


class WebhookForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label=_("Events"),
        required=False,
        choices=[(event, event) for event in WEBHOOK_EVENTS],
        widget=BOXES,
        help_text=_("None ticked: every event, including event types added by later versions."),
    )

    class Meta:
        model = Webhook
        fields = ("inbox", "url", "events", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A stored name that is no event (a row written by a shell or an older version) is shown
        # ticked: dropping it unseen would leave no box ticked, which subscribes to every event.
        # Saving it ticked names it in the model's error; unticking it is the admin's choice.
        # A view-only form has no model fields, so no initial values from the row.
        self.initial.setdefault("url", self.instance.url)
        self.initial.setdefault("events", self.instance.events)
        stored = self.instance.events if self.instance.pk and isinstance(self.instance.events, list) else []
        extra = [(name, name) for name in stored if isinstance(name, str) and name not in WEBHOOK_EVENTS]
        if extra:
            self.fields["events"].choices = [*self.fields["events"].choices, *extra]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_http.check_url(url)
        except webhook_http.NonPublicAddress as error:
            raise ValidationError(
                _("%(error)s (MESSENGER_WEBHOOK_ALLOW_PRIVATE=1 allows private targets)."),
                code="unsafe_target",
                params={"error": error},
            ) from None
        except webhook_http.UnsafeTarget as error:
            # Not an address: no setting allows it, so none is named.
            raise ValidationError(_("%(error)s."), code="unsafe_target", params={"error": error}) from None
        return url


@admin.register(Webhook)
class WebhookAdmin(FormShownReadOnly, admin.ModelAdmin):
    class Media:
        css = {"all": ("messenger/admin-forms.css",)}

    form = WebhookForm
    formfield_overrides = {URLField: {"assume_scheme": "https"}}
    list_display = ("url", "inbox", "event_list", "is_active", "consecutive_failures", "disabled_at", "disabled_reason")
    list_filter = ("is_active", "inbox")
    search_fields = ("url",)
    list_select_related = ("inbox",)
    readonly_fields = (
        "secret",
        "previous_secret_expires_at",
        "consecutive_failures",
        "disabled_at",
        "disabled_reason",
        "created_at",
    )
    actions = ("send_test_event", "rotate_secret", "enable")

    @admin.display(description=_("events"))
    def event_list(self, obj: Webhook) -> str:
        """What the deliveries follow (``event_filter``), whatever ``events`` held before its check."""
        if obj.event_filter == ALL_EVENTS_FILTER:
            return _("every event")
        return ", ".join(name for name in obj.event_filter.split(",") if name)

    def save_model(self, request: HttpRequest, obj: Webhook, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and obj.is_active:
            # Re-enabled by hand: the run of failures that disabled it starts over.
            webhook_actions.do_enable_webhook(webhook=obj, actor=Actor(user=request.user))

    @admin.action(description=_("Send a test event (webhook.test)"))
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            webhook_actions.do_send_test_event(webhook=webhook, actor=Actor(user=request.user))
        self.message_user(request, _("Test events queued; see the delivery log in a few seconds."))

    @admin.action(description=_("Rotate the secret (the old one stays valid for a while)"))
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            webhook_actions.do_rotate_secret(webhook=webhook, actor=Actor(user=request.user))
        self.message_user(
            request,
            _("Secrets rotated; requests carry both signatures for %(hours)s h.")
            % {"hours": django_settings.MESSENGER_WEBHOOK_SECRET_OVERLAP_HOURS},
        )

    @admin.action(description=_("Enable (and forget the failures)"))
    def enable(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            webhook_actions.do_enable_webhook(webhook=webhook, actor=Actor(user=request.user))
        self.message_user(request, _("Webhooks enabled."))


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = (
        "event",
        "webhook",
        "status",
        "response_status",
        "duration_ms",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )
    list_filter = ("status", "event", "webhook", "response_status", "created_at")
    search_fields = ("delivery_id", "webhook__url")
    date_hierarchy = "created_at"
    list_select_related = ("webhook",)
    actions = ("redeliver",)

    @admin.action(description=_("Redeliver now (a new delivery of the same event)"))
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            webhook_actions.do_redeliver(delivery=delivery, actor=Actor(user=request.user))
        self.message_user(request, _("Redeliveries queued."))


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(ViewOnlyMixin, admin.ModelAdmin):
    """The e-mail outbox: what was sent, what waits, what failed and why."""

    list_display = ("created_at", "kind", "recipients", "subject", "status", "attempts", "sent_at", "short_error")
    list_filter = ("status", "kind", "created_at")
    search_fields = ("subject", "dedupe_key", "to")
    date_hierarchy = "created_at"
    actions = ("send_again",)
    fields = (
        "kind",
        "to",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "sent_at",
        "created_at",
        "conversation",
        "dedupe_key",
        "text_part",
        "html_part",
    )

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("messenger.change_outgoingemail")

    @admin.display(description=_("to"))
    def recipients(self, obj: OutgoingEmail) -> str:
        return ", ".join(obj.to)

    @admin.display(description=_("text"))
    def text_part(self, obj: OutgoingEmail) -> str:
        return self._body(obj, obj.text)

    @admin.display(description=_("HTML"))
    def html_part(self, obj: OutgoingEmail) -> str:
        return self._body(obj, obj.html)

    def _body(self, obj: OutgoingEmail, body: str) -> str:
        if obj.kind == EmailKind.PASSWORD_RESET:
            return str(_("Not shown: it holds a password reset link."))
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", body)

    @admin.display(description=_("last error"))
    def short_error(self, obj: OutgoingEmail) -> str:
        return obj.last_error[:120]

    @admin.action(description=_("Send again"), permissions=["send_again"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[OutgoingEmail]) -> None:
        count = mail.do_send_again(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, _("%(count)d e-mail(s) will be sent at the next tick.") % {"count": count})


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "branch", "short_text")
    list_filter = ("branch",)
    search_fields = ("short_code", "text")
    list_select_related = ("branch",)

    @admin.display(description=_("text"))
    def short_text(self, obj: CannedResponse) -> str:
        return obj.text[:80]


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ("name", "swatch")
    search_fields = ("name",)

    @admin.display(description=_("colour"))
    def swatch(self, obj: Label) -> str:
        return format_html(
            "<span style='display:inline-block;width:1em;height:1em;background:{}'></span> {}", obj.color, obj.color
        )


# --- GDPR actions on contacts (messenger/admin_privacy.py) ----------------------------------------
from messenger.admin_privacy import install as _install_privacy_actions  # noqa: E402

_install_privacy_actions(ContactAdmin)

# --- REST API tokens (messenger/admin_tokens.py) --------------------------------------------------
from messenger.admin_tokens import install as _install_api_tokens  # noqa: E402

_install_api_tokens(admin.site)
