"""Staff sessions and logins: an operator socket ends with its session, its Origin is this site's
own, and repeated wrong passwords lock a user name out from that address.

Sockets go through the whole ASGI application (``project.asgi``) with the session cookie of a real
Django login; sessions end through the real views (logout, password change, the admin).
"""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from messenger.models import ActivityEvent, AgentProfile, AgentRole
from messenger.protocol import CLOSE_ACCESS_CHANGED, CLOSE_SESSION_ENDED, CLOSE_UNAUTHENTICATED
from tests import live
from tests.conftest import Socket
from tests.factories import make_branch, make_user

socket_test = pytest.mark.django_db(transaction=True)

FAST_HASHER = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])


def _application():
    from project.asgi import application

    return application


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def socket_for(client: Client, *, origin: str = "http://testserver", extra: list | None = None) -> Socket:
    headers = [
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
        (b"origin", origin.encode()),
        (b"host", b"testserver"),
        *(extra or []),
    ]
    return Socket(WebsocketCommunicator(_application(), "/ws/operator/", headers=headers))


async def open_socket(client: Client) -> Socket:
    socket = socket_for(client)
    assert (await socket.connect())[0]
    assert (await socket.expect("hello"))["type"] == "hello"
    return socket


async def closed_within(socket: Socket, seconds: float) -> tuple[int, float]:
    """The close code of a socket that closes within ``seconds``, and how long that took."""
    started = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - started)
        try:
            frame = await socket.recv(timeout=max(0.01, left))
        except TimeoutError:
            await socket.close()
            pytest.fail(f"the socket was still open {seconds} s later; it got {socket.frames}")
        if frame["type"] == "__closed__":
            return frame["code"], time.monotonic() - started


async def answers_ping(socket: Socket) -> bool:
    await socket.send({"type": "ping"})
    return (await socket.expect("pong", timeout=5))["type"] == "pong"


def superuser_client() -> Client:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    return logged_in(root)


# --- Sockets end with their session -------------------------------------------------------------


@socket_test
async def test_logout_through_the_logout_view_closes_that_sessions_socket_within_5_s():
    operator = await db(make_user)(branch=await db(make_branch)())
    browser, other_browser = await db(logged_in)(operator), await db(logged_in)(operator)
    socket, other_socket = await open_socket(browser), await open_socket(other_browser)

    response = await db(browser.post)(reverse("logout"))
    assert response.status_code == 302

    code, took = await closed_within(socket, 5)
    assert code == CLOSE_SESSION_ENDED and took <= 5
    # The same user's session in another browser goes on.
    assert await answers_ping(other_socket)
    await other_socket.close()
    # And the logged-out cookie opens no new socket.
    again = socket_for(browser)
    assert (await again.connect())[0]
    assert (await again.recv())["code"] == "unauthenticated"


@socket_test
async def test_password_change_closes_every_socket_of_the_user_within_5_s():
    operator = await db(make_user)("pat", branch=await db(make_branch)())
    elsewhere, here = await db(logged_in)(operator), await db(logged_in)(operator)
    socket_elsewhere, socket_here = await open_socket(elsewhere), await open_socket(here)

    response = await db(here.post)(
        reverse("password_change"),
        {"old_password": "pw-pat", "new_password1": "a-new-long-secret-71", "new_password2": "a-new-long-secret-71"},
    )
    assert response.status_code == 302, response.context and response.context["form"].errors

    # The other browser's session predates the new password; this browser's got a new key (Django
    # cycles it on a password change), so its old socket ends too and the dashboard reloads.
    for socket in (socket_elsewhere, socket_here):
        code, took = await closed_within(socket, 5)
        assert code == CLOSE_SESSION_ENDED and took <= 5
    renewed = await open_socket(here)  # the new cookie of the browser that changed it still works
    await renewed.close()
    stale = socket_for(elsewhere)
    assert (await stale.connect())[0]
    assert (await stale.recv())["code"] == "unauthenticated"
    assert (await stale.recv()) == {"type": "__closed__", "code": CLOSE_UNAUTHENTICATED}


