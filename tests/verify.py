"""What an action broadcasts, checked against the typed definitions of messenger/events.py.

``verify_action(action)`` runs ``action`` and returns the frames that left after its transaction
committed, in order, from either driver: a worker thread (``transaction.on_commit``) or the event
loop (``messenger.db.aio``, whose frames leave after its own COMMIT). Every frame is checked against
its type's shape (no missing field, no unknown one, nested ones too); the caller asserts which
groups got which types with which fields (``summary``).
"""

from __future__ import annotations

import asyncio
import json
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from django.test import TestCase

from messenger import events
from messenger.realtime import broadcast

DURABLE = {event_type.type: event_type for event_type in events.EVENT_TYPES}
EPHEMERAL = {frame_type.type: frame_type for frame_type in events.FRAME_TYPES}
VISITOR_GROUP_PREFIXES = ("v.", "i.")


@dataclass(frozen=True)
class Sent:
    """One frame as it left: the groups, the frame, and the driver that committed it."""

    groups: list[str]
    frame: dict[str, Any]
    driver: str

    @property
    def type(self) -> str:
        return self.frame["type"]

    @property
    def data(self) -> dict[str, Any]:
        return self.frame.get("data", {})

    @property
    def audience(self) -> str:
        visitor = [group.startswith(VISITOR_GROUP_PREFIXES) for group in self.groups]
        assert all(visitor) or not any(visitor), f"staff and visitor groups in one frame: {self.groups}"
        return "visitor" if all(visitor) else "staff"


@contextmanager
def after_commit() -> Iterator[list[Sent]]:
    """The frames that leave while the block runs, each as its transaction commits. Inside a test's
    own transaction, Django's ``on_commit`` callbacks run when the block ends (as at a COMMIT)."""
    sent: list[Sent] = []

    def committed(groups: Any, text: str) -> None:
        try:
            asyncio.get_running_loop()
            driver = "loop"
        except RuntimeError:
            driver = "thread"
        sent.append(Sent(groups=list(groups), frame=json.loads(text), driver=driver))

    with mock.patch.object(broadcast, "_send", committed), TestCase.captureOnCommitCallbacks(execute=True):
        yield sent


def verify_action(action: Callable[[], Any]) -> tuple[Any, list[Sent]]:
    """``action``'s result and the frames it broadcast after commit, each checked against its shape."""
    with after_commit() as sent:
        result = action()
    for one in sent:
        check_frame(one)
    return result, sent


def summary(sent: list[Sent]) -> list[tuple[list[str], str, list[str]]]:
    """(groups, type, the data's fields) of each frame, in order."""
    return [(one.groups, one.type, sorted(one.data)) for one in sent]


def check_frame(sent: Sent) -> None:
    frame = sent.frame
    kind = frame.get("type")
    if kind in DURABLE:
        check_shape(frame, events.DurableFrame, kind)
        event_type = DURABLE[kind]
        shape = event_type.public if sent.audience == "visitor" else event_type.staff
        assert shape is not None, f"{kind} is staff only, but went to {sent.groups}"
        check_shape(frame["data"], shape, f"{kind}.data")
        return
    assert kind in EPHEMERAL, f"{kind!r} is not a type of messenger/events.py"
    failures = []
    for shape in EPHEMERAL[kind].shapes:
        try:
            check_shape(frame, shape, kind)
            return
        except AssertionError as failure:
            failures.append(str(failure))
    raise AssertionError(f"{kind} matches none of its shapes: {failures}")


def check_shape(value: Any, shape: type, path: str) -> None:
    """``value`` holds every required field of the TypedDict ``shape``, no field it lacks, and
    each value of its declared type."""
    assert isinstance(value, dict), f"{path}: an object expected, got {value!r}"
    keys = set(value)
    missing = shape.__required_keys__ - keys
    unknown = keys - shape.__required_keys__ - shape.__optional_keys__
    assert not missing, f"{path}: missing {sorted(missing)}"
    assert not unknown, f"{path}: not in {shape.__name__}: {sorted(unknown)}"
    hints = typing.get_type_hints(shape)
    for key in keys:
        check_value(value[key], hints[key], f"{path}.{key}")


def check_value(value: Any, annotation: Any, path: str) -> None:
    if annotation is Any:
        return
    if typing.is_typeddict(annotation):
        check_shape(value, annotation, path)
        return
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        failures = []
        for option in typing.get_args(annotation):
            try:
                check_value(value, option, path)
                return
            except AssertionError as failure:
                failures.append(str(failure))
        raise AssertionError(f"{path}: {value!r} is none of {annotation}: {failures}")
    if origin is list:
        assert isinstance(value, list), f"{path}: a list expected, got {value!r}"
        (item,) = typing.get_args(annotation)
        for index, element in enumerate(value):
            check_value(element, item, f"{path}[{index}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{path}: an object expected, got {value!r}"
        return
    if annotation is type(None):
        assert value is None, f"{path}: null expected, got {value!r}"
        return
    if annotation is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: an integer expected, got {value!r}"
        return
    assert isinstance(value, annotation), f"{path}: {annotation.__name__} expected, got {value!r}"


def nested_shapes(annotation: Any) -> Iterator[type]:
    """The TypedDicts an annotation names (inside lists and unions too)."""
    if typing.is_typeddict(annotation):
        yield annotation
        return
    for argument in typing.get_args(annotation):
        yield from nested_shapes(argument)


def every_shape() -> list[type]:
    """Every TypedDict a frame can hold: the frames, the events' data and all they contain."""
    todo: list[type] = [events.DurableFrame]
    for event_type in events.EVENT_TYPES:
        todo += [event_type.staff] + ([event_type.public] if event_type.public else [])
    for frame_type in events.FRAME_TYPES:
        todo += list(frame_type.shapes)
    seen: dict[str, type] = {}
    while todo:
        shape = todo.pop(0)
        if shape.__name__ in seen:
            continue
        seen[shape.__name__] = shape
        for annotation in typing.get_type_hints(shape).values():
            todo += list(nested_shapes(annotation))
    return list(seen.values())
