"""The schema of ``Inbox.settings``: defaults, validation and typed reads.

Stored settings are partial; ``effective_settings`` deep-merges them over ``DEFAULTS`` so that an
inbox created before a key existed still reads a value for it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import jsonschema
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext

from messenger.working_hours import TIME_PATTERN, WEEKDAYS, schedule_problems

# The pre-chat field types the widget knows (static/messenger/widget.js, ``field``).
PRE_CHAT_TYPES = ("text", "email", "phone", "select")
PRE_CHAT_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# The names that fill the contact itself, each with the one type the server accepts for it
# (``messenger.actions.contacts``: an e-mail address, a phone number, a name as text).
PRE_CHAT_CONTACT_TYPES = {"name": "text", "email": "email", "phone": "phone"}
# The other fields are sent as the contact's ``custom`` attributes, at most this many values
# of at most this many characters each (``contact.update`` refuses more).
PRE_CHAT_MAX_CUSTOM_FIELDS = 30
PRE_CHAT_MAX_VALUE_LENGTH = 500
PRE_CHAT_MAX_LABEL_LENGTH = 200  # the admin's input says as much (``maxlength``)

# An inbox's own escalation timeout: a week at most (a deadline is "now + timeout", and a number
# of seconds past year 9999 made every assignment in the inbox fail).
MIN_ESCALATION_TIMEOUT_SECONDS = 10
MAX_ESCALATION_TIMEOUT_SECONDS = 7 * 24 * 3600

DEFAULTS: dict[str, Any] = {
    "security": {"allowed_domains": []},
    "offline": {"enabled": True, "message": "", "collect_contact": True},
    "privacy": {"url": "", "text": ""},
    "working_hours": {"enabled": False, "timezone": "", "days": {}, "holidays": [], "use_branch_hours": False},
    "automation": {"auto_reply": {"enabled": False, "message": ""}, "out_of_hours_reply": ""},
    "rating": {"enabled": True, "scale": "stars"},
    "features": {
        "attachments": True,
        "typing_preview": False,
        "pre_chat_form": False,
        "emoji": True,
        "queue_position": True,
    },
    "pre_chat": {"fields": []},
    "attachments": {
        "max_size": 10 * 1024 * 1024,
        "allowed_types": ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"],
    },
    "widget": {
        "color": "#2563eb",
        "title": "",
        "greeting": "",
        "position": "right",
        "language": "",
    },
    "escalation": {"timeout_seconds": None},
}

_interval = {
    "type": "array",
    "items": {"type": "string", "pattern": TIME_PATTERN},
    "minItems": 2,
    "maxItems": 2,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "security": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"allowed_domains": {"type": "array", "items": {"type": "string", "minLength": 1}}},
        },
        "offline": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "message": {"type": "string", "maxLength": 2000},
                "collect_contact": {"type": "boolean"},
            },
        },
        "privacy": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"url": {"type": "string"}, "text": {"type": "string", "maxLength": 1000}},
        },
        "working_hours": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "timezone": {"type": "string"},
                "use_branch_hours": {"type": "boolean"},
                "days": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {day: {"type": "array", "items": _interval} for day in WEEKDAYS},
                },
                "holidays": {"type": "array", "items": {"type": "string", "format": "date"}},
            },
        },
        "automation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "auto_reply": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"enabled": {"type": "boolean"}, "message": {"type": "string", "maxLength": 5000}},
                },
                "out_of_hours_reply": {"type": "string", "maxLength": 5000},
            },
        },
        "rating": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"enabled": {"type": "boolean"}, "scale": {"enum": ["stars", "nps"]}},
        },
        "features": {"type": "object", "additionalProperties": {"type": "boolean"}},
        "pre_chat": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "type"],
                        "properties": {
                            "name": {"type": "string", "pattern": PRE_CHAT_NAME_PATTERN},
                            "label": {"type": "string", "maxLength": PRE_CHAT_MAX_LABEL_LENGTH},
                            "type": {"enum": list(PRE_CHAT_TYPES)},
                            "required": {"type": "boolean"},
                            "options": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                }
            },
        },
        "attachments": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_size": {"type": "integer", "minimum": 1},
                "allowed_types": {"type": "array", "items": {"type": "string"}},
            },
        },
        "widget": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                "title": {"type": "string", "maxLength": 120},
                "greeting": {"type": "string", "maxLength": 1000},
                "position": {"enum": ["left", "right"]},
                "language": {"enum": ["", "en", "ru"]},
            },
        },
        "escalation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "timeout_seconds": {
                    "type": ["integer", "null"],
                    "minimum": MIN_ESCALATION_TIMEOUT_SECONDS,
                    "maximum": MAX_ESCALATION_TIMEOUT_SECONDS,
                }
            },
        },
    },
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, object by object. Where ``base`` has an object and
    ``override`` something else (a section stored before the check existed), ``base`` stays:
    the readers of the settings may rely on every section being an object."""
    merged = copy.deepcopy(base)
    for key, value in (override if isinstance(override, dict) else {}).items():
        if isinstance(merged.get(key), dict):
            if isinstance(value, dict):
                merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def pre_chat_problems(fields: Any) -> list[str]:
    """What is wrong with ``pre_chat.fields``, in words naming the field ([] when valid): the
    schema's rules, plus unique names, options exactly for a select, the contact's own names
    with their own types, and no more fields than a visitor's form may send."""
    if not isinstance(fields, list):
        return [gettext("The pre-chat fields must be a list.")]
    problems: list[str] = []
    seen: set[str] = set()
    for number, field in enumerate(fields, start=1):
        if not isinstance(field, dict):
            problems.append(gettext("Pre-chat field %(number)d is not an object.") % {"number": number})
            continue
        name = field.get("name")
        shown = name if isinstance(name, str) and name else str(number)
        where = gettext("Pre-chat field %(name)s") % {"name": f'"{shown}"'}
        if not isinstance(name, str) or not re.fullmatch(PRE_CHAT_NAME_PATTERN, name):
            problems.append(
                gettext(
                    "%(where)s: the name must be 1-40 lowercase Latin letters, digits or _, starting with a "
                    "letter (for example company_size)."
                )
                % {"where": where}
            )
        elif name in seen:
            problems.append(gettext("%(where)s: the name is used twice.") % {"where": where})
        else:
            seen.add(name)
        label = field.get("label", "")
        if not isinstance(label, str):
            problems.append(gettext("%(where)s: the label must be text.") % {"where": where})
        elif len(label) > PRE_CHAT_MAX_LABEL_LENGTH:
            problems.append(
                gettext("%(where)s: the label is longer than %(limit)d characters.")
                % {"where": where, "limit": PRE_CHAT_MAX_LABEL_LENGTH}
            )
        kind = field.get("type")
        if kind not in PRE_CHAT_TYPES:
            problems.append(
                gettext("%(where)s: the type must be one of %(types)s.")
                % {"where": where, "types": ", ".join(PRE_CHAT_TYPES)}
            )
        elif name in PRE_CHAT_CONTACT_TYPES and kind != PRE_CHAT_CONTACT_TYPES[name]:
            problems.append(
                gettext("%(where)s fills the contact's %(name)s, which takes the type %(type)s only.")
                % {"where": where, "name": name, "type": PRE_CHAT_CONTACT_TYPES[name]}
            )
        options = field.get("options")
        if kind == "select":
            if not (isinstance(options, list) and options and all(isinstance(o, str) and o.strip() for o in options)):
                problems.append(gettext("%(where)s: a select needs at least one option.") % {"where": where})
            elif len(set(options)) != len(options):
                problems.append(gettext("%(where)s: an option is listed twice.") % {"where": where})
            elif any(len(option) > PRE_CHAT_MAX_VALUE_LENGTH for option in options):
                problems.append(
                    gettext("%(where)s: an option is longer than %(limit)d characters.")
                    % {"where": where, "limit": PRE_CHAT_MAX_VALUE_LENGTH}
                )
        elif options:
            problems.append(gettext("%(where)s: only a select has options.") % {"where": where})
    custom = [field for field in fields if isinstance(field, dict) and field.get("name") not in PRE_CHAT_CONTACT_TYPES]
    if len(custom) > PRE_CHAT_MAX_CUSTOM_FIELDS:
        problems.append(
            gettext(
                "%(count)d pre-chat fields besides name, email and phone: at most %(limit)d, the most a "
                "visitor's form may send."
            )
            % {"count": len(custom), "limit": PRE_CHAT_MAX_CUSTOM_FIELDS}
        )
    return problems


