"""``manage.py create_api_token <username> [--name NAME]``: a REST API token, printed once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from messenger.actions.api_tokens import do_create_api_token
from messenger.actions.base import Actor
from messenger.errors import InvalidInput


class Command(BaseCommand):
    help = "Create a REST API token acting as a staff user; the token is printed once and not stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for (shown in the admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()  # noqa: N806
        user = User.objects.filter(**{User.USERNAME_FIELD: options["username"]}).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        try:
            token, plaintext = do_create_api_token(user=user, name=options["name"], actor=Actor.system("manage.py"))
        except InvalidInput as error:
            raise CommandError(error.message) from None
        self.stderr.write(f"Token {token.prefix} for {user.get_username()}; it is shown once, store it now:")
        self.stdout.write(plaintext)
