"""GeoIP (a real MaxMind-format database built with mmdb-writer), routing rules and their order."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from messenger.models import Region, RoutingRule
from messenger.routing import geo, route_new_conversation
from tests.factories import make_branch, make_inbox, make_user
from tests.test_routing_helpers import connect, start

pytestmark = pytest.mark.django_db

LONDON_IP = "81.2.69.160"
MOSCOW_IP = "5.45.192.10"
UNKNOWN_IP = "8.8.8.8"


def build_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}, "subdivisions": [{"iso_code": "ENG"}]},
    )
    writer.insert_network(
        IPSet(["5.45.192.0/24"]),
        {"country": {"iso_code": "RU", "names": {"en": "Russia"}}, "subdivisions": [{"iso_code": "MOW"}]},
    )
    writer.to_db_file(str(path))
    return path


def build_country_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country", languages=["en"])
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def city_db(tmp_path, settings):
    settings.MESSENGER_GEOIP_PATH = str(build_city_db(tmp_path / "city.mmdb"))
    geo.reset_reader()
    yield settings.MESSENGER_GEOIP_PATH
    geo.reset_reader()


def test_city_database_gives_subdivision_then_country(city_db):
    assert geo.lookup_codes(LONDON_IP) == ["GB-ENG", "GB"]
    assert geo.lookup_codes(MOSCOW_IP) == ["RU-MOW", "RU"]
    assert geo.lookup_codes(UNKNOWN_IP) == []
    assert geo.lookup_codes("10.0.0.1") == []
    assert geo.lookup_codes("not an ip") == []
    assert geo.lookup_codes(None) == []


def test_country_database(tmp_path, settings):
    settings.MESSENGER_GEOIP_PATH = str(build_country_db(tmp_path / "country.mmdb"))
    geo.reset_reader()
    try:
        assert geo.lookup_codes(LONDON_IP) == ["GB"]
    finally:
        geo.reset_reader()


def test_missing_or_broken_database_means_no_region_logged_once(tmp_path, settings, caplog):
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"this is not a maxmind database")
    for path in (tmp_path / "missing.mmdb", broken):
        settings.MESSENGER_GEOIP_PATH = str(path)
        geo.reset_reader()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="messenger.routing.geo"):
            assert geo.lookup_region(LONDON_IP) == (None, {"ip": LONDON_IP, "codes": []})
            assert geo.lookup_region(MOSCOW_IP)[0] is None
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    # A real database dropped in place later is picked up without a restart.
    build_city_db(broken)
    assert geo.lookup_codes(LONDON_IP) == ["GB-ENG", "GB"]
    geo.reset_reader()


def test_conversation_start_without_database_never_fails(tmp_path, settings):
    settings.MESSENGER_GEOIP_PATH = str(tmp_path / "missing.mmdb")
    geo.reset_reader()
    branch = make_branch()
    conversation = start(make_inbox(branch), ip=LONDON_IP)
    assert conversation.region is None and conversation.branch == branch
    assert conversation.routing_log[0]["reason"] == "inbox branch"


def test_rule_beats_inbox_branch_then_inbox_then_default(city_db, settings):
    london, moscow, default = make_branch("London"), make_branch("Moscow"), make_branch("Default")
    settings.MESSENGER_DEFAULT_BRANCH_ID = default.pk
    uk = Region.objects.create(name="UK", geoip_codes=["GB"])
    mow = Region.objects.create(name="Moscow city", geoip_codes=["RU-MOW"])
    RoutingRule.objects.create(region=uk, branch=london, priority=10)
    RoutingRule.objects.create(region=mow, branch=moscow, priority=10)
    RoutingRule.objects.create(region=mow, branch=london, priority=50)
    branch_inbox, global_inbox = make_inbox(moscow), make_inbox(None)
    now = datetime(2025, 3, 3, 12, tzinfo=UTC)

    decision = route_new_conversation(inbox=branch_inbox, ip=LONDON_IP, now=now)
    assert (decision.branch, decision.region) == (london, uk)
    assert decision.log["reason"] == "routing rule" and decision.log["geoip"]["matched"] == "GB"

    decision = route_new_conversation(inbox=global_inbox, ip=MOSCOW_IP, now=now)
    assert decision.branch == moscow and decision.log["rule"]["priority"] == 10  # lowest priority number wins
    assert decision.log["geoip"]["matched"] == "RU-MOW"  # the subdivision before the country

    decision = route_new_conversation(inbox=branch_inbox, ip=UNKNOWN_IP, now=now)
    assert decision.branch == moscow and decision.log["reason"] == "inbox branch"

    decision = route_new_conversation(inbox=global_inbox, ip=UNKNOWN_IP, now=now)
    assert decision.branch == default and decision.log["reason"] == "default branch"

    settings.MESSENGER_DEFAULT_BRANCH_ID = None
    decision = route_new_conversation(inbox=global_inbox, ip=None, now=now)
    assert decision.branch is None and decision.log["reason"] == "no branch"


def test_inactive_rule_or_branch_is_skipped(city_db):
    london, home = make_branch("London"), make_branch("Home")
    uk = Region.objects.create(name="UK", geoip_codes=["gb"])
    RoutingRule.objects.create(region=uk, branch=london, priority=1, is_active=False)
    decision = route_new_conversation(inbox=make_inbox(home), ip=LONDON_IP, now=datetime.now(UTC))
    assert decision.branch == home and decision.region == uk


def test_started_conversation_records_region_and_is_assigned_in_the_rule_branch(city_db):
    london, home = make_branch("London"), make_branch("Home")
    uk = Region.objects.create(name="UK", geoip_codes=["GB"])
    RoutingRule.objects.create(region=uk, branch=london)
    operator = make_user(branch=london)
    connect(operator)
    conversation = start(make_inbox(home), ip=LONDON_IP)
    conversation.refresh_from_db()
    assert conversation.branch == london and conversation.region == uk
    assert conversation.contact.region == uk
    assert conversation.assignee == operator
    route, assigned = conversation.routing_log
    assert route["region"] == "UK" and route["branch"] == "London"
    assert assigned["step"] == "assigned" and assigned["candidates"][0]["user_id"] == operator.pk


def test_geoip_check_command(city_db, tmp_path):
    out = StringIO()
    call_command("geoip_check", city_db, "--ip", LONDON_IP, "--ip", UNKNOWN_IP, stdout=out)
    text = out.getvalue()
    assert "type: GeoLite2-City" in text and "build date: " in text
    assert f"{LONDON_IP}: GB-ENG, GB" in text and f"{UNKNOWN_IP}: not found" in text
    with pytest.raises(CommandError, match="cannot open"):
        call_command("geoip_check", str(tmp_path / "nope.mmdb"), stdout=StringIO())