def known_settings(value: Any) -> dict[str, Any]:
    """``value`` without what ``SCHEMA`` has no place for: keys it does not name, a section
    that is not an object, a feature switch that is not true or false. What is left may still
    be invalid (``validate_settings`` says so); what was dropped could never have been valid."""

    def prune(node: Any, schema: dict[str, Any]) -> Any:
        if schema.get("type") != "object" or not isinstance(node, dict):
            return node
        properties = schema.get("properties", {})
        kept: dict[str, Any] = {}
        for key, item in node.items():
            if key in properties:
                child = properties[key]
                if child.get("type") == "object" and not isinstance(item, dict):
                    continue
                kept[key] = prune(item, child)
            elif isinstance(schema.get("additionalProperties"), dict):
                if jsonschema.Draft202012Validator(schema["additionalProperties"]).is_valid(item):
                    kept[key] = item
        return kept

    return prune(value, SCHEMA) if isinstance(value, dict) else {}


def validate_settings(value: Any) -> None:
    """Raise ValidationError with a readable path when ``value`` does not fit the schema.

    The weekly hours and the pre-chat fields are checked in words first (``schedule_problems``,
    ``pre_chat_problems``: open before close, no overlap, unique names …); the schema's own
    messages for those parts are left out when the words already say what is wrong.
    """
    if not isinstance(value, dict):
        raise ValidationError("Inbox settings must be a JSON object.")
    worded: dict[tuple[str, str], list[str]] = {}
    hours = value.get("working_hours")
    if isinstance(hours, dict) and "days" in hours:
        worded[("working_hours", "days")] = schedule_problems(hours["days"])
    pre_chat = value.get("pre_chat")
    if isinstance(pre_chat, dict) and "fields" in pre_chat:
        worded[("pre_chat", "fields")] = pre_chat_problems(pre_chat["fields"])
    messages = [f"{'.'.join(part)}: {problem}" for part, problems in worded.items() for problem in problems]
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = tuple(str(p) for p in error.absolute_path)
        if worded.get(path[:2]):
            continue
        messages.append(f"{'.'.join(path) or '(root)'}: {error.message}")
    if messages:
        raise ValidationError(messages)


