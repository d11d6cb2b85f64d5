"""The CAPTCHA past the per-IP threshold of new conversations: ALTCHA's proof of work verified on
the server, single use and expiring; Turnstile and hCaptcha checked against a loopback siteverify."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.test import override_settings

from messenger import captcha
from messenger.models import Conversation, Message
from tests.conftest import new_client_id
from tests.factories import make_branch, make_inbox, make_user
from tests.test_settings import PROBE, run_python
from tests.test_throttle import _visitor

# Small enough that the test's solver is quick, large enough to be a real search.
MAX_NUMBER = 20_000


def solve(challenge: dict[str, Any]) -> int:
    """The widget's algorithm: the number n with SHA-256(salt + n) == challenge."""
    for number in range(challenge["maxnumber"] + 1):
        if hashlib.sha256(f"{challenge['salt']}{number}".encode()).hexdigest() == challenge["challenge"]:
            return number
    raise AssertionError("no solution")


def payload(challenge: dict[str, Any], **override: Any) -> str:
    fields = {
        "algorithm": challenge["algorithm"],
        "challenge": challenge["challenge"],
        "number": solve(challenge),
        "salt": challenge["salt"],
        "signature": challenge["signature"],
    }
    fields.update(override)
    return base64.b64encode(json.dumps(fields).encode()).decode()


@pytest.fixture(autouse=True)
def _small_work() -> Iterator[None]:
    with override_settings(MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER=MAX_NUMBER):
        yield


# --- ALTCHA, the challenge alone -----------------------------------------------------------------


def test_challenge_is_a_signed_proof_of_work_that_expires():
    challenge = captcha.new_challenge()
    assert set(challenge) == {"provider", "algorithm", "challenge", "maxnumber", "salt", "signature"}
    assert challenge["provider"] == "altcha" and challenge["algorithm"] == "SHA-256"
    assert challenge["maxnumber"] == MAX_NUMBER
    expires = int(urllib.parse.parse_qs(challenge["salt"].split("?", 1)[1])["expires"][0])
    assert 299 <= expires - time.time() <= 300
    # Nothing is stored until a solution comes back.
    assert cache.get(f"captcha:used:{challenge['signature']}") is None


def test_a_solution_passes_once():
    challenge = captcha.new_challenge()
    solution = payload(challenge)
    assert captcha.check(solution, ip="10.0.0.1") is None
    assert captcha.check(solution, ip="10.0.0.1") == "used"
    assert cache.get(f"captcha:used:{challenge['signature']}") == 1


def test_a_solution_sent_at_once_from_many_places_passes_once():
    solution = payload(captcha.new_challenge())
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(lambda _: captcha.check(solution, ip=None), range(8)))
    assert sorted(reasons, key=str) == [None] + ["used"] * 7


def test_wrong_number_and_tampered_fields_are_refused_and_not_consumed():
    challenge = captcha.new_challenge()
    right = solve(challenge)
    assert captcha.check(payload(challenge, number=(right + 1) % (MAX_NUMBER + 1)), ip=None) == "invalid"
    assert captcha.check(payload(challenge, signature="0" * 64), ip=None) == "invalid"
    # A later expiry in the salt breaks the signature.
    later = challenge["salt"].replace("expires=", "expires=9")
    assert captcha.check(payload(challenge, salt=later), ip=None) == "invalid"
    assert captcha.check(payload(challenge, algorithm="SHA-1"), ip=None) == "invalid"
    # None of these used up the challenge: the right solution still passes.
    assert captcha.check(payload(challenge), ip=None) is None


def test_a_challenge_signed_with_another_key_is_refused():
    with override_settings(MESSENGER_CAPTCHA_HMAC_KEY="another key"):
        challenge = captcha.new_challenge()
    assert captcha.check(payload(challenge), ip=None) == "invalid"
    with override_settings(MESSENGER_CAPTCHA_HMAC_KEY="another key"):
        assert captcha.check(payload(challenge), ip=None) is None


def test_an_expired_challenge_is_refused():
    with override_settings(MESSENGER_CAPTCHA_EXPIRES_SECONDS=-5):
        challenge = captcha.new_challenge()
    assert captcha.check(payload(challenge), ip=None) == "expired"
    assert cache.get(f"captcha:used:{challenge['signature']}") is None


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ({"id": "x", "answer": 7}, "invalid"),
        (12, "invalid"),
        ("not base64!", "invalid"),
        (base64.b64encode(b"not json").decode(), "invalid"),
        (base64.b64encode(b"[1, 2]").decode(), "invalid"),
        (base64.b64encode(b'{"algorithm": "SHA-256"}').decode(), "invalid"),
        ("A" * 5000, "invalid"),
        ("\ud800", "invalid"),
    ],
)
def test_malformed_solutions_are_refused(solution, reason):
    assert captcha.check(solution, ip=None) == reason


