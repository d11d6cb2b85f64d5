"""The client's address behind reverse proxies (messenger/client_address.py): one rule for HTTP and
WebSocket, used by the throttles, GeoIP routing, the audit log and the dashboard."""

from __future__ import annotations

import ipaddress
import json
import urllib.request

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client, override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.client_address import MAX_HOPS, client_address, parse_address, parse_trusted_proxies
from messenger.models import ActivityEvent, Contact, Conversation, Region, RoutingRule
from messenger.routing import geo
from messenger.selectors import conversation_detail
from tests.conftest import Socket, bootstrap, new_client_id, visitor_rows
from tests.factories import VISITOR_ORIGIN, make_branch, make_inbox, make_user
from tests.live import run_async
from tests.test_routing import LONDON_IP, build_city_db
from tests.test_throttle import from_ip

PROXY = "10.0.0.5"
PROXIES = parse_trusted_proxies("10.0.0.0/24, 2001:db8:ff::/48")
STRANGER = "198.51.100.7"


def test_parse_trusted_proxies():
    assert parse_trusted_proxies("") == ()
    assert parse_trusted_proxies(" 10.0.0.1 , ,::1, 172.16.0.0/12,") == (
        *parse_trusted_proxies("10.0.0.1/32"),
        *parse_trusted_proxies("::1/128"),
        *parse_trusted_proxies("172.16.0.0/12"),
    )
    for bad in ("10.0.0.0/33", "proxy.example", "10.0.0.1:80", "*"):
        with pytest.raises(ValueError, match="not an IP address or CIDR network"):
            parse_trusted_proxies(bad)


def test_the_header_counts_only_from_a_trusted_peer():
    # From anyone else it is ignored: a spoofed header changes nothing.
    assert client_address(STRANGER, ["203.0.113.1"], trusted=PROXIES) == STRANGER
    assert client_address(PROXY, ["203.0.113.1"], trusted=()) == PROXY
    assert client_address(PROXY, ["203.0.113.1"], trusted=PROXIES) == "203.0.113.1"
    # A trusted proxy that sent no header (its own health check) is the client itself.
    assert client_address(PROXY, [], trusted=PROXIES) == PROXY
    assert client_address(PROXY, ["", " , "], trusted=PROXIES) == PROXY
    # No peer address at all (a Unix socket): unknown, whatever the header says.
    assert client_address(None, ["203.0.113.1"], trusted=PROXIES) is None
    assert client_address("", ["203.0.113.1"], trusted=PROXIES) is None


def test_right_most_entry_that_is_not_a_trusted_proxy():
    # The client may write anything on the left; our proxies append on the right.
    assert client_address(PROXY, ["6.6.6.6, 203.0.113.1"], trusted=PROXIES) == "203.0.113.1"
    # A chain of trusted proxies is walked through.
    assert client_address(PROXY, ["6.6.6.6, 203.0.113.1, 10.0.0.9, 10.0.0.7"], trusted=PROXIES) == "203.0.113.1"
    assert client_address(PROXY, ["6.6.6.6,203.0.113.1,2001:db8:ff::3"], trusted=PROXIES) == "203.0.113.1"
    # Only trusted hops: the furthest one is the client.
    assert client_address(PROXY, ["10.0.0.8, 10.0.0.9"], trusted=PROXIES) == "10.0.0.8"
    # Several headers count as one list, in the order received.
    assert client_address(PROXY, ["6.6.6.6", "203.0.113.1, 10.0.0.9"], trusted=PROXIES) == "203.0.113.1"


def test_garbage_stops_the_walk_at_the_nearest_readable_hop():
    assert client_address(PROXY, ["unknown"], trusted=PROXIES) == PROXY
    assert client_address(PROXY, ["6.6.6.6, unknown, 10.0.0.9"], trusted=PROXIES) == "10.0.0.9"
    assert client_address(PROXY, ["6.6.6.6, evil.example"], trusted=PROXIES) == PROXY
    assert client_address(PROXY, ["6.6.6.6, 300.1.1.1"], trusted=PROXIES) == PROXY
    assert client_address(PROXY, ["6.6.6.6, fe80::1%eth0"], trusted=PROXIES) == PROXY
    assert client_address(PROXY, ["6.6.6.6, \x00\xff"], trusted=PROXIES) == PROXY
    # Empty elements are not hops.
    assert client_address(PROXY, ["203.0.113.1, ,"], trusted=PROXIES) == "203.0.113.1"


