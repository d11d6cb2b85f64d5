"""Open a MaxMind GeoIP database and report what it is: ``manage.py geoip_check [path] [--ip …]``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Check a GeoIP (MaxMind City/Country) database file: type, build date, sample lookup."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", help="database file (default: MESSENGER_GEOIP_PATH)")
        parser.add_argument("--ip", action="append", default=[], help="address to look up (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        from messenger.routing.geo import codes_from_reader, open_reader

        path = options["path"] or settings.MESSENGER_GEOIP_PATH
        try:
            reader = open_reader(path)
        except Exception as error:  # noqa: BLE001 — report any unreadable file the same way
            raise CommandError(f"{path}: cannot open ({error})") from error
        try:
            meta = reader.metadata()
            built = datetime.fromtimestamp(meta.build_epoch, tz=UTC).isoformat()
            self.stdout.write(f"path: {path}")
            self.stdout.write(f"type: {meta.database_type}")
            self.stdout.write(f"build date: {built}")
            self.stdout.write(f"ip version: {meta.ip_version}, nodes: {meta.node_count}")
            for ip in options["ip"]:
                try:
                    codes = codes_from_reader(reader, ip)
                except Exception as error:  # noqa: BLE001
                    self.stdout.write(f"{ip}: not found ({error.__class__.__name__})")
                else:
                    self.stdout.write(f"{ip}: {', '.join(codes) or '(no codes)'}")
        finally:
            reader.close()
