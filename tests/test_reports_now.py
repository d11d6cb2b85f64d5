"""The reports' live "now" panel (docs/analytics.md, "Now"): every figure against a hand-built
world, the branch and inbox filters, an operator's own reach only, bad input, the pinned query
count, the session read equal to /api/v1/, the schema's shape; the operator socket that only
listens (``?presence=0``) and is not presence; the reports page in Russian. The same tests run on
PostgreSQL and on SQLite. The page live in a browser: tests/test_reports_now_browser.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messenger import reports_now
from messenger.access import staff_scope
from messenger.actions.base import Actor
from messenger.actions.presence import do_set_status
from messenger.api.v1.reports_now import V1ReportNow
from messenger.errors import NotFound
from messenger.models import AgentConnection, AgentRole, AgentStatus, Conversation, PresencePeriod
from tests.conftest import Socket, _application, session_cookie
from tests.factories import make_branch, make_conversation, make_inbox, make_user
from tests.test_reports import api_for

pytestmark = pytest.mark.django_db


def build_now(at) -> dict:
    """Branch A (inbox A) and branch B (inbox B). At ``at``:

    W1 inbox A, nobody, open, visitor waiting 300 s → waiting, in the queue.
    W2 inbox A, op1, open, waiting 120 s → waiting, assigned.
    W3 inbox B, op3, pending, waiting 600 s → waiting (the list marks a pending one too): the longest.
    O1 inbox A, op1, open, answered (no waiting_since) → open, not waiting.
    O2 inbox A, op2, snoozed, answered → open.
    U1 inbox B, nobody, open, no visitor message yet → open, unassigned, not waiting.
    R1 inbox A, op1, resolved → nothing. R2 inbox A, closed but with a stale waiting_since (imported
    data: a close clears it) → nothing: only active conversations wait.

    op1 (Olga, A) online with a live socket; op2 (Oleg, A) away, live; op3 (Otto, B) busy, but their
    socket's last heartbeat is older than the presence timeout → offline; sup (Sam, supervisor, no
    branch) busy, live; op4 (Oxana, A) online without a socket → offline, no open conversation: not listed.
    """
    branch_a, branch_b = make_branch("Alpha"), make_branch("Beta")
    inbox_a, inbox_b = make_inbox(branch_a), make_inbox(branch_b)
    op1 = make_user("op1", branch=branch_a, first_name="Olga")
    op2 = make_user("op2", branch=branch_a, first_name="Oleg", status=AgentStatus.AWAY, max_concurrent=3)
    op3 = make_user("op3", branch=branch_b, first_name="Otto", status=AgentStatus.BUSY)
    op4 = make_user("op4", branch=branch_a, first_name="Oxana")
    sup = make_user("sup", role=AgentRole.SUPERVISOR, first_name="Sam", status=AgentStatus.BUSY)
    ago = lambda seconds: at - timedelta(seconds=seconds)  # noqa: E731

    def conversation(inbox, *, assignee=None, status="open", waiting=None):
        row = make_conversation(inbox, at=ago(3600), assignee=assignee, status=status, branch=inbox.branch)
        Conversation.objects.filter(pk=row.pk).update(waiting_since=None if waiting is None else ago(waiting))
        return row

    world = {
        "at": at,
        "branch_a": branch_a,
        "branch_b": branch_b,
        "inbox_a": inbox_a,
        "inbox_b": inbox_b,
        "op1": op1,
        "op2": op2,
        "op3": op3,
        "op4": op4,
        "sup": sup,
        "w1": conversation(inbox_a, waiting=300),
        "w2": conversation(inbox_a, assignee=op1, waiting=120),
        "w3": conversation(inbox_b, assignee=op3, status="pending", waiting=600),
        "o1": conversation(inbox_a, assignee=op1),
        "o2": conversation(inbox_a, assignee=op2, status="snoozed"),
        "u1": conversation(inbox_b),
        "r1": conversation(inbox_a, assignee=op1, status="resolved"),
        "r2": conversation(inbox_a, assignee=op2, status="closed", waiting=900),
    }
    for user, heartbeat in ((op1, at), (op2, ago(5)), (op3, ago(3600)), (sup, ago(1))):
        AgentConnection.objects.create(user=user, channel_name=f"t.{user.username}", last_heartbeat=heartbeat)
    return world


@pytest.fixture
def world():
    return build_now(timezone.now())


def row(user, status, open_, waiting, *, role="operator", branch=None, max_concurrent=5, connected=None):
    return {
        "id": user.pk,
        "name": user.first_name,
        "role": role,
        "branch_id": branch.pk if branch else None,
        "status": status,
        "connected": status != "offline" if connected is None else connected,
        "open": open_,
        "waiting": waiting,
        "max_concurrent": max_concurrent,
    }


def longest(conversation, seconds: float) -> dict:
    return {
        "conversation_id": conversation.pk,
        "since": Conversation.objects.get(pk=conversation.pk).waiting_since,
        "seconds": seconds,
        "assignee_id": conversation.assignee_id,
        "branch_id": conversation.branch_id,
        "inbox_id": conversation.inbox_id,
    }


def test_supervisor_sees_every_figure(world):
    w = world
    answer = reports_now.now(staff_scope(w["sup"]), at=w["at"])
    assert answer["waiting"] == {"count": 3, "unassigned": 1, "longest": longest(w["w3"], 600.0)}
    assert answer["open"] == {"count": 6, "unassigned": 2}
    assert answer["present"] == {"online": 1, "away": 1, "busy": 1}
    # Present first, by name; then the offline with open conversations. Oxana: offline, nothing open.
    assert answer["operators"] == [
        row(w["op2"], "away", 1, 0, branch=w["branch_a"], max_concurrent=3),
        row(w["op1"], "online", 2, 1, branch=w["branch_a"]),
        row(w["sup"], "busy", 0, 0, role="supervisor"),
        row(w["op3"], "offline", 1, 1, branch=w["branch_b"]),
    ]
    assert answer["filters"] == {"branch": None, "inbox": None}
    data = V1ReportNow(data=json.loads(json.dumps(V1ReportNow(answer).data)))
    assert data.is_valid(), data.errors


def test_filters(world):
    w = world
    scope = staff_scope(w["sup"])
    by_branch = reports_now.now(scope, reports_now.NowParams(branch=w["branch_a"].pk), at=w["at"])
    assert by_branch["waiting"] == {"count": 2, "unassigned": 1, "longest": longest(w["w1"], 300.0)}
    assert by_branch["open"] == {"count": 4, "unassigned": 1}
    # The branch's staff only: the supervisor has none, Otto is of branch B.
    assert [r["name"] for r in by_branch["operators"]] == ["Oleg", "Olga"]
    assert by_branch["present"] == {"online": 1, "away": 1, "busy": 0}

    by_inbox = reports_now.now(scope, reports_now.NowParams(inbox=w["inbox_b"].pk), at=w["at"])
    assert by_inbox["waiting"] == {"count": 1, "unassigned": 0, "longest": longest(w["w3"], 600.0)}
    assert by_inbox["open"] == {"count": 2, "unassigned": 1}
    # The staff are not narrowed by an inbox; their counts are.
    assert {r["name"]: r["open"] for r in by_inbox["operators"]} == {"Oleg": 0, "Olga": 0, "Sam": 0, "Otto": 1}


def test_operator_sees_only_their_own(world):
    w = world
    scope = staff_scope(w["op1"])
    answer = reports_now.now(scope, at=w["at"])
    assert answer["waiting"] == {"count": 1, "unassigned": 0, "longest": longest(w["w2"], 120.0)}
    assert answer["open"] == {"count": 2, "unassigned": 0}
    assert answer["operators"] == [row(w["op1"], "online", 2, 1, branch=w["branch_a"])]
    assert answer["present"] == {"online": 1, "away": 0, "busy": 0}
    assert reports_now.check_params(scope, {"branch": w["branch_a"].pk}).branch == w["branch_a"].pk
    for values in ({"branch": w["branch_b"].pk}, {"inbox": w["inbox_b"].pk}, {"branch": 10**9}):
        with pytest.raises(NotFound):
            reports_now.check_params(scope, values)

    # Over HTTP: the same, and 404 for what is out of reach.
    client = Client()
    client.force_login(w["op1"])
    body = client.get("/api/operator/reports/now/").json()
    assert [r["id"] for r in body["operators"]] == [w["op1"].pk]
    assert body["waiting"]["longest"]["conversation_id"] == w["w2"].pk
    assert client.get("/api/operator/reports/now/", {"branch": w["branch_b"].pk}).status_code == 404
    assert client.get("/api/operator/reports/now/", {"inbox": w["inbox_b"].pk}).status_code == 404
    assert api_for(w["op1"]).get("reports/now", {"inbox": w["inbox_b"].pk}).status_code == 404


def test_nobody_waits():
    sup = make_user("sup", role=AgentRole.SUPERVISOR)
    answer = reports_now.now(staff_scope(sup))
    assert answer["waiting"] == {"count": 0, "unassigned": 0, "longest": None}
    assert answer["open"] == {"count": 0, "unassigned": 0}
    assert answer["operators"] == []


def test_session_equals_v1_and_bad_input(world):
    w = world
    client = Client()
    client.force_login(w["sup"])
    api = api_for(w["sup"])
    for params in ({}, {"branch": w["branch_a"].pk}, {"inbox": w["inbox_b"].pk}):
        ours, theirs = client.get("/api/operator/reports/now/", params), api.get("reports/now", params)
        assert ours.status_code == theirs.status_code == 200
        ours, theirs = ours.json(), theirs.json()
        # Read a moment apart: the clock and the age differ, nothing else.
        for body in (ours, theirs):
            body.pop("at")
            if body["waiting"]["longest"]:
                assert body["waiting"]["longest"].pop("seconds") >= 120
        assert ours == theirs
    for params in ({"branch": "x"}, {"branch": 0}, {"inbox": -1}, {"inbox": 2**63}):
        response = client.get("/api/operator/reports/now/", params)
        assert response.status_code == 400, params
        assert api.get("reports/now", params).status_code == 400
    assert Client().get("/api/operator/reports/now/").status_code == 403
    assert api.get("reports/now", {"branch": 10**9}).status_code == 404


def test_query_count_is_pinned(world):
    """Four queries whatever the rows; one more per filter (in reach?)."""
    w = world
    scope = staff_scope(w["sup"])
    with CaptureQueriesContext(connection) as queries:
        reports_now.now(scope, at=w["at"])
    assert len(queries) == 4, [q["sql"] for q in queries]
    with CaptureQueriesContext(connection) as queries:
        reports_now.now(scope, reports_now.check_params(scope, {"branch": w["branch_a"].pk, "inbox": w["inbox_a"].pk}))
    assert len(queries) == 6

    client = Client()
    client.force_login(w["sup"])
    client.get("/api/operator/reports/now/")  # the session's first read warms nothing we count
    with CaptureQueriesContext(connection) as before:
        assert client.get("/api/operator/reports/now/").status_code == 200
    more = make_user("op9", branch=w["branch_b"], first_name="Pia")
    AgentConnection.objects.create(user=more, channel_name="t.op9", last_heartbeat=timezone.now())
    for _ in range(5):
        make_conversation(w["inbox_b"], at=w["at"], assignee=more)
    with CaptureQueriesContext(connection) as after:
        body = client.get("/api/operator/reports/now/").json()
    assert len(after) == len(before)
    assert {r["name"]: r["open"] for r in body["operators"]}["Pia"] == 5


# --- the socket that listens only -----------------------------------------------------------------


async def listening_socket(user, path: str = "/ws/operator/?presence=0") -> Socket:
    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"cookie", f"sessionid={cookie}".encode()), (b"origin", b"http://testserver"), (b"host", b"testserver")]
    return Socket(WebsocketCommunicator(_application(), path, headers=headers))


@pytest.mark.django_db(transaction=True)
async def test_listening_socket_is_not_presence():
    """The reports page's socket (``?presence=0``): frames arrive, but its user is not connected,
    gets no presence period, is not offered chats, and its close releases nothing."""
    branch = await database_sync_to_async(make_branch)("North")
    olga = await database_sync_to_async(make_user)("olga", branch=branch)
    ivan = await database_sync_to_async(make_user)("ivan", branch=branch)
    sup = await database_sync_to_async(make_user)("sup", role=AgentRole.SUPERVISOR)

    listener = await listening_socket(olga)
    assert (await listener.connect())[0]
    hello = await listener.expect("hello")
    assert hello["user"] == {
        "id": olga.pk,
        "name": "Olga",
        "role": "operator",
        "branch_id": branch.pk,
        "status": "online",
    }
    await listener.send({"type": "ping"})
    await listener.expect("pong")

    def state() -> tuple[int, int, str | None]:
        """Olga's sockets, her presence periods, her status on the panel (None: not listed)."""
        now = reports_now.now(staff_scope(sup))
        return (
            AgentConnection.objects.filter(user=olga).count(),
            PresencePeriod.objects.filter(user=olga).count(),
            next((r["status"] for r in now["operators"] if r["id"] == olga.pk), None),
        )

    assert await database_sync_to_async(state)() == (0, 0, None)

    # Frames of the branch still arrive: another operator's status.
    await database_sync_to_async(do_set_status)(user=ivan, status=AgentStatus.AWAY, actor=Actor.system("test"))
    presence = await listener.expect("presence")
    assert presence["data"] == {"user_id": ivan.pk, "status": "away", "connected": False}

    # The dashboard's own socket is presence, for comparison.
    dashboard = await listening_socket(olga, "/ws/operator/")
    assert (await dashboard.connect())[0]
    await dashboard.expect("hello")
    assert await database_sync_to_async(state)() == (1, 1, "online")
    await dashboard.close()
    assert (await database_sync_to_async(state)())[0] == 0

    conversation = await database_sync_to_async(
        lambda: make_conversation(make_inbox(branch), at=timezone.now(), assignee=olga)
    )()
    await listener.close()
    # Closing the listener released nothing (a presence socket's last close releases unopened chats).
    assert await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation.pk).assignee_id)() == olga.pk
    assert await database_sync_to_async(state)() == (0, 1, "offline")  # listed: she has an open one


# --- Russian --------------------------------------------------------------------------------------


def test_reports_page_in_russian(world):
    client = Client()
    client.force_login(world["sup"])
    page = client.get("/dashboard/reports/", headers={"Accept-Language": "ru"})
    html = page.content.decode()
    config = json.loads(html.split('<script id="config" type="application/json">')[1].split("</script>")[0])
    assert config["language"] == "ru"
    assert config["urls"]["now"] == "/api/operator/reports/now/"
    assert config["socket_path"] == "/ws/operator/"
    for text in ("<title>Отчёты · Messenger</title>", "Сейчас", "Сводка", "По дням", "Операторы", "Фильтры отчёта"):
        assert text in html, text
    assert "By day" not in html and ">Now <" not in html

    english = client.get("/dashboard/reports/", headers={"Accept-Language": "en"}).content.decode()
    assert '"language": "en"' in english and "By day" in english and "Сводка" not in english
