"""OpenAPI pieces every HTTP view shares: the error body, the error responses of an operation, and
response schemas derived from the ``TypedDict`` shapes the code returns.

Every error an API view answers is JSON with at least ``detail``: a domain error
(``messenger.errors``) adds ``code`` (and ``retry_after`` when throttled, and the error's own
fields, e.g. ``challenge``); a validation error has ``code`` ``invalid`` and names the fields in
``errors`` (``messenger.api.errors``).
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, get_type_hints

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(required=False, help_text="A stable machine-readable code, e.g. `not_found`.")
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 and 503).")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors (`code` `invalid`): the messages per input field.",
    )


ERROR_DESCRIPTIONS = {
    400: "Invalid input.",
    401: "Not authenticated.",
    403: "Not allowed.",
    404: "Not found (or not visible to the caller).",
    409: "Conflict with the current state.",
    413: "Too large.",
    415: "Unsupported media type.",
    429: "Too many requests; see `Retry-After`.",
    503: "The database is unavailable for a moment; see `Retry-After`.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, for ``extend_schema(responses={200: ..., **errors(400, 404)})``."""
    return {status: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]) for status in statuses}


# --- response schemas from TypedDicts -------------------------------------------------------------
# The shapes views return are TypedDicts (messenger/events.py, selectors.py, actions): the schema
# is derived from them, so that the documentation cannot drift from the code. Each TypedDict
# becomes one named component.

_SCALARS: dict[Any, type[serializers.Field]] = {
    str: serializers.CharField,
    int: serializers.IntegerField,
    bool: serializers.BooleanField,
    float: serializers.FloatField,
}


def _is_typed_dict(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__")


def _field(hint: Any, **options: Any) -> serializers.Field:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) != 1:
            raise TypeError(f"cannot document the union {hint!r}")
        return _field(present[0], **options, allow_null=type(None) in args)
    if _is_typed_dict(hint):
        return shape_serializer(hint)(**options)
    if origin is list:
        (item,) = args
        if _is_typed_dict(item):
            return shape_serializer(item)(many=True, **options)
        return serializers.ListField(child=_field(item), **options)
    if origin is dict:
        key, value = args
        if value is Any:
            return serializers.DictField(**options)
        return serializers.DictField(child=_field(value), **options)
    if hint is Any:
        return serializers.JSONField(**options)
    if hint in _SCALARS:
        return _SCALARS[hint](**options)
    raise TypeError(f"cannot document the type {hint!r}")


@cache
def shape_serializer(shape: type) -> type[serializers.Serializer]:
    """A response serializer (documentation only) for a ``TypedDict``: its keys, their types,
    which are required and which may be null; its docstring is the component's description."""
    required = shape.__required_keys__  # type: ignore[attr-defined]
    fields = {name: _field(hint, required=name in required) for name, hint in get_type_hints(shape).items()}
    attributes: dict[str, Any] = {**fields, "__module__": shape.__module__}
    if shape.__doc__ and not shape.__doc__.startswith(f"{shape.__name__}("):
        attributes["__doc__"] = shape.__doc__
    return type(shape.__name__, (serializers.Serializer,), attributes)
