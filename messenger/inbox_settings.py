"""The schema of ``Inbox.settings``: defaults, validation and typed reads.

Stored settings are partial; ``effective_settings`` deep-merges them over ``DEFAULTS`` so that an
inbox created before a key existed still reads a value for it.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_PATTERN = r"^([01][0-9]|2[0-4]):[0-5][0-9]$"

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
                            "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"},
                            "label": {"type": "string"},
                            "type": {"enum": ["text", "email", "phone", "select"]},
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
            "properties": {"timeout_seconds": {"type": ["integer", "null"], "minimum": 10}},
        },
    },
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_settings(value: Any) -> None:
    """Raise ValidationError with a readable path when ``value`` does not fit the schema."""
    if not isinstance(value, dict):
        raise ValidationError("Inbox settings must be a JSON object.")
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        messages = [f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}" for error in errors]
        raise ValidationError(messages)


def effective_settings(stored: dict[str, Any] | None) -> dict[str, Any]:
    merged = deep_merge(DEFAULTS, stored or {})
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
