"""Arithmetic challenges for visitors past the per-IP threshold of new conversations.

The answer never leaves the server: the client gets an opaque id and a question, and answers with
``{"id", "answer"}``. A challenge is single use (deleted on the first attempt, right or wrong) and
expires after ``CHALLENGE_TTL`` seconds.
"""

from __future__ import annotations

import secrets
from typing import Any, TypedDict

from django.core.cache import cache

from messenger.errors import CaptchaRequired

CHALLENGE_TTL = 600


class Challenge(TypedDict):
    id: str
    question: str


def _key(challenge_id: str) -> str:
    return f"captcha:{challenge_id}"


def new_challenge() -> Challenge:
    """Store a fresh question's answer server-side and return what the client may see."""
    left = secrets.randbelow(9) + 1
    right = secrets.randbelow(9) + 1
    challenge_id = secrets.token_urlsafe(16)
    cache.set(_key(challenge_id), left + right, timeout=CHALLENGE_TTL)
    return {"id": challenge_id, "question": f"{left} + {right} = ?"}


def verify(solution: Any) -> bool:
    """True when ``solution`` = {"id", "answer"} answers a live challenge; consumes the challenge."""
    if not isinstance(solution, dict):
        return False
    challenge_id = solution.get("id")
    answer = solution.get("answer")
    if not isinstance(challenge_id, str) or not 0 < len(challenge_id) <= 64:
        return False
    if isinstance(answer, str) and answer.strip().lstrip("-").isdigit() and len(answer) <= 6:
        answer = int(answer.strip())
    if not isinstance(answer, int) or isinstance(answer, bool):
        return False
    key = _key(challenge_id)
    expected = cache.get(key)
    if expected is None:
        return False
    # Deleted on any attempt: one guess per challenge.
    cache.delete(key)
    return answer == expected


def require(solution: Any) -> None:
    """Pass when ``solution`` is right; else raise ``CaptchaRequired`` carrying a new challenge."""
    if verify(solution):
        return
    raise CaptchaRequired("Please solve the challenge to start a conversation.", challenge=new_challenge())
