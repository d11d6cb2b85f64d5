"""Recompute the reports' per-conversation columns from the messages and the audit log (after an
import, or a restore of a partial backup); the scheduler then fills the working-hours figures."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from messenger.actions.report_facts import do_fill_working_seconds, do_rebuild_report_facts


class Command(BaseCommand):
    help = "Recompute the reports' per-conversation facts from messages and audit rows."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--working-hours", action="store_true", help="Also compute every working-hours first response now."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = do_rebuild_report_facts()
        self.stdout.write(f"{rows} conversations rebuilt")
        if options["working_hours"]:
            total = 0
            while written := do_fill_working_seconds():
                total += written
            self.stdout.write(f"{total} working-hours first responses computed")
