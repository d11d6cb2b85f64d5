"""``manage.py export_contact <id>``: a contact's data as JSON on stdout (GDPR access request)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messenger.actions.base import Actor
from messenger.actions.privacy import do_export_contact
from messenger.errors import NotFound


class Command(BaseCommand):
    help = "Print everything stored about a contact as JSON (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("contact_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            data = do_export_contact(contact_id=options["contact_id"], actor=Actor.system("manage.py"))
        except NotFound as error:
            raise CommandError(error.message) from None
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