def test_ports_brackets_spaces_and_mapped_addresses():
    assert client_address(PROXY, ["  203.0.113.1:5123  "], trusted=PROXIES) == "203.0.113.1"
    assert client_address(PROXY, ["[2001:DB8::1]"], trusted=PROXIES) == "2001:db8::1"
    assert client_address(PROXY, ["[2001:db8::1]:443"], trusted=PROXIES) == "2001:db8::1"
    assert client_address(PROXY, ["2001:db8:0:0::1"], trusted=PROXIES) == "2001:db8::1"
    assert client_address(PROXY, ["::ffff:203.0.113.1"], trusted=PROXIES) == "203.0.113.1"
    # The peer of a dual-stack socket is IPv4-mapped; it is still the trusted proxy.
    assert client_address("::ffff:10.0.0.5", ["203.0.113.1"], trusted=PROXIES) == "203.0.113.1"
    for bad in ("[2001:db8::1", "[2001:db8::1]x", "203.0.113.1:", "203.0.113.1:http", "1.2.3.4:1234567", "[]"):
        assert parse_address(bad) is None, bad


def test_a_huge_header_is_read_from_its_tail_only():
    spoof = ", ".join(["6.6.6.6"] * 20_000)
    assert client_address(PROXY, [spoof + ", 203.0.113.1"], trusted=PROXIES) == "203.0.113.1"
    # A longer chain of trusted hops than anyone runs: the walk stops at MAX_HOPS.
    chain = ["6.6.6.6"] + [f"10.0.0.{index}" for index in range(1, MAX_HOPS + 5)]
    assert client_address(PROXY, [", ".join(chain)], trusted=PROXIES) == f"10.0.0.{len(chain) - MAX_HOPS}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("0123456789abcdef.:[]%, \t\x00é"), max_size=60), max_size=4))
def test_any_header_gives_the_peer_or_an_address(headers):
    address = client_address(PROXY, headers, trusted=PROXIES)
    assert address == PROXY or ipaddress.ip_address(address)
    assert client_address(STRANGER, headers, trusted=PROXIES) == STRANGER


