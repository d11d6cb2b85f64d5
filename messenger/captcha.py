"""The CAPTCHA asked of visitors past the per-IP threshold of new conversations.

``MESSENGER_CAPTCHA`` picks the kind:

* ``altcha`` (the default): a proof of work in ALTCHA's scheme, solved by the widget in the
  browser. The challenge is HMAC-signed and carries its expiry in its salt, so the server keeps
  nothing until a solution comes back. A verified solution's signature is then remembered in the
  cache until the challenge expires, with an atomic ``add``, so one solution starts at most one
  conversation.
* ``turnstile`` / ``hcaptcha``: the provider's widget gives the visitor a token, which the server
  checks with the provider's siteverify endpoint; the provider makes tokens single use and expiring.

Solutions are checked here only, never trusted from the browser. A refused solution is answered
with ``CaptchaRequired`` carrying a new challenge and the ``reason`` (see ``REASONS``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Literal

import altcha
from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac

from messenger.errors import CaptchaRequired

logger = logging.getLogger(__name__)

Reason = Literal["missing", "invalid", "expired", "used", "unavailable"]

REASONS: dict[Reason, str] = {
    "missing": "Please solve the challenge to start a conversation.",
    "invalid": "The challenge was not solved; please solve the new one.",
    "expired": "The challenge has expired; please solve the new one.",
    "used": "This solution was already used; please solve the new one.",
    "unavailable": "The CAPTCHA service could not be reached; please try again.",
}

# The provider's script (loaded by the widget only when that provider is chosen), its siteverify
# endpoint, and the sources a host page's CSP must allow for its script and frames. Both providers
# share the render/callback and siteverify shapes.
PROVIDERS: dict[str, dict[str, str]] = {
    "turnstile": {
        "script": "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit",
        "verify_url": "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        "csp_sources": "https://challenges.cloudflare.com",
    },
    "hcaptcha": {
        "script": "https://js.hcaptcha.com/1/api.js?render=explicit",
        "verify_url": "https://api.hcaptcha.com/siteverify",
        "csp_sources": "https://hcaptcha.com https://*.hcaptcha.com",
    },
}

ALGORITHM = "SHA-256"
# Far above a real payload (about 300 characters) or token (Turnstile's: at most 2048).
MAX_SOLUTION_LENGTH = 4096


def _hmac_key() -> str:
    # Its own variable, or derived from SECRET_KEY so that a leaked challenge key is not SECRET_KEY.
    return settings.MESSENGER_CAPTCHA_HMAC_KEY or salted_hmac("messenger.captcha", "altcha").hexdigest()


def _used_key(signature: str) -> str:
    return f"captcha:used:{signature}"


def new_challenge() -> dict[str, Any]:
    """What the widget needs to get a solution: an ALTCHA challenge, or the provider's site key."""
    provider = settings.MESSENGER_CAPTCHA
    if provider != "altcha":
        return {
            "provider": provider,
            "site_key": settings.MESSENGER_CAPTCHA_SITE_KEY,
            "script": PROVIDERS[provider]["script"],
        }
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=settings.MESSENGER_CAPTCHA_EXPIRES_SECONDS
    )
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(
            algorithm=ALGORITHM,
            max_number=settings.MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER,
            hmac_key=_hmac_key(),
            expires=expires,
        )
    )
    return {
        "provider": "altcha",
        "algorithm": challenge.algorithm,
        "challenge": challenge.challenge,
        "maxnumber": challenge.max_number,
        "salt": challenge.salt,
        "signature": challenge.signature,
    }


def check(solution: Any, *, ip: str | None) -> Reason | None:
    """None when ``solution`` passes; else why not. Consumes an ALTCHA solution that passes."""
    if solution is None or solution == "":
        return "missing"
    # Payloads (base64) and tokens are ASCII: anything else, lone surrogates included, is not one.
    if not isinstance(solution, str) or len(solution) > MAX_SOLUTION_LENGTH or not solution.isascii():
        return "invalid"
    if settings.MESSENGER_CAPTCHA == "altcha":
        return _check_altcha(solution)
    return _check_provider(solution, ip=ip)


def require(solution: Any, *, ip: str | None = None) -> None:
    """Pass when ``solution`` is good; else raise ``CaptchaRequired`` with a new challenge."""
    reason = check(solution, ip=ip)
    if reason is None:
        return
    raise CaptchaRequired(REASONS[reason], challenge=new_challenge(), reason=reason)


def _check_altcha(solution: str) -> Reason | None:
    try:
        payload = json.loads(base64.b64decode(solution, validate=True))
    except (binascii.Error, ValueError, RecursionError):  # RecursionError: "[[[…" within the length
        return "invalid"
    if not _well_formed(payload):
        return "invalid"
    # The signature first: only a salt we signed is trusted to say when it expires.
    verified, _ = altcha.verify_solution_v1(payload, _hmac_key(), check_expires=False)
    if not verified:
        return "invalid"
    expires = int(altcha.extract_params_v1(payload)["expires"][0])
    remaining = expires - time.time()
    if remaining <= 0:
        return "expired"
    try:
        first_use = cache.add(_used_key(payload["signature"]), 1, timeout=int(remaining) + 1)
    except Exception as error:  # noqa: BLE001 — the cache is down: fail open, as the throttles do
        logger.warning("CAPTCHA replay check skipped, the cache is unreachable: %s", error)
        return None
    return None if first_use else "used"


def _well_formed(payload: Any) -> bool:
    if not isinstance(payload, dict) or payload.get("algorithm") != ALGORITHM:
        return False
    number = payload.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 10**12:
        return False
    if not all(isinstance(payload.get(name), str) for name in ("challenge", "salt", "signature")):
        return False
    # Every challenge we sign carries its expiry.
    expires = altcha.extract_params_v1(payload).get("expires")
    return bool(expires) and expires[0].isdigit()


def _check_provider(token: str, *, ip: str | None) -> Reason | None:
    provider = settings.MESSENGER_CAPTCHA
    fields = {"secret": settings.MESSENGER_CAPTCHA_SECRET, "response": token}
    if ip:
        fields["remoteip"] = ip
    if provider == "hcaptcha":
        fields["sitekey"] = settings.MESSENGER_CAPTCHA_SITE_KEY
    url = settings.MESSENGER_CAPTCHA_VERIFY_URL or PROVIDERS[provider]["verify_url"]
    # The URL is the provider's or one that settings checked to be http(s).
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=settings.MESSENGER_CAPTCHA_VERIFY_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer = json.loads(response.read(65536))
    except (OSError, ValueError) as error:  # unreachable, timed out, HTTP error, not JSON
        logger.warning("CAPTCHA verification at %s failed: %s", url, error)
        return "unavailable"
    if not isinstance(answer, dict):
        logger.warning("CAPTCHA verification at %s answered %r", url, answer)
        return "unavailable"
    if answer.get("success") is True:
        return None
    codes = answer.get("error-codes") or []
    if any(isinstance(code, str) and "secret" in code for code in codes):
        # Our configuration, not the visitor: say so in the log, where it can be fixed.
        logger.error("CAPTCHA verification at %s refused our secret: %s", url, codes)
        return "unavailable"
    return "expired" if "timeout-or-duplicate" in codes else "invalid"