def _deactivate_in_the_admin(admin: Client, operator) -> int:
    profile = operator.agent
    data = {
        "username": operator.username,
        "first_name": operator.first_name,
        "last_name": "",
        "email": "",
        "date_joined_0": "2025-01-01",
        "date_joined_1": "10:00:00",
        # is_active left out: the box is unticked
        "agent-TOTAL_FORMS": "1",
        "agent-INITIAL_FORMS": "1",
        "agent-MIN_NUM_FORMS": "0",
        "agent-MAX_NUM_FORMS": "1",
        "agent-0-id": profile.pk,
        "agent-0-user": operator.pk,
        "agent-0-role": profile.role,
        "agent-0-branch": profile.branch_id or "",
        "agent-0-max_concurrent": profile.max_concurrent,
        "agent-0-language": "",
    }
    response = admin.post(reverse("admin:auth_user_change", args=[operator.pk]), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    operator.refresh_from_db()
    assert operator.is_active is False
    return response.status_code


@socket_test
async def test_deactivation_in_the_admin_closes_the_users_sockets_within_5_s():
    operator = await db(make_user)(branch=await db(make_branch)())
    socket = await open_socket(await db(logged_in)(operator))
    admin = await db(superuser_client)()

    await db(_deactivate_in_the_admin)(admin, operator)

    code, took = await closed_within(socket, 5)
    assert code == CLOSE_SESSION_ENDED and took <= 5


@socket_test
async def test_removing_the_staff_role_in_the_admin_closes_the_users_sockets_within_5_s():
    operator = await db(make_user)(branch=await db(make_branch)())
    socket = await open_socket(await db(logged_in)(operator))
    admin = await db(superuser_client)()
    profile_id = await db(lambda: operator.agent.pk)()

    response = await db(admin.post)(reverse("admin:messenger_agentprofile_delete", args=[profile_id]), {"post": "yes"})
    assert response.status_code == 302
    assert not await db(AgentProfile.objects.filter(pk=profile_id).exists)()

    code, took = await closed_within(socket, 5)
    assert code == CLOSE_SESSION_ENDED and took <= 5


@socket_test
async def test_a_role_change_in_the_admin_closes_the_socket_for_a_reconnect_with_the_new_access():
    """An operator made supervisor (or the reverse) holds the groups of the old role: the socket
    closes with 4005 and the reconnected one says the new role."""
    branch = await db(make_branch)()
    operator = await db(make_user)(branch=branch)
    browser = await db(logged_in)(operator)
    socket = await open_socket(browser)
    admin = await db(superuser_client)()
    profile_id = await db(lambda: operator.agent.pk)()

    response = await db(admin.post)(
        reverse("admin:messenger_agentprofile_change", args=[profile_id]),
        {"user": operator.pk, "branch": branch.pk, "role": AgentRole.SUPERVISOR, "max_concurrent": 5, "language": ""},
    )
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors

    code, took = await closed_within(socket, 5)
    assert code == CLOSE_ACCESS_CHANGED and took <= 5
    again = socket_for(browser)
    assert (await again.connect())[0]
    assert (await again.expect("hello"))["user"]["role"] == AgentRole.SUPERVISOR
    await again.close()


@socket_test
async def test_an_unchanged_session_keeps_its_socket_open():
    operator = await db(make_user)(branch=await db(make_branch)())
    socket = await open_socket(await db(logged_in)(operator))
    got = await socket.drain(timeout=5)  # two checks at least
    assert [frame["type"] for frame in got] == ["presence"], got  # its own connect; no close
    assert await answers_ping(socket)
    await socket.close()


# --- Origin -------------------------------------------------------------------------------------


async def _handshake(client: Client, origin: str | None, extra: list | None = None) -> bool:
    headers = [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()), (b"host", b"testserver")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    socket = Socket(WebsocketCommunicator(_application(), "/ws/operator/", headers=[*headers, *(extra or [])]))
    connected, _ = await socket.connect()
    if connected:
        await socket.close()
    return connected


@socket_test
async def test_the_operator_socket_origin_must_be_the_sites_own_scheme_host_and_port():
    client = await db(logged_in)(await db(make_user)(branch=await db(make_branch)()))
    assert await _handshake(client, "http://testserver")
    for origin in (
        "https://testserver",  # another scheme
        "http://testserver:8000",  # another port
        "http://testserver.evil.example",
        "http://evil.example",
        "null",
        "",
        None,
    ):
        assert not await _handshake(client, origin), origin


@socket_test
async def test_origin_behind_a_tls_proxy_and_trusted_origins_keep_scheme_and_port_strict():
    client = await db(logged_in)(await db(make_user)(branch=await db(make_branch)()))
    https_proxy = [(b"x-forwarded-proto", b"https")]
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert await _handshake(client, "https://testserver", https_proxy)
        assert not await _handshake(client, "http://testserver", https_proxy)
    # Without the setting the header is not believed.
    assert not await _handshake(client, "https://testserver", https_proxy)
    with override_settings(CSRF_TRUSTED_ORIGINS=["https://chat.example.com", "https://*.example.org"]):
        assert await _handshake(client, "https://chat.example.com")
        assert await _handshake(client, "https://a.example.org")
        for origin in ("http://chat.example.com", "https://chat.example.com:8443", "https://a.example.org:444"):
            assert not await _handshake(client, origin), origin


# --- Login lockout ------------------------------------------------------------------------------


def _post_login(client: Client, url: str, password: str):
    return client.post(url, {"username": "boss", "password": password, "next": "/dashboard/"})


@pytest.mark.django_db
@FAST_HASHER
@pytest.mark.parametrize("url", ["/admin/login/", "/accounts/login/"])
def test_thirty_wrong_passwords_lock_the_user_name_out_from_that_address_until_unlocked(url):
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "the-right-one-42")
    client = Client()

    statuses = [_post_login(client, url, f"wrong-{attempt}").status_code for attempt in range(30)]
    assert statuses == [200] * 9 + [429] * 21  # MESSENGER_LOGIN_FAILURE_LIMIT = 10
    response = _post_login(client, url, "the-right-one-42")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in client.session

    # One audit row for the lockout, not one per refused attempt.
    rows = list(
        ActivityEvent.objects.filter(verb="staff.login_locked_out").values(
            "actor_label", "ip", "target_type", "target_id", "payload"
        )
    )
    assert rows == [
        {
            "actor_label": "login",
            "ip": "127.0.0.1",
            "target_type": "user",
            "target_id": str(boss.pk),
            "payload": {"username": "boss", "path": url, "failures": 10},
        }
    ]

    # Per user name and address together: the same user from another address logs in.
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    assert _post_login(elsewhere, url, "the-right-one-42").status_code == 302
    assert elsewhere.session["_auth_user_id"] == str(boss.pk)

    # The documented unlock (docs/runbook.md): the right password works again at once.
    call_command("axes_reset_username", "boss")
    response = _post_login(client, url, "the-right-one-42")
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(boss.pk)


