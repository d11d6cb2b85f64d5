"""GeoIP lookup. A missing or broken database means "no region", logged once, never an error.

The reader is opened lazily once per process. A failure is remembered together with the file's
modification time: the warning is logged once, and a database dropped in place later (a fresh
download) is picked up without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from typing import Any

from django.conf import settings

from messenger.models import Region

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_reader: Any = None
_reader_path: str | None = None
_failed: tuple[str, float | None] | None = None


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def open_reader(path: str) -> Any:
    """Open a MaxMind database; raises on a missing or unreadable file."""
    import geoip2.database

    return geoip2.database.Reader(path)


def _get_reader() -> Any:
    global _reader, _reader_path, _failed
    path = settings.MESSENGER_GEOIP_PATH
    if not settings.MESSENGER_GEOIP_ENABLED or not path:
        return None
    with _lock:
        if _reader is not None and _reader_path == path:
            return _reader
        if _failed is not None and _failed == (path, _mtime(path)):
            return None
        try:
            _reader = open_reader(path)
            _reader_path = path
            _failed = None
            return _reader
        except Exception as error:  # noqa: BLE001 — any unreadable file is "no GeoIP"
            _failed = (path, _mtime(path))
            logger.warning("GeoIP database %s unavailable (%s); conversations get no region", path, error)
            return None


def reader_state() -> str:
    """``disabled``, ``loaded`` or ``missing`` (enabled, but the file cannot be opened): for /health/."""
    if not settings.MESSENGER_GEOIP_ENABLED or not settings.MESSENGER_GEOIP_PATH:
        return "disabled"
    return "loaded" if _get_reader() is not None else "missing"


def reset_reader() -> None:
    global _reader, _reader_path, _failed
    with _lock:
        if _reader is not None:
            try:
                _reader.close()
            except Exception:  # noqa: BLE001, S110
                pass
        _reader = None
        _reader_path = None
        _failed = None


def codes_from_reader(reader: Any, ip: str) -> list[str]:
    """ISO codes for ``ip`` from an open reader, most specific first; raises when not found."""
    if "City" in (reader.metadata().database_type or ""):
        result = reader.city(ip)
        country = result.country.iso_code
        codes = [f"{country}-{sub.iso_code}" for sub in result.subdivisions if sub.iso_code and country]
    else:
        result = reader.country(ip)
        country = result.country.iso_code
        codes = []
    if country:
        codes.append(country)
    return [code.upper() for code in codes]


def lookup_codes(ip: str | None) -> list[str]:
    """ISO codes for ``ip``, most specific first: ["RU-MOW", "RU"]; [] when unknown."""
    if not ip:
        return []
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return []
    if address.is_private or address.is_loopback or address.is_unspecified:
        return []
    reader = _get_reader()
    if reader is None:
        return []
    try:
        return codes_from_reader(reader, ip)
    except Exception:  # noqa: BLE001 — address not found or a corrupt record
        return []


def lookup_region(ip: str | None) -> tuple[Region | None, dict[str, Any]]:
    codes = lookup_codes(ip)
    if not codes:
        return None, {"ip": ip, "codes": []}
    regions = list(Region.objects.all())
    for code in codes:
        for region in regions:
            if code in [c.upper() for c in region.geoip_codes]:
                return region, {"ip": ip, "codes": codes, "matched": code}
    return None, {"ip": ip, "codes": codes, "matched": None}