@pytest.mark.parametrize("provider", ["turnstile", "hcaptcha"])
@pytest.mark.parametrize("token", ["\ud800", "tok\u00e9n", 7, "x" * 5000])
def test_a_token_that_cannot_be_one_is_refused_without_asking_the_provider(provider, token, siteverify):
    with _provider_settings(provider, siteverify.url):
        assert captcha.check(token, ip="10.0.0.1") == "invalid"
    assert siteverify.requests == []


@pytest.mark.parametrize("number", ["5", True, -1, 1.0, None, 10**13])
def test_a_number_that_is_not_a_plain_integer_is_refused(number):
    challenge = captcha.new_challenge()
    assert captcha.check(payload(challenge, number=number), ip=None) == "invalid"


# --- ALTCHA through the visitor socket ------------------------------------------------------------


def _counts() -> tuple[int, int]:
    return Conversation.objects.count(), Message.objects.count()


async def _inbox_past_threshold(ip: str):
    branch = await database_sync_to_async(make_branch)()
    inbox = await database_sync_to_async(make_inbox)(branch)
    await database_sync_to_async(make_user)(branch=branch)
    for _ in range(2):
        visitor = await _visitor(inbox, ip=ip)
        assert (await visitor.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
        # Further messages in an existing conversation never ask.
        assert (await visitor.command("message.send", client_id=new_client_id(), body="again"))["type"] == "ack"
        await visitor.close()
    return inbox


async def _refused(visitor, reason: str, **fields: Any) -> dict[str, Any]:
    before = await database_sync_to_async(_counts)()
    error = await visitor.command("message.send", client_id=new_client_id(), body="third", **fields)
    assert error["type"] == "error" and error["code"] == "captcha_required", error
    assert error["reason"] == reason and error["message"] == captcha.REASONS[reason]
    assert await database_sync_to_async(_counts)() == before
    return error["challenge"]


@pytest.mark.django_db(transaction=True)
@override_settings(MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=2)
async def test_new_conversation_past_threshold_needs_a_solved_proof_of_work():
    inbox = await _inbox_past_threshold("10.9.9.9")
    visitor = await _visitor(inbox, ip="10.9.9.9")
    challenge = await _refused(visitor, "missing")
    assert challenge["provider"] == "altcha" and challenge["maxnumber"] == MAX_NUMBER

    right = solve(challenge)
    await _refused(visitor, "invalid", captcha=payload(challenge, number=(right + 1) % (MAX_NUMBER + 1)))
    await _refused(visitor, "invalid", captcha=payload(challenge, signature="f" * 64))
    await _refused(visitor, "invalid", captcha={"id": "x", "answer": 7})
    with override_settings(MESSENGER_CAPTCHA_EXPIRES_SECONDS=-5):
        expired = captcha.new_challenge()
    await _refused(visitor, "expired", captcha=payload(expired))

    solution = payload(challenge)
    before = await database_sync_to_async(_counts)()
    ack = await visitor.command("message.send", client_id=new_client_id(), body="third", captcha=solution)
    assert ack["type"] == "ack", ack
    assert await database_sync_to_async(_counts)() == (before[0] + 1, before[1] + 1)
    await visitor.close()

    # The same solution from another visitor on that IP: a replay, refused.
    replay = await _visitor(inbox, ip="10.9.9.9")
    await _refused(replay, "used", captcha=solution)
    await replay.close()

    # Another IP is below the threshold.
    other = await _visitor(inbox, ip="10.9.9.10")
    assert (await other.command("message.send", client_id=new_client_id(), body="hi"))["type"] == "ack"
    await other.close()


# --- Turnstile and hCaptcha against a loopback siteverify -----------------------------------------

SECRET = "0x4AAAAAAA-test-secret"
SITE_KEY = "0x4AAAAAAA-site-key"


class FakeSiteverify(ThreadingHTTPServer):
    """The provider's siteverify, honestly: checks the secret, and each good token passes once."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SiteverifyHandler)
        self.good_tokens = {"good-token", "another-good-token"}
        self.requests: list[dict[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/siteverify"


class _SiteverifyHandler(BaseHTTPRequestHandler):
    server: FakeSiteverify

    def do_POST(self) -> None:  # noqa: N802 — the http.server API
        length = int(self.headers.get("Content-Length", 0))
        fields = {k: v[-1] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
        self.server.requests.append(fields)
        if fields.get("response") == "slow-token":
            time.sleep(2.5)  # longer than the verify timeout the test sets
        if fields.get("secret") != SECRET:
            answer = {"success": False, "error-codes": ["invalid-input-secret"]}
        elif fields.get("response") in self.server.good_tokens:
            self.server.good_tokens.discard(fields["response"])
            answer = {"success": True, "error-codes": [], "hostname": "localhost"}
        elif fields.get("response") in {"good-token", "another-good-token"}:
            answer = {"success": False, "error-codes": ["timeout-or-duplicate"]}
        else:
            answer = {"success": False, "error-codes": ["invalid-input-response"]}
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def siteverify() -> Iterator[FakeSiteverify]:
    server = FakeSiteverify()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _provider_settings(provider: str, url: str, secret: str = SECRET) -> override_settings:
    return override_settings(
        MESSENGER_CAPTCHA=provider,
        MESSENGER_CAPTCHA_SITE_KEY=SITE_KEY,
        MESSENGER_CAPTCHA_SECRET=secret,
        MESSENGER_CAPTCHA_VERIFY_URL=url,
        MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=2,
    )


@pytest.mark.parametrize("provider", ["turnstile", "hcaptcha"])
@pytest.mark.django_db(transaction=True)
async def test_provider_token_is_verified_with_the_provider(provider, siteverify):
    with _provider_settings(provider, siteverify.url):
        inbox = await _inbox_past_threshold("10.8.8.8")
        visitor = await _visitor(inbox, ip="10.8.8.8")
        challenge = await _refused(visitor, "missing")
        assert challenge == {
            "provider": provider,
            "site_key": SITE_KEY,
            "script": captcha.PROVIDERS[provider]["script"],
        }
        assert siteverify.requests == []

        await _refused(visitor, "invalid", captcha="forged-token")
        ack = await visitor.command("message.send", client_id=new_client_id(), body="third", captcha="good-token")
        assert ack["type"] == "ack", ack
        await visitor.close()

        replay = await _visitor(inbox, ip="10.8.8.8")
        await _refused(replay, "expired", captcha="good-token")
        await replay.close()

    sent = siteverify.requests[1]
    expected = {"secret": SECRET, "response": "good-token", "remoteip": "10.8.8.8"}
    assert sent == (expected | {"sitekey": SITE_KEY} if provider == "hcaptcha" else expected)


@pytest.mark.django_db(transaction=True)
async def test_provider_refusing_our_secret_or_unreachable_answers_unavailable(siteverify):
    with _provider_settings("turnstile", siteverify.url, secret="wrong secret"):
        inbox = await _inbox_past_threshold("10.7.7.7")
        visitor = await _visitor(inbox, ip="10.7.7.7")
        await _refused(visitor, "unavailable", captcha="good-token")
    # Nothing listens on a port just released: refused at once, well within the timeout.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/siteverify"
    with _provider_settings("turnstile", closed):
        started = time.monotonic()
        await _refused(visitor, "unavailable", captcha="good-token")
        assert time.monotonic() - started < 3
    # A siteverify slower than the timeout: given up after it.
    with _provider_settings("turnstile", siteverify.url), override_settings(MESSENGER_CAPTCHA_VERIFY_TIMEOUT_SECONDS=1):
        started = time.monotonic()
        await _refused(visitor, "unavailable", captcha="slow-token")
        assert 1 <= time.monotonic() - started < 2.5
    await visitor.close()
    assert "good-token" in siteverify.good_tokens


# --- settings -------------------------------------------------------------------------------------


def test_unknown_captcha_kind_is_refused_at_start():
    result = run_python(PROBE, MESSENGER_CAPTCHA="recaptcha")
    assert result.returncode != 0 and "MESSENGER_CAPTCHA must be" in result.stderr


def test_provider_without_keys_is_refused_at_start():
    result = run_python(PROBE, MESSENGER_CAPTCHA="turnstile", MESSENGER_CAPTCHA_SITE_KEY="site")
    assert result.returncode != 0 and "MESSENGER_CAPTCHA_SECRET" in result.stderr
    assert (
        run_python(
            PROBE, MESSENGER_CAPTCHA="hcaptcha", MESSENGER_CAPTCHA_SITE_KEY="a", MESSENGER_CAPTCHA_SECRET="b"
        ).returncode
        == 0
    )


# --- the widget's solver --------------------------------------------------------------------------


def test_the_widget_with_its_solver_stays_within_its_size_budget():
    # docs/benchmarks.md, "Widget size": 30 KiB gzipped, as served (no build step).
    widget = (Path(__file__).resolve().parent.parent / "static/messenger/widget.js").read_bytes()
    assert b'subtle.digest("SHA-256"' in widget and b"function sha256(" in widget
    assert len(gzip.compress(widget, compresslevel=9)) <= 30_720