@pytest.mark.django_db
@FAST_HASHER
def test_a_few_wrong_passwords_then_the_right_one_log_in_and_start_the_count_afresh():
    get_user_model().objects.create_user("boss", password="the-right-one-42")
    client = Client()
    for _ in range(9):
        assert _post_login(client, "/accounts/login/", "wrong").status_code == 200
    assert _post_login(client, "/accounts/login/", "the-right-one-42").status_code == 302
    client.logout()
    for _ in range(9):
        assert _post_login(client, "/accounts/login/", "wrong").status_code == 200
    assert _post_login(client, "/accounts/login/", "the-right-one-42").status_code == 302
    assert not ActivityEvent.objects.filter(verb="staff.login_locked_out").exists()


@pytest.mark.django_db
@FAST_HASHER
def test_a_lockout_ends_by_itself_after_the_cool_off():
    from datetime import timedelta

    get_user_model().objects.create_user("boss", password="the-right-one-42")
    client = Client()
    with override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=timedelta(seconds=2)):
        assert [_post_login(client, "/accounts/login/", "wrong").status_code for _ in range(3)] == [200, 200, 429]
        assert _post_login(client, "/accounts/login/", "the-right-one-42").status_code == 429
        time.sleep(2.2)  # counted from the last refused attempt
        assert _post_login(client, "/accounts/login/", "the-right-one-42").status_code == 302
    assert ActivityEvent.objects.filter(verb="staff.login_locked_out").count() == 1


# --- The dashboard in a browser -------------------------------------------------------------------


@pytest.fixture(scope="module")
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_dashboard_logged_out_in_another_tab_goes_to_the_login_page(
    chromium, live_server_factory, _orm_beside_playwright
):  # noqa: ANN001
    from tests.test_dashboard_browser import log_in

    make_user("lena", branch=make_branch())
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    dashboard = log_in(chromium, server, "lena")
    other_tab = dashboard.context.new_page()
    other_tab.goto(server.url + "/dashboard/")
    other_tab.wait_for_selector("#connection[data-state=online]")

    started = time.monotonic()
    other_tab.click("form[action='/accounts/logout/'] button")
    # The first tab's socket is closed by the server (4003) and the page reloads onto the login
    # page instead of reconnecting forever.
    dashboard.wait_for_url("**/accounts/login/?next=/dashboard/", timeout=8000)
    assert time.monotonic() - started < 8
    assert dashboard.locator("#id_username").is_visible()
    dashboard.context.close()
