"""Create (or update) the django-q2 schedules. Idempotent: run it on every deploy (``release``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

# name → (function, schedule type, minutes, offset of the first run in seconds)
SCHEDULES: dict[str, tuple[str, str, int | None, int]] = {
    "messenger.tick": ("messenger.tasks.tick", "I", 1, 0),
    # The same tick, half a minute later: the loops overlap, so no gap between two ticks.
    "messenger.tick.offset": ("messenger.tasks.tick", "I", 1, 30),
    "messenger.retention": ("messenger.tasks.retention", "D", None, 0),
}


class Command(BaseCommand):
    help = "Create or update the django-q2 schedules of Messenger (tick every minute, retention daily)."

    def handle(self, *args: Any, **options: Any) -> None:
        from django_q.models import Schedule

        now = timezone.now()
        for name, (func, schedule_type, minutes, offset) in SCHEDULES.items():
            defaults = {"func": func, "schedule_type": schedule_type, "minutes": minutes, "repeats": -1}
            schedule, created = Schedule.objects.get_or_create(
                name=name, defaults={**defaults, "next_run": now + timedelta(seconds=offset)}
            )
            changed = [field for field, value in defaults.items() if getattr(schedule, field) != value]
            if changed:
                for field in changed:
                    setattr(schedule, field, defaults[field])
                schedule.save(update_fields=changed)
            state = "created" if created else ("updated: " + ", ".join(changed) if changed else "unchanged")
            self.stdout.write(f"{name}: {state}")
