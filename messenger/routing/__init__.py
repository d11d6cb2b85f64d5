"""Routing: which branch a new conversation belongs to, and who is eligible to take it.

Pure decisions live here; the state changes they lead to are in ``messenger.actions.assignment``.

Order (SPEC §7): the GeoIP region's routing rule wins; else the inbox's branch; else
``MESSENGER_DEFAULT_BRANCH_ID``. When the inbox follows branch hours and the chosen branch is
closed, its ``fallback_branch`` takes the conversation if that one is open; otherwise the
conversation waits in the closed branch (the visitor gets the offline reply).
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


def rule_for_region(region: Region | None) -> RoutingRule | None:
    if region is None:
        return None
    return (
        RoutingRule.objects.select_related("branch")
        .filter(region=region, is_active=True, branch__is_active=True)
        .order_by("priority", "id")
        .first()
    )


def route_new_conversation(*, inbox: Inbox, ip: str | None, now: datetime) -> RoutingDecision:
    """Region from the visitor's IP → routing rule → branch; else the inbox's; else the default."""
    from messenger.routing.hours import branch_is_open, uses_branch_hours

    region, geo = region_for_ip(ip)
    log: dict[str, Any] = {
        "step": "route",
        "at": now.isoformat(),
        "geoip": geo,
        "region": region.name if region else None,
    }
    branch: Branch | None
    rule = rule_for_region(region)
    if rule is not None:
        branch = rule.branch
        log.update(rule={"id": rule.pk, "priority": rule.priority}, reason="routing rule")
    elif inbox.branch_id and inbox.branch.is_active:
        branch = inbox.branch
        log.update(rule=None, reason="inbox branch")
    else:
        default_id = settings.MESSENGER_DEFAULT_BRANCH_ID
        branch = Branch.objects.filter(pk=default_id, is_active=True).first() if default_id else None
        log.update(rule=None, reason="default branch" if branch else "no branch")
    if branch is not None and uses_branch_hours(inbox) and not branch_is_open(branch, now):
        fallback = branch.fallback_branch if branch.fallback_branch_id else None
        if fallback is not None and fallback.is_active and branch_is_open(fallback, now):
            log["hours"] = {"closed": branch.name, "fallback": fallback.name, "decision": "fallback branch"}
            branch = fallback
        else:
            log["hours"] = {"closed": branch.name, "fallback": fallback.name if fallback else None, "decision": "wait"}
    log["branch"] = branch.name if branch else None
    log["branch_id"] = branch.pk if branch else None
    return RoutingDecision(branch=branch, region=region, log=log)
