"""Login lockout: the project's side of django-axes (settings ``AXES_*``; docs/security.md, "Staff
sessions and logins"). Axes counts failures per user name and client address; here are the address it counts
by, the backend that refuses a locked-out login, and the answer to one — for the dashboard's and the
admin's login alike: HTTP 429 with a page that says how long, and one audit row per lockout.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from messenger.actions.staff import do_record_login_lockout
from messenger.client_address import request_client_address


def client_ip(request: HttpRequest) -> str | None:
    """The address failures are counted by (``AXES_CLIENT_IP_CALLABLE``) and audited with."""
    return request_client_address(request)


class LockoutBackend(AxesStandaloneBackend):
    """Axes' backend, for logins over HTTP only: ``authenticate()`` without a request comes from
    the server's own code (a management command, a shell, a test), where there is no client to
    count failures by — axes would refuse it outright."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)


def lockout_response(request: HttpRequest, *_: Any) -> HttpResponse:
    # Axes calls this with (request, response, credentials) from a synchronous middleware chain
    # and (request, credentials) from an asynchronous one; the request holds all that is needed.
    username = get_client_username(request) or ""
    failures = getattr(request, "axes_failures_since_start", None)
    # Failures go on counting while locked out (each refused attempt restarts the cool-off):
    # the attempt that reached the limit is the lockout.
    if failures is None or failures == settings.AXES_FAILURE_LIMIT:
        do_record_login_lockout(
            username=username,
            ip=client_ip(request),
            path=request.path,
            failures=failures or settings.AXES_FAILURE_LIMIT,
        )
    cool_off = settings.AXES_COOLOFF_TIME
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
