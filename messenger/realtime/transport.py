"""The WebSocket transport (daphne on autobahn): fail a connection with a close frame, not a drop.

Autobahn fails a connection — a message above daphne's ``--websocket-max-message-size`` (1 MiB by
default), a text frame that is not UTF-8, a protocol violation — by dropping the TCP connection
(its ``failByDrop`` option, on by default and not exposed by daphne): the client sees 1006 and
cannot tell it from a network failure. With the option off it sends the close frame the RFC
names (1009, 1007, 1002) and the reason, then closes; a peer that does not answer the close is
dropped after autobahn's close-handshake timeout. This module is the only place that reaches
into daphne; tests/test_bad_input.py fails if it stops working.
"""

from __future__ import annotations

from typing import Any

_patched = False


def close_failed_connections() -> None:
    """Make daphne's WebSocket factory fail connections with a close frame. Idempotent."""
    global _patched
    if _patched:
        return
    from daphne.ws_protocol import WebSocketFactory

    reset = WebSocketFactory.resetProtocolOptions

    def reset_protocol_options(self: Any) -> None:
        reset(self)
        self.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_protocol_options
    _patched = True
