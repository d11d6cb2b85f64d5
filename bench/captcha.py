"""What ALTCHA's proof of work costs a visitor's browser and a script.

    .venv/bin/python bench/captcha.py                  # 20 challenges at the configured complexity
    .venv/bin/python bench/captcha.py --max-number 200000 --challenges 40

Issues challenges with ``messenger.captcha.new_challenge`` and solves each twice: in headless
Chromium with the widget's own solver (``solveAltcha``, taken from static/messenger/widget.js, run
on an https page so that ``crypto.subtle`` exists), and in Python with ``hashlib`` as a script
would. Prints the median, p90 and worst seconds of each, and checks that the server accepts the
browser's answers.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.test import override_settings  # noqa: E402

from messenger import captcha  # noqa: E402
from tests.live import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


def widget_solver() -> str:
    source = (ROOT / "static/messenger/widget.js").read_text()
    match = re.search(r"async function solveAltcha\(c\) \{.*?\n  \}\n", source, re.DOTALL)
    assert match, "solveAltcha not found in widget.js"
    return match.group(0)


def python_solve(challenge: dict) -> int:
    for number in range(challenge["maxnumber"] + 1):
        if hashlib.sha256(f"{challenge['salt']}{number}".encode()).hexdigest() == challenge["challenge"]:
            return number
    raise ValueError("unsolved")


def summary(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[max(0, round(0.9 * len(ordered)) - 1)]
    return f"{label}: median {statistics.median(ordered):.3f} s, p90 {p90:.3f} s, worst {ordered[-1]:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--challenges", type=int, default=20)
    parser.add_argument("--max-number", type=int, default=None)
    options = parser.parse_args()

    from playwright.sync_api import sync_playwright

    overrides = {"MESSENGER_CAPTCHA": "altcha"}
    if options.max_number:
        overrides["MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER"] = options.max_number
    with override_settings(**overrides), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("https://bench.invalid/", lambda route: route.fulfill(body="<p>bench</p>", content_type="text/html"))
        page.goto("https://bench.invalid/")
        page.add_script_tag(content=widget_solver() + "\nwindow.solveAltcha = solveAltcha;")
        browser_seconds, python_seconds = [], []
        for _ in range(options.challenges):
            challenge = captcha.new_challenge()
            solved = page.evaluate(
                "async (c) => { const t = performance.now(); const p = await solveAltcha(c);"
                " return [p, (performance.now() - t) / 1000]; }",
                challenge,
            )
            browser_seconds.append(solved[1])
            assert captcha.check(solved[0], ip=None) is None, "the server refused the browser's answer"
            started = time.perf_counter()
            python_solve(challenge)
            python_seconds.append(time.perf_counter() - started)
        browser.close()
        print(f"maxnumber {challenge['maxnumber']}, {options.challenges} challenges")
        print(summary("chromium (widget solver)", browser_seconds))
        print(summary("python (hashlib)", python_seconds))


if __name__ == "__main__":
    main()
