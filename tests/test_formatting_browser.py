"""The dashboard's formatter (static/messenger/formatting.js, the composer preview and pending
messages) against the server's (messenger/formatting.py), in headless Chromium: the same HTML for
every recorded case, for random bodies of markup characters and for the adversarial corpus, each
body of which it renders within a second."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from django.conf import settings

from messenger.formatting import render
from tests.formatting_corpus import adversarial_corpus

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CASES = json.loads((ROOT / "tests" / "formatting_cases.json").read_text())
PIECES = ["**", "*", "_", "`", "[", "]", "(", ")", "](", "https://e.com/", "HTTP://", " ", "\n", "\r\n", "a", "é"]
PIECES += ["😀", ".", ",", ")", "=", "/", "&", "<", '"', "'", "\xa0", "\x1c", "\ufeff", "\x01", "\x05", "x_y"]


def random_bodies(count: int) -> list[str]:
    chooser = random.Random(21)
    return ["".join(chooser.choices(PIECES, k=chooser.randint(1, 24))) for _ in range(count)]


def test_the_dashboard_formats_exactly_as_the_server(chromium):
    page = chromium.new_page()
    page.set_content("<!doctype html><title>formatting</title>")
    page.add_script_tag(path=str(ROOT / "static" / "messenger" / "formatting.js"))

    bodies = [case["body"] for case in CASES]
    in_browser = page.evaluate("(bodies) => bodies.map((body) => MessengerFormatting.render(body))", bodies)
    for case, html in zip(CASES, in_browser, strict=True):
        assert (html, render(case["body"])) == (case["html"], case["html"]), case["body"]

    bodies = random_bodies(3000)
    in_browser = page.evaluate("(bodies) => bodies.map((body) => MessengerFormatting.render(body))", bodies)
    differ = [(body, html, render(body)) for body, html in zip(bodies, in_browser, strict=True) if html != render(body)]
    assert differ == []

    slow, differ = {}, []
    for name, body in adversarial_corpus(settings.MESSENGER_MESSAGE_MAX_LENGTH).items():
        html, seconds = page.evaluate(
            """(body) => {
                const started = performance.now();
                const html = MessengerFormatting.render(body);
                return [html, (performance.now() - started) / 1000];
            }""",
            body,
        )
        if seconds >= 1:
            slow[name] = round(seconds, 1)
        if html != render(body):
            differ.append(name)
    assert (slow, differ) == ({}, [])
    page.close()