def effective_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    stored = stored if isinstance(stored, dict) else {}
    merged = deep_merge(DEFAULTS, stored)
    stored_attachments = stored.get("attachments")
    if not (isinstance(stored_attachments, dict) and "max_size" in stored_attachments):
        # No size of its own: the server's limit (the admin's "Empty: that limit"), not the
        # default's 10 MiB, which would cap a server configured for larger files.
        merged["attachments"]["max_size"] = django_settings.MESSENGER_ATTACHMENT_MAX_SIZE
    if not merged["privacy"]["url"]:
        merged["privacy"]["url"] = django_settings.MESSENGER_PRIVACY_URL
    if not merged["privacy"]["text"]:
        merged["privacy"]["text"] = django_settings.MESSENGER_PRIVACY_TEXT
    if merged["escalation"]["timeout_seconds"] is None:
        merged["escalation"]["timeout_seconds"] = django_settings.MESSENGER_ESCALATION_TIMEOUT_SECONDS
    return merged


def origin_host(origin: str) -> str:
    """'https://shop.example.com:8443' → 'shop.example.com'."""
    from urllib.parse import urlparse

    parsed = urlparse(origin if "//" in origin else f"//{origin}")
    return (parsed.hostname or "").lower()


def domain_allowed(allowed_domains: list[str], origin: str | None) -> bool:
    """Exact host match, or a suffix match for entries written as '*.example.com'."""
    if not origin:
        return False
    host = origin_host(origin)
    if not host:
        return False
    for entry in allowed_domains:
        entry = entry.strip().lower()
        if entry.startswith("*."):
            if host == entry[2:] or host.endswith(entry[1:]):
                return True
        elif host == origin_host(entry) or host == entry:
            return True
    return False