def _bootstrap(client: Client, inbox, *, peer: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client.post(
        "/api/widget/bootstrap/",
        {"widget_token": inbox.widget_token},
        content_type="application/json",
        HTTP_ORIGIN=VISITOR_ORIGIN,
        REMOTE_ADDR=peer,
        **extra,
    )


def recorded_ip(response) -> str:  # noqa: ANN001
    return visitor_rows(response.json()).contact.additional_attributes["ip"]


@pytest.mark.django_db
@pytest.mark.rate_window
@override_settings(MESSENGER_TRUSTED_PROXIES=PROXIES, MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP="60/min")
def test_visitors_behind_a_trusted_proxy_are_throttled_each_on_their_own():
    inbox = make_inbox(make_branch())
    client = Client()
    responses = [_bootstrap(client, inbox, peer=PROXY, forwarded=f"6.6.6.6, 203.0.113.{index}") for index in range(65)]
    assert [response.status_code for response in responses] == [200] * 65
    # Each visitor's contact (made when they write) records their own address.
    assert [recorded_ip(response) for response in responses] == [f"203.0.113.{index}" for index in range(65)]
    # One of them is still held to the per-IP limit.
    codes = [_bootstrap(client, inbox, peer=PROXY, forwarded="203.0.113.0").status_code for _ in range(60)]
    assert codes == [200] * 59 + [429]


@pytest.mark.django_db
@pytest.mark.rate_window
@override_settings(MESSENGER_TRUSTED_PROXIES=PROXIES, MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP="60/min")
def test_a_spoofed_header_from_an_untrusted_peer_is_ignored():
    inbox = make_inbox(make_branch())
    client = Client()
    responses = [_bootstrap(client, inbox, peer=STRANGER, forwarded=f"203.0.113.{index}") for index in range(65)]
    assert [response.status_code for response in responses] == [200] * 60 + [429] * 5
    assert {recorded_ip(response) for response in responses[:60]} == {STRANGER}


def _socket_through(inbox, boot: dict, *, peer: str, forwarded: list[bytes]) -> Socket:
    """A visitor socket as the server sees it when ``peer`` connects and sends these headers."""
    from project.asgi import application

    path = f"/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
    headers = [(b"origin", VISITOR_ORIGIN.encode()), *((b"x-forwarded-for", value) for value in forwarded)]
    return Socket(WebsocketCommunicator(from_ip(application, peer), path, headers=headers))


@pytest.mark.django_db(transaction=True)
@override_settings(MESSENGER_TRUSTED_PROXIES=PROXIES)
async def test_the_websocket_takes_the_same_address():
    inbox = await database_sync_to_async(lambda: make_inbox(make_branch()))()
    for peer, forwarded, expected in (
        (PROXY, [b"6.6.6.6", b"203.0.113.77"], "203.0.113.77"),
        (STRANGER, [b"6.6.6.6, 203.0.113.77"], STRANGER),
    ):
        boot = await database_sync_to_async(bootstrap)(inbox)
        socket = _socket_through(inbox, boot, peer=peer, forwarded=forwarded)
        assert (await socket.connect())[0]
        await socket.expect("hello")
        ack = await socket.command("message.send", client_id=new_client_id(), body="hello")
        assert ack["type"] == "ack", ack
        await socket.close()
        conversation = await database_sync_to_async(Conversation.objects.get)(pk=ack["data"]["conversation_id"])
        assert conversation.additional_attributes["ip"] == expected
        audited = await database_sync_to_async(
            lambda conversation=conversation: list(
                ActivityEvent.objects.filter(conversation=conversation, actor_contact__isnull=False).values_list(
                    "verb", "ip"
                )
            )
        )()
        assert audited == [("conversation.created", expected)]


@pytest.mark.django_db(transaction=True)
@override_settings(MESSENGER_TRUSTED_PROXIES=PROXIES, MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP=1)
async def test_the_captcha_counter_counts_each_visitor_behind_the_proxy():
    inbox = await database_sync_to_async(lambda: make_inbox(make_branch()))()
    answers = []
    for client in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.1"):
        boot = await database_sync_to_async(bootstrap)(inbox, ip=client)
        socket = _socket_through(inbox, boot, peer=PROXY, forwarded=[f"6.6.6.6, {client}".encode()])
        assert (await socket.connect())[0]
        await socket.expect("hello")
        reply = await socket.command("message.send", client_id=new_client_id(), body="hello")
        answers.append(reply.get("code", reply["type"]))
        await socket.close()
    assert answers == ["ack", "ack", "ack", "captcha_required"]


@pytest.mark.django_db
@override_settings(MESSENGER_TRUSTED_PROXIES=PROXIES)
def test_origin_denials_and_admin_actions_audit_the_client_address():
    inbox = make_inbox(make_branch(), allowed=["shop.example"])
    response = _bootstrap(Client(), inbox, peer=PROXY, forwarded="203.0.113.9")
    assert response.status_code == 403
    denied = ActivityEvent.objects.get(verb="widget.origin_denied")
    assert denied.ip == "203.0.113.9"

    admin = make_user(role="admin", is_superuser=True, is_staff=True)
    contact = Contact.objects.create()
    client = Client()
    client.force_login(admin)
    response = client.post(
        "/admin/messenger/contact/",
        {"action": "export_contacts", "_selected_action": [contact.pk]},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="203.0.113.10",
    )
    assert response.status_code == 200
    assert ActivityEvent.objects.get(verb="contact.exported").ip == "203.0.113.10"


@pytest.mark.django_db(transaction=True)
def test_behind_a_live_proxy_geoip_routing_and_the_dashboard_see_the_visitor(live_server_factory, tmp_path):
    """A real daphne whose TCP peer (this test, on 127.0.0.1) is the trusted proxy."""
    city_db = build_city_db(tmp_path / "city.mmdb")
    london, home = make_branch("London"), make_branch("Home")
    uk = Region.objects.create(name="UK", geoip_codes=["GB"])
    RoutingRule.objects.create(region=uk, branch=london)
    inbox = make_inbox(home)
    server = live_server_factory({"MESSENGER_TRUSTED_PROXIES": "127.0.0.1", "MESSENGER_GEOIP_PATH": str(city_db)})
    forwarded = f"5.45.192.10, {LONDON_IP}"  # whatever the visitor claims, then what our proxy saw

    request = urllib.request.Request(  # noqa: S310
        server.url + "/api/widget/bootstrap/",
        data=json.dumps({"widget_token": inbox.widget_token}).encode(),
        headers={"Content-Type": "application/json", "Origin": VISITOR_ORIGIN, "X-Forwarded-For": forwarded},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        boot = json.loads(response.read())

    async def send() -> dict:
        url = server.url.replace("http", "ws") + (
            f"/ws/widget/?widget_token={inbox.widget_token}&token={boot['session_token']}"
        )
        async with websockets.connect(
            url, origin=VISITOR_ORIGIN, additional_headers={"X-Forwarded-For": forwarded}
        ) as socket:
            while json.loads(await socket.recv())["type"] != "hello":
                pass
            await socket.send(
                json.dumps({"type": "message.send", "ref": "1", "client_id": new_client_id(), "body": "hi"})
            )
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("ref") == "1":
                    return frame

    ack = run_async(send())
    assert ack["type"] == "ack", ack
    conversation = Conversation.objects.get(pk=ack["data"]["conversation_id"])
    assert (conversation.region, conversation.branch) == (uk, london)
    assert conversation.routing_log[0]["geoip"] == {"ip": LONDON_IP, "codes": ["GB-ENG", "GB"], "matched": "GB"}
    assert conversation.additional_attributes["ip"] == LONDON_IP
    assert conversation_detail(conversation)["contact"]["ip"] == LONDON_IP
    assert visitor_rows(boot).contact_id == conversation.contact_id
    assert ActivityEvent.objects.get(verb="conversation.created", conversation=conversation).ip == LONDON_IP
    geo.reset_reader()
