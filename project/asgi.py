"""ASGI entry point: HTTP → Django; WebSocket → the messenger consumers.

The visitor socket checks its Origin against the inbox's allowed domains itself; the operator
socket's Origin must be this site's own scheme, host and port (``realtime.origin``), and it carries
the Django session.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import get_resolver, path  # noqa: E402

from messenger.consumers import OperatorConsumer, VisitorConsumer  # noqa: E402
from messenger.realtime.origin import OperatorOriginValidator  # noqa: E402
from messenger.realtime.session import SessionUserMiddleware  # noqa: E402
from messenger.realtime.transport import close_failed_connections  # noqa: E402
from messenger.scheduler import EmbeddedSchedulerMiddleware  # noqa: E402

close_failed_connections()  # a failed WebSocket gets its close code, not a dropped connection

websocket_routes = URLRouter(
    [
        path("ws/widget/", VisitorConsumer.as_asgi()),
        path("ws/operator/", OperatorOriginValidator(SessionUserMiddleware(OperatorConsumer.as_asgi()))),
    ]
)

application = EmbeddedSchedulerMiddleware(ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_routes}))

# Everything loaded at startup lives as long as the process — the views too, imported here rather
# than by the first request: move it out of the cyclic collector's reach, so that a full
# collection scans only what was made since (docs/benchmarks.md, "Nothing per message for the
# garbage collector").
get_resolver().url_patterns  # noqa: B018
gc.freeze()
