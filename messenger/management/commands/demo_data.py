"""Demo data for the embedded default: users, two branches in two regions, an inbox, canned replies.

Idempotent: every row is looked up by a natural key and brought back to the demo values, so the
command can run before every ``make run``. Passwords are reset to the documented ones each time.

The demo inbox belongs to the Moscow branch. Routing rules still win (a visitor whose IP resolves
to Germany goes to Berlin), but a visitor on localhost has no GeoIP region, and a global inbox
would then need ``MESSENGER_DEFAULT_BRANCH_ID``, which a command cannot set.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from messenger.models import (
    AgentProfile,
    AgentRole,
    AgentStatus,
    Branch,
    CannedResponse,
    Inbox,
    Label,
    Region,
    RoutingRule,
)

DEMO_WIDGET_TOKEN = "demo-widget-token"
# Addresses a server may listen on that a browser on this machine reaches as localhost.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::", "::1", ""}  # noqa: S104 — names, not a bind

# name → (time zone, region, GeoIP codes, holiday calendar)
BRANCHES: dict[str, tuple[str, str, list[str], str]] = {
    "Moscow": ("Europe/Moscow", "Central", ["RU-MOW", "RU"], "RU"),
    "Berlin": ("Europe/Berlin", "Europe", ["DE", "AT", "CH"], "DE"),
}

# username (= password) → (first name, role, branch name or None)
USERS: dict[str, tuple[str, str, str | None]] = {
    "admin": ("Admin", AgentRole.ADMIN, None),
    "supervisor": ("Svetlana", AgentRole.SUPERVISOR, "Moscow"),
    "operator1": ("Olga", AgentRole.OPERATOR, "Moscow"),
    "operator2": ("Ivan", AgentRole.OPERATOR, "Moscow"),
    "operator3": ("Jonas", AgentRole.OPERATOR, "Berlin"),
}

INBOX_SETTINGS: dict[str, Any] = {
    # The demo page is served from localhost, the widget from 127.0.0.1: two origins.
    "security": {"allowed_domains": ["localhost"]},
    "widget": {
        "title": "Demo shop support",
        "greeting": "Hi! Ask us anything about your order.",
        "color": "#2563eb",
        "position": "right",
    },
    "offline": {"enabled": True, "message": "We are offline right now. Leave your e-mail and we will reply."},
    "automation": {"auto_reply": {"enabled": True, "message": "Thanks! An operator will answer in a minute."}},
    "rating": {"enabled": True, "scale": "stars"},
}

CANNED_RESPONSES: dict[str, str] = {
    "hello": "Hello! How can I help you?",
    "thanks": "Thank you for contacting us. Have a nice day!",
    "delivery": "Delivery takes 2-3 working days; you will get a tracking number by e-mail.",
    "refund": "Refunds are processed within 5 working days after we receive the item.",
}

LABELS: dict[str, str] = {"billing": "#dc2626", "delivery": "#2563eb", "vip": "#ca8a04", "bug": "#7c3aed"}


class Command(BaseCommand):
    help = "Create or refresh the demo data (admin/admin, two branches, operators, the 'Demo shop' inbox)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="the address the server listens on, for the URLs printed"
        )
        parser.add_argument("--port", type=int, default=8000, help="its port, for the URLs printed")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        self.host, self.port = options["host"], options["port"]
        branches = self.branches()
        self.users(branches)
        inbox = self.inbox(branches["Moscow"])
        for code, text in CANNED_RESPONSES.items():
            CannedResponse.objects.update_or_create(branch=None, short_code=code, defaults={"text": text})
        for name, color in LABELS.items():
            Label.objects.update_or_create(name=name, defaults={"color": color})
        self.report(inbox)

    def branches(self) -> dict[str, Branch]:
        branches: dict[str, Branch] = {}
        for name, (tz, region_name, codes, calendar) in BRANCHES.items():
            branch, _ = Branch.objects.update_or_create(
                name=name, defaults={"timezone": tz, "holiday_calendar": calendar, "is_active": True}
            )
            region, _ = Region.objects.update_or_create(name=region_name, defaults={"geoip_codes": codes})
            RoutingRule.objects.update_or_create(
                region=region, branch=branch, defaults={"priority": 10, "is_active": True}
            )
            branches[name] = branch
        return branches

    def users(self, branches: dict[str, Branch]) -> None:
        User = get_user_model()
        for username, (first_name, role, branch_name) in USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            user.first_name = first_name
            user.email = f"{username}@example.com"
            user.is_staff = role == AgentRole.ADMIN
            user.is_superuser = role == AgentRole.ADMIN
            user.is_active = True
            user.set_password(username)
            user.save()
            AgentProfile.objects.update_or_create(
                user=user,
                defaults={
                    "role": role,
                    "branch": branches[branch_name] if branch_name else None,
                    # Seeding, not a live status change: nobody is connected yet to be told.
                    "status": AgentStatus.ONLINE,
                    "max_concurrent": 5,
                },
            )

    def inbox(self, branch: Branch) -> Inbox:
        inbox = Inbox.objects.filter(widget_token=DEMO_WIDGET_TOKEN).first()
        if inbox is None:
            return Inbox.objects.create(
                name="Demo shop", branch=branch, widget_token=DEMO_WIDGET_TOKEN, settings=INBOX_SETTINGS
            )
        # The branch of an existing inbox is never changed (Inbox.save refuses it).
        inbox.name = "Demo shop"
        inbox.is_active = True
        inbox.settings = {**inbox.settings, **INBOX_SETTINGS}
        inbox.save()
        return inbox

    def report(self, inbox: Inbox) -> None:
        local = self.host in LOCAL_HOSTS
        host = "127.0.0.1" if local else f"[{self.host}]" if ":" in self.host else self.host
        origin = f"http://{host}:{self.port}"
        lines = [
            "Demo data ready.",
            f"  Operator dashboard: {origin}/dashboard/",
            "      operator1 / operator1, operator2 / operator2 (Moscow), operator3 / operator3 (Berlin)",
            "      supervisor / supervisor",
            f"  Reports:            {origin}/dashboard/reports/",
            f"  Admin:              {origin}/admin/  (admin / admin)",
            f"  API documentation:  {origin}/api/docs/  (tokens: python manage.py create_api_token <username>)",
        ]
        if local:
            # The page on localhost, the widget from 127.0.0.1: two origins, as on a real site.
            lines.append(
                f"  Demo page:          http://localhost:{self.port}/demo/"
                f"  (inbox '{inbox.name}', widget token {inbox.widget_token})"
            )
        else:
            lines.append(
                "  Demo page:          only when the server listens on 127.0.0.1 or 0.0.0.0 (it allows localhost)"
            )
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
