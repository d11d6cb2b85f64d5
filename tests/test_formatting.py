"""Message formatting: the recorded cases (shared with the dashboard's JavaScript, see
tests/test_formatting_browser.py), linear time on the adversarial corpus, safe output for any
body, and a long body sent over the visitor socket leaves the event loop free."""

from __future__ import annotations

import asyncio
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from messenger.formatting import preview, render
from messenger.models import Message
from tests.conftest import new_client_id
from tests.formatting_corpus import adversarial_corpus
from tests.test_throttle import _setup, _visitor

CASES = json.loads((Path(__file__).parent / "formatting_cases.json").read_text())
ANCHOR_ATTRIBUTES = [("target", "_blank"), ("rel", "noopener noreferrer nofollow")]


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_each_case_renders_as_recorded(case):
    assert render(case["body"]) == case["html"]


def test_every_adversarial_body_renders_within_a_second():
    """The bound is generous (bench/formatting.py measures the real figure, a few milliseconds);
    the quadratic renderer took about 45 s for the first body."""
    for name, body in adversarial_corpus(settings.MESSENGER_MESSAGE_MAX_LENGTH).items():
        assert len(body) == settings.MESSENGER_MESSAGE_MAX_LENGTH
        started = time.perf_counter()
        render(body)
        assert time.perf_counter() - started < 1, name


def test_the_preview_is_one_line_cut_at_its_limit():
    assert preview("  Hello\n\n  there\t you ") == "Hello there you"
    assert preview("word " * 100, limit=12) == "word word w…"
    assert preview("a b", limit=1) == "…"
    assert preview(" " * 1000 + "x" * 200 + " y", limit=5) == "xxxx…"
    assert preview("a  " * 60_000) == " ".join(["a"] * 70) + "…"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


MARKUP = st.lists(
    st.sampled_from(
        ["**", "*", "_", "`", "[", "]", "(", ")", "https://e.com/", "http://", "javascript:", "<", ">", "&", '"', "'"]
        + ["=", " ", "\n", "a", "é", ".", "\x01", "\x04", "\x07", "<a href=x>", "onerror="]
    ),
    max_size=40,
).map("".join)


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MARKUP)
def test_no_body_yields_a_tag_or_attribute_of_its_own(body):
    parser = _Tags()
    parser.feed(render(body))
    for tag, attrs in parser.tags:
        assert tag in ("strong", "em", "code", "a", "br"), (tag, body)
        if tag == "a":
            (name, href), *rest = attrs
            assert name == "href" and href.lower().startswith(("http://", "https://")), (attrs, body)
            assert rest == ANCHOR_ATTRIBUTES, (attrs, body)
        else:
            assert attrs == [], (tag, body)


@pytest.mark.django_db(transaction=True)
async def test_a_long_adversarial_message_leaves_the_event_loop_free():
    """The slowest bodies of the corpus, sent over the visitor socket (on PostgreSQL the send runs
    on the event loop, ``messenger.db.steps``): the loop keeps waking a 10 ms timer on time while
    each is stored, and the stored content is the rendered body."""
    inbox = await _setup()
    visitor = await _visitor(inbox)
    first = await visitor.command("message.send", client_id=new_client_id(), body="hello")
    assert first["type"] == "ack", first
    corpus = adversarial_corpus(settings.MESSENGER_MESSAGE_MAX_LENGTH)
    lags: list[float] = []
    sending = True

    async def tick() -> None:
        while sending:
            due = time.perf_counter() + 0.01
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - due)

    ticker = asyncio.ensure_future(tick())
    try:
        for name in ("bold unclosed", "italic unclosed", "brackets only", "HTML characters"):
            client_id = new_client_id()
            ack = await visitor.command("message.send", client_id=client_id, body=corpus[name])
            assert ack["type"] == "ack", (name, ack.get("code"))
            stored = await database_sync_to_async(Message.objects.get)(client_id=client_id)
            assert stored.content == render(corpus[name].strip())
    finally:
        sending = False
        await ticker
        await visitor.close()
    assert max(lags) < 0.5, sorted(lags)[-5:]
