"""``manage.py anonymise_contact <id>``: remove a contact's personal data, keep its conversations."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messenger.actions.base import Actor
from messenger.actions.privacy import do_anonymise_contact
from messenger.errors import NotFound


class Command(BaseCommand):
    help = "Anonymise a contact: personal fields blanked, its messages' text removed, attachments deleted (audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("contact_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            contact = do_anonymise_contact(contact_id=options["contact_id"], actor=Actor.system("manage.py"))
        except NotFound as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"Contact {contact.pk} anonymised.")
