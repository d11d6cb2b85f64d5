"""The visitor's own address, behind reverse proxies we trust and no others.

One rule for HTTP and WebSocket (``client_address``): when the direct peer is one of
``MESSENGER_TRUSTED_PROXIES``, the client is the right-most ``X-Forwarded-For`` entry that is not a
trusted proxy; otherwise the header is ignored, since anyone can send it.

Entries are read from the right, where our own proxies appended them, and the walk stops at the
first one that is not a trusted proxy. An entry that is not an address (``unknown``, a host name,
garbage) also stops the walk, and then the nearest hop we could read — the trusted proxy that
reported it — stands for the client: everything to its left came through a hop we cannot
identify, so it is not believed. ``1.2.3.4:80``, ``[2001:db8::1]`` and ``[2001:db8::1]:80`` are
read as their address; IPv4-mapped IPv6 addresses as IPv4. Only the right-most ``MAX_HOPS``
entries are looked at, so a huge header costs no more than a short one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Longer proxy chains than this do not exist in practice; beyond it the walk stops.
MAX_HOPS = 16


def parse_trusted_proxies(raw: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 172.16.0.0/12, ::1"`` → networks; a ``ValueError`` names a bad entry."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR network: {item!r}") from None
        networks.append(network)
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """One address as a proxy or server writes it, with an optional port or IPv6 brackets; None
    when it is anything else."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not _is_port(text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:
        text, port = text.split(":")
        if not _is_port(":" + port):
            return None
    if not text or len(text) > 45 or "%" in text:
        return None  # 45: the longest IPv6 text; zone ids (%eth0) cannot be stored
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_port(text: str) -> bool:
    return len(text) <= 6 and text[0] == ":" and text[1:].isdigit()


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str] = (), *, trusted: Sequence[Network] | None = None
) -> str | None:
    """The client's address: ``peer`` (the socket's other end), or from ``forwarded_for`` (every
    ``X-Forwarded-For`` header value, in the order received) when ``peer`` is a trusted proxy.
    None when the peer is not an address (a Unix socket)."""
    if trusted is None:
        trusted = settings.MESSENGER_TRUSTED_PROXIES
    hop = parse_address(peer) if peer else None
    if hop is None:
        return None
    if not trusted or not _trusted(hop, trusted):
        return str(hop)
    # Only the tail can matter: the remainder left of MAX_HOPS entries stays one unparsable item.
    entries = ",".join(forwarded_for).rsplit(",", MAX_HOPS)
    for entry in reversed(entries):
        if not entry.strip():
            continue  # "a, , b" or a trailing comma: an empty list element, not a hop
        address = parse_address(entry)
        if address is None:
            break
        hop = address
        if not _trusted(hop, trusted):
            break
    return str(hop)


def request_client_address(request: HttpRequest) -> str | None:
    """``client_address`` of a Django request (Django joins repeated headers with commas)."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    return client_address(request.META.get("REMOTE_ADDR"), [forwarded] if forwarded else [])


def scope_client_address(scope: dict[str, Any]) -> str | None:
    """``client_address`` of an ASGI scope (a WebSocket's handshake)."""
    client = scope.get("client")
    forwarded = [value.decode("latin-1") for key, value in scope.get("headers", []) if key == b"x-forwarded-for"]
    return client_address(client[0] if client else None, forwarded)
