"""Routing: which branch a new conversation belongs to, and who is eligible to take it.

Pure decisions live here; the state changes they lead to are in ``messenger.actions.assignment``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from messenger.models import Branch, Inbox, Region, RoutingRule


@dataclass
class RoutingDecision:
    branch: Branch | None
    region: Region | None
    log: dict[str, Any] = field(default_factory=dict)


def region_for_ip(ip: str | None) -> tuple[Region | None, dict[str, Any]]:
    from messenger.routing.geo import lookup_region

    return lookup_region(ip)


def route_new_conversation(*, inbox: Inbox, ip: str | None, now: datetime) -> RoutingDecision:
    """Region from the visitor's IP → routing rule → branch; else the inbox's; else the default."""
    region, geo = region_for_ip(ip)
    log: dict[str, Any] = {
        "step": "route",
        "at": now.isoformat(),
        "geoip": geo,
        "region": region.name if region else None,
    }
    if inbox.branch_id:
        log.update(rule=None, reason="inbox branch")
        return RoutingDecision(branch=inbox.branch, region=region, log={**log, "branch": inbox.branch.name})
    if region is not None:
        rule = (
            RoutingRule.objects.select_related("branch")
            .filter(region=region, is_active=True, branch__is_active=True)
            .order_by("priority", "id")
            .first()
        )
        if rule is not None:
            log.update(rule={"id": rule.pk, "priority": rule.priority}, reason="routing rule", branch=rule.branch.name)
            return RoutingDecision(branch=rule.branch, region=region, log=log)
    default_id = settings.MESSENGER_DEFAULT_BRANCH_ID
    branch = Branch.objects.filter(pk=default_id).first() if default_id else None
    log.update(rule=None, reason="default branch" if branch else "no branch", branch=branch.name if branch else None)
    return RoutingDecision(branch=branch, region=region, log=log)
