"""Operator dashboard reads: who may see what, and a query count that does not grow with the rows."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messenger import selectors
from messenger.access import staff_scope
from messenger.models import (
    ActivityEvent,
    AgentRole,
    CannedResponse,
    Contact,
    Conversation,
    ConversationStatus,
    Label,
    Message,
)
from tests.factories import make_branch, make_inbox, make_user

pytestmark = pytest.mark.django_db

_names = itertools.count(1)


def make_conversation(inbox, *, assignee=None, status=ConversationStatus.OPEN, messages: int = 0, **fields):
    now = timezone.now()
    contact = Contact.objects.create(name=fields.pop("contact_name", f"Visitor {next(_names)}"))
    conversation = Conversation.objects.create(
        inbox=inbox, contact=contact, assignee=assignee, status=status, last_activity_at=now, **fields
    )
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            direction="in" if index % 2 == 0 else "out",
            sender_type="contact" if index % 2 == 0 else "user",
            sender_contact=contact if index % 2 == 0 else None,
            sender_user=assignee if index % 2 else None,
            body=f"message {index}",
            content=f"message {index}",
            created_at=now + timedelta(milliseconds=index),
        )
        for index in range(messages)
    )
    return conversation


@pytest.fixture
def world():
    """Two branches, an operator in each, a supervisor, an admin, and a conversation per branch."""
    north, south = make_branch("North"), make_branch("South")
    north_inbox, south_inbox = make_inbox(north), make_inbox(south)
    world = {
        "north": north,
        "south": south,
        "north_inbox": north_inbox,
        "south_inbox": south_inbox,
        "operator": make_user("olga", branch=north),
        "south_operator": make_user("ivan", branch=south),
        "supervisor": make_user("sonia", role=AgentRole.SUPERVISOR),
        "admin": get_user_model().objects.create_superuser("root", "root@example.com", "pw"),
        "outsider": get_user_model().objects.create_user("guest", password="pw"),
    }
    world["north_chat"] = make_conversation(north_inbox, assignee=world["operator"], messages=3)
    world["south_chat"] = make_conversation(south_inbox, assignee=world["south_operator"], messages=3)
    return world


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def endpoints(world) -> dict[str, str]:
    south, north = world["south_chat"].pk, world["north_chat"].pk
    return {
        "list": "/api/operator/conversations/",
        "detail_own": f"/api/operator/conversations/{north}/",
        "messages_own": f"/api/operator/conversations/{north}/messages/",
        "detail_other": f"/api/operator/conversations/{south}/",
        "messages_other": f"/api/operator/conversations/{south}/messages/",
        "canned": "/api/operator/canned/",
        "operators": "/api/operator/operators/",
        "branches": "/api/operator/branches/",
        "labels": "/api/operator/labels/",
        "fairness": "/api/operator/fairness/",
    }


# who → endpoint → expected status; "operator" belongs to North, "other" rows are South's.
EXPECTED = {
    "anonymous": dict.fromkeys(
        [
            "list",
            "detail_own",
            "messages_own",
            "detail_other",
            "messages_other",
            "canned",
            "operators",
            "branches",
            "labels",
            "fairness",
        ],
        403,
    ),
    "outsider": dict.fromkeys(
        [
            "list",
            "detail_own",
            "messages_own",
            "detail_other",
            "messages_other",
            "canned",
            "operators",
            "branches",
            "labels",
            "fairness",
        ],
        403,
    ),
    "operator": {
        "list": 200,
        "detail_own": 200,
        "messages_own": 200,
        "detail_other": 404,
        "messages_other": 404,
        "canned": 200,
        "operators": 200,
        "branches": 200,
        "labels": 200,
        "fairness": 403,
    },
    "supervisor": {
        "list": 200,
        "detail_own": 200,
        "messages_own": 200,
        "detail_other": 200,
        "messages_other": 200,
        "canned": 200,
        "operators": 200,
        "branches": 200,
        "labels": 200,
        "fairness": 200,
    },
}
EXPECTED["admin"] = EXPECTED["supervisor"]


@pytest.mark.parametrize("who", list(EXPECTED))
def test_permission_matrix(world, who):
    client = client_for(None if who == "anonymous" else world[who])
    urls = endpoints(world)
    got = {name: client.get(url).status_code for name, url in urls.items()}
    assert got == EXPECTED[who]


def test_forbidden_row_answers_like_a_missing_one(world):
    client = client_for(world["operator"])
    forbidden = client.get(f"/api/operator/conversations/{world['south_chat'].pk}/")
    missing = client.get("/api/operator/conversations/999999/")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json()


def test_dashboard_page_access(world):
    assert client_for(None).get("/dashboard/").status_code == 302
    assert client_for(world["outsider"]).get("/dashboard/").status_code == 403
    for who in ("operator", "supervisor", "admin"):
        response = client_for(world[who]).get("/dashboard/")
        assert response.status_code == 200, who
        body = response.content.decode()
        assert '<script id="config" type="application/json">' in body
        assert "<script>" not in body  # CSP: no inline script
        assert "script-src 'self'" in response["Content-Security-Policy"]


def test_login_page_renders_and_logs_in(world):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "olga", "password": "pw-olga"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_list_scopes_operator_to_branch_and_own(world):
    # Assigned to the North operator but routed to South: still theirs.
    own_elsewhere = make_conversation(world["south_inbox"], assignee=world["operator"])
    ids = {row["id"] for row in client_for(world["operator"]).get("/api/operator/conversations/").json()["results"]}
    assert ids == {world["north_chat"].pk, own_elsewhere.pk}
    ids = {row["id"] for row in client_for(world["supervisor"]).get("/api/operator/conversations/").json()["results"]}
    assert ids == {world["north_chat"].pk, world["south_chat"].pk, own_elsewhere.pk}


def test_list_tabs_filters_and_search(world):
    operator = world["operator"]
    unassigned = make_conversation(world["north_inbox"], contact_name="Boris", priority=3)
    resolved = make_conversation(world["north_inbox"], assignee=operator, status=ConversationStatus.RESOLVED)
    label = Label.objects.create(name="vip")
    unassigned.labels.add(label)
    Message.objects.create(
        conversation=resolved,
        direction="in",
        sender_type="contact",
        sender_contact=resolved.contact,
        body="where is my parcel",
        created_at=timezone.now(),
    )
    client = client_for(operator)

    def ids(**params) -> set[int]:
        response = client.get("/api/operator/conversations/", params)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(tab="mine") == {world["north_chat"].pk, resolved.pk}
    assert ids(tab="mine", status="active") == {world["north_chat"].pk}
    assert ids(tab="unassigned") == {unassigned.pk}
    assert ids(priority=3) == {unassigned.pk}
    assert ids(label="vip") == {unassigned.pk}
    assert ids(q="boris") == {unassigned.pk}
    assert ids(q="parcel") == {resolved.pk}
    assert ids(status="resolved") == {resolved.pk}
    assert ids(branch=world["south"].pk) == set()
    assert client.get("/api/operator/conversations/", {"tab": "nope"}).status_code == 400
    counters = client.get("/api/operator/conversations/").json()["counters"]
    assert counters["mine"] == 1 and counters["unassigned"] == 1 and counters["branch"] == 2


def test_keyset_pagination_walks_every_row_once(world):
    base = timezone.now()
    for index in range(7):
        conversation = make_conversation(world["north_inbox"])
        # Two rows share each timestamp: the id breaks the tie.
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=base - timedelta(seconds=index // 2))
    client = client_for(world["supervisor"])
    seen: list[int] = []
    cursor = ""
    while True:
        page = client.get("/api/operator/conversations/", {"limit": 3, "cursor": cursor}).json()
        seen.extend(row["id"] for row in page["results"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = list(Conversation.objects.order_by("-last_activity_at", "-id").values_list("id", flat=True))
    assert seen == expected
    assert client.get("/api/operator/conversations/", {"cursor": "!!!"}).status_code == 400


def test_detail_has_contact_earlier_conversations_routing_log_and_labels(world):
    chat = world["north_chat"]
    chat.routing_log = [{"step": "route", "reason": "inbox branch", "branch": "North"}]
    chat.additional_attributes = {"page": {"url": "https://shop.example/cart", "title": "Cart"}}
    chat.save(update_fields=["routing_log", "additional_attributes"])
    chat.labels.add(Label.objects.create(name="billing"))
    contact = chat.contact
    contact.additional_attributes = {"browser": "Firefox", "os": "Linux"}
    contact.save(update_fields=["additional_attributes"])
    earlier = Conversation.objects.create(
        inbox=world["north_inbox"], contact=contact, status=ConversationStatus.RESOLVED, last_message_preview="old"
    )
    data = client_for(world["operator"]).get(f"/api/operator/conversations/{chat.pk}/").json()["conversation"]
    assert data["labels"] == ["billing"]
    assert data["routing_log"][0]["reason"] == "inbox branch"
    assert data["contact"]["browser"] == "Firefox"
    assert data["page"]["url"] == "https://shop.example/cart"
    assert [row["id"] for row in data["earlier_conversations"]] == [earlier.pk]


def test_history_pages_include_notes_and_go_backwards(world):
    chat = make_conversation(world["north_inbox"], assignee=world["operator"], messages=7)
    Message.objects.create(
        conversation=chat,
        direction="internal",
        sender_type="user",
        sender_user=world["operator"],
        body="note",
        created_at=timezone.now() + timedelta(seconds=1),
    )
    client = client_for(world["operator"])
    url = f"/api/operator/conversations/{chat.pk}/messages/"
    first = client.get(url, {"limit": 5}).json()
    assert first["has_more"] is True
    assert first["messages"][-1]["direction"] == "internal"
    older = client.get(url, {"limit": 5, "before": first["messages"][0]["id"]}).json()
    assert older["has_more"] is False
    all_ids = [m["id"] for m in older["messages"]] + [m["id"] for m in first["messages"]]
    assert all_ids == list(Message.objects.filter(conversation=chat).order_by("id").values_list("id", flat=True))


def test_canned_responses_are_shared_plus_own_branch(world):
    CannedResponse.objects.create(short_code="hello", text="Hello!")
    CannedResponse.objects.create(short_code="north", text="North only", branch=world["north"])
    CannedResponse.objects.create(short_code="south", text="South only", branch=world["south"])
    codes = [row["short_code"] for row in client_for(world["operator"]).get("/api/operator/canned/").json()["results"]]
    assert codes == ["hello", "north"]
    codes = [
        row["short_code"] for row in client_for(world["supervisor"]).get("/api/operator/canned/").json()["results"]
    ]
    assert codes == ["hello", "north", "south"]


def test_operators_have_branch_status_and_load(world):
    rows = {row["name"]: row for row in client_for(world["operator"]).get("/api/operator/operators/").json()["results"]}
    assert rows["Olga"]["branch"]["name"] == "North"
    assert rows["Olga"]["load"] == 1
    assert rows["Olga"]["status"] == "online"
    assert rows["Olga"]["connected"] is False


def test_fairness_counts_assignments_today_and_week(world):
    operator, other = world["operator"], world["south_operator"]
    for user in (operator, operator, other):
        ActivityEvent.objects.create(
            actor_label="routing", verb="assignment.assigned", payload={"to": {"id": user.pk, "name": "x"}}
        )
    ActivityEvent.objects.create(actor_label="routing", verb="assignment.unassigned", payload={"to": None})
    data = client_for(world["supervisor"]).get("/api/operator/fairness/").json()
    rows = {row["id"]: row for row in data["operators"]}
    assert rows[operator.pk]["today"] == 2 and rows[operator.pk]["week"] == 2
    assert rows[other.pk]["today"] == 1
    assert rows[operator.pk]["load"] == 1
    assert data["spread"]["today"] == 2  # the supervisor had none


# --- query counts ---------------------------------------------------------------------------------

# Session, user, agent profile (staff scope), the page of rows, their labels, the counters.
LIST_QUERIES = 6
# Session, user, agent profile, the conversation, the messages, their attachments.
HISTORY_QUERIES = 6


def _fill(world, count: int) -> None:
    label = Label.objects.get_or_create(name="bulk")[0]
    for _ in range(count):
        conversation = make_conversation(world["north_inbox"], assignee=world["operator"], messages=2)
        conversation.labels.add(label)


@pytest.mark.parametrize("rows", [3, 30])
def test_list_query_count_is_constant(world, rows, django_assert_num_queries):
    _fill(world, rows)
    client = client_for(world["operator"])
    with django_assert_num_queries(LIST_QUERIES):
        response = client.get("/api/operator/conversations/")
    assert len(response.json()["results"]) == rows + 1
    # A later page skips the counters.
    cursor = client.get("/api/operator/conversations/", {"limit": 2}).json()["next_cursor"]
    with django_assert_num_queries(LIST_QUERIES - 1):
        page = client.get("/api/operator/conversations/", {"cursor": cursor, "limit": 2})
    assert len(page.json()["results"]) == 2


@pytest.mark.parametrize("rows", [3, 30])
def test_history_query_count_is_constant(world, rows, django_assert_num_queries):
    chat = make_conversation(world["north_inbox"], assignee=world["operator"], messages=rows)
    client = client_for(world["operator"])
    with django_assert_num_queries(HISTORY_QUERIES):
        response = client.get(f"/api/operator/conversations/{chat.pk}/messages/")
    assert len(response.json()["messages"]) == rows


def test_detail_query_count_is_constant(world, django_assert_num_queries):
    client = client_for(world["operator"])
    url = f"/api/operator/conversations/{world['north_chat'].pk}/"
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for _ in range(5):
        Conversation.objects.create(inbox=world["north_inbox"], contact=world["north_chat"].contact)
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(url)


@pytest.mark.postgres
@pytest.mark.slow
def test_ten_thousand_conversations_keep_queries_and_use_an_index(world, django_assert_num_queries):
    if connection.vendor != "postgresql":
        pytest.skip("the plan check needs PostgreSQL")
    now = timezone.now()
    contacts = Contact.objects.bulk_create(Contact(name=f"Bulk {index}") for index in range(10_000))
    statuses = [ConversationStatus.OPEN] * 6 + [ConversationStatus.PENDING, ConversationStatus.RESOLVED] * 2
    inboxes = [(world["north_inbox"], world["north"]), (world["south_inbox"], world["south"])]
    rows = []
    for index, contact in enumerate(contacts):
        inbox, branch = inboxes[index % 2]
        rows.append(
            Conversation(
                inbox=inbox,
                branch=branch,
                contact=contact,
                status=statuses[index % len(statuses)],
                assignee=world["operator"] if index % 7 == 0 else None,
                last_activity_at=now - timedelta(seconds=index),
            )
        )
    Conversation.objects.bulk_create(rows, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE messenger_conversation")

    for who in ("operator", "supervisor"):
        client = client_for(world[who])
        with django_assert_num_queries(LIST_QUERIES):
            response = client.get("/api/operator/conversations/", {"status": "open"})
        assert len(response.json()["results"]) == selectors.LIST_PAGE
        with django_assert_num_queries(LIST_QUERIES - 1):
            client.get("/api/operator/conversations/", {"status": "open", "cursor": response.json()["next_cursor"]})

    cases = [
        ("operator", selectors.ConversationFilters(tab="mine", status="active")),
        ("operator", selectors.ConversationFilters(tab="branch", status="open")),
        ("operator", selectors.ConversationFilters(tab="all", status="open")),
        ("supervisor", selectors.ConversationFilters(tab="all", status="open")),
        ("supervisor", selectors.ConversationFilters(tab="unassigned", status="open")),
        ("supervisor", selectors.ConversationFilters(tab="all", status="active")),
        ("supervisor", selectors.ConversationFilters(tab="all")),
    ]
    for who, filters in cases:
        queryset = selectors.filtered_conversations(staff_scope(world[who]), filters)[: selectors.LIST_PAGE + 1]
        plan = queryset.explain()
        assert "Seq Scan on messenger_conversation" not in plan, (who, filters, plan)
