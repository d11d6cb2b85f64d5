"""One HTTP POST to a webhook's receiver, refusing private targets (SSRF).

A target is checked after DNS resolution and the connection goes to the very address that was
checked (the Host header and TLS name stay the URL's host): a name that resolves to a public
address for the check and to 127.0.0.1 for the connection has no second lookup to exploit.
Redirects are never followed (``http.client`` does not): a 3xx is the receiver's answer.
A request has a timeout per socket operation and a deadline as a whole (``total_deadline``): a
receiver dripping its answer a byte at a time cannot hold a worker past it.
``MESSENGER_WEBHOOK_ALLOW_PRIVATE`` lifts the address check (development, tests).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

RESPONSE_BODY_LIMIT = 2048
USER_AGENT = "Messenger-Webhooks/1.0"


class UnsafeTarget(Exception):
    """The URL is not http(s), or its host is (or resolves to) a non-public address."""


class NonPublicAddress(UnsafeTarget):
    """The host is, or resolves to, an address that is not public (what
    ``MESSENGER_WEBHOOK_ALLOW_PRIVATE`` lifts)."""


class Unresolvable(UnsafeTarget):
    """The host does not resolve (now): worth another try later."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    retry_after: str | None
    duration_ms: int


def address_refused(address: str) -> str | None:
    """Why ``address`` may not be a webhook's target (None: it may). An IPv6 address that
    carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002:…``) is judged by it."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped if ip.ipv4_mapped is not None else ip.sixtofour
        ip = embedded if embedded is not None else ip
    for flag in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(ip, flag):
            return f"{ip} is {flag[3:].replace('_', '-')}"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def _split(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("only http and https URLs are allowed")
    if not parts.hostname:
        raise UnsafeTarget("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeTarget("credentials in the URL are not allowed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("the URL's port is not valid") from None
    # The request line is ASCII: a path typed with other characters is sent percent-encoded (as
    # a browser does), an already encoded one unchanged.
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    return parts.scheme, parts.hostname, port, path


def resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """The address to connect to for ``url``, checked; raises ``UnsafeTarget``.

    Every address the name resolves to must be public (one private answer refuses the URL).
    """
    scheme, host, port, path = _split(url)
    if allow_private is None:
        allow_private = settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Unresolvable(f"{host} does not resolve: {error}") from None
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        for address in addresses:
            reason = address_refused(address)
            if reason:
                raise NonPublicAddress(f"{host} resolves to a non-public address ({reason})")
    return Target(scheme=scheme, host=host, port=port, path=path, address=addresses[0])


def check_url(url: str) -> None:
    """Save-time check (the admin): http(s), and no literal or resolved non-public address. A
    name that does not resolve yet is accepted: the send checks again."""
    scheme, host, port, _path = _split(url)
    if settings.MESSENGER_WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            resolve(url)
        except Unresolvable:
            pass
        return
    reason = address_refused(host)
    if reason:
        raise NonPublicAddress(f"non-public address ({reason})")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def total_deadline(timeout: float) -> float:
    """The most a whole request may take (connecting, sending, the answer's head and first
    ``RESPONSE_BODY_LIMIT`` bytes), ``timeout`` being the limit of each socket operation."""
    return 3 * timeout


def storable(text: str) -> str:
    """``text`` as a database column takes it: PostgreSQL text cannot hold NUL."""
    return text.replace("\x00", "\ufffd")


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float) -> Response:
    """POST ``body`` to ``target`` (connecting to its checked address); raises ``OSError`` (and
    ``http.client.HTTPException``) on a connection error, ``TimeoutError`` on a timeout of one
    operation or past ``total_deadline``."""
    connection_class = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(target, timeout)
    started = time.monotonic()
    cut_off = threading.Event()

    def stop() -> None:
        # The socket timeout bounds each read, not their sum: past the deadline the socket is
        # shut down, and the read in progress ends at once.
        cut_off.set()
        sock = connection.sock
        if sock is not None:
            try:
                # The plain socket's shutdown, under TLS too: the TLS layer's would drop its
                # state under the reading thread's feet.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(total_deadline(timeout), stop)
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target.path, body=body, headers={"User-Agent": USER_AGENT, **headers})
        response = connection.getresponse()
        text = response.read(RESPONSE_BODY_LIMIT).decode("utf-8", "replace")
        if cut_off.is_set():
            raise TimeoutError("timed out")
        return Response(
            status=response.status,
            body=storable(text),
            retry_after=response.getheader("Retry-After"),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    except Exception:
        # Whatever the cut-off made the read raise, it is the deadline.
        if cut_off.is_set():
            raise TimeoutError("timed out") from None
        raise
    finally:
        timer.cancel()
        connection.close()
