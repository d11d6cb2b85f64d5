"""Run modes chosen by the environment (SPEC §2), each proven in a fresh interpreter.

Settings are read once per process, so every case imports them in a subprocess with a controlled
environment: nothing inherited from the test run can leak into the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent

# Printed by the child: the parts of settings that decide the run mode.
PROBE = """
import json, django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"],
    "name": str(db["NAME"]),
    "host": db.get("HOST"),
    "port": db.get("PORT"),
    "user": db.get("USER"),
    "conn_max_age": db.get("CONN_MAX_AGE"),
    "options": db.get("OPTIONS", {}),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "layer_config": settings.CHANNEL_LAYERS["default"].get("CONFIG"),
    "cache": settings.CACHES["default"]["BACKEND"],
    "cache_location": settings.CACHES["default"].get("LOCATION"),
    "q_cluster": settings.Q_CLUSTER,
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "embedded_scheduler": settings.MESSENGER_EMBEDDED_SCHEDULER,
}, default=str))
"""

# Variables that choose the mode; removed unless a case sets them.
MODE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SQLITE_PATH",
    "MESSENGER_TEST_DB_NAME",
    "MESSENGER_CHANNEL_PREFIX",
    "MESSENGER_DB_POOL_MIN",
    "MESSENGER_DB_POOL_MAX",
    "MESSENGER_EMBEDDED_SCHEDULER",
)


def child_env(**variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in MODE_VARIABLES}
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    env.update(variables)
    return env


def run_python(code: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=child_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def probe(**variables: str) -> dict:
    result = run_python(PROBE, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_manage(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=child_env(**variables),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_environment_is_the_embedded_default():
    found = probe()
    assert found["engine"] == "django.db.backends.sqlite3"
    assert found["name"] == str(BASE_DIR / "db.sqlite3")
    assert found["layer"] == "channels.layers.InMemoryChannelLayer"
    assert found["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert found["q_cluster"]["orm"] == "default"
    assert "redis" not in found["q_cluster"]
    assert found["debug"] is True
    # One process: the web process ticks the scheduler itself.
    assert found["embedded_scheduler"] is True


def test_sqlite_path_moves_the_embedded_database(tmp_path):
    assert probe(SQLITE_PATH=str(tmp_path / "x.sqlite3"))["name"] == str(tmp_path / "x.sqlite3")


def test_database_url_selects_postgresql_with_the_pool():
    found = probe(DATABASE_URL="postgres://u:p@h:5433/db")
    assert found["engine"] == "messenger.db.postgresql"  # Django's, batching within the parameter limit
    assert (found["name"], found["user"], found["host"], found["port"]) == ("db", "u", "h", "5433")
    assert found["conn_max_age"] == 0
    assert found["options"]["pool"] == {"min_size": 2, "max_size": 20, "timeout": 3}
    assert found["options"]["connect_timeout"] == "2"
    # The database alone does not bring Redis along.
    assert found["layer"] == "channels.layers.InMemoryChannelLayer"


def test_database_url_pool_sizes_and_pool_off():
    sized = probe(DATABASE_URL="postgresql://u@h/db", MESSENGER_DB_POOL_MIN="1", MESSENGER_DB_POOL_MAX="5")
    assert sized["options"]["pool"]["min_size"] == 1 and sized["options"]["pool"]["max_size"] == 5
    assert probe(DATABASE_URL="postgres://u@h/db", MESSENGER_DB_POOL_TIMEOUT="7")["options"]["pool"]["timeout"] == 7
    assert probe(DATABASE_URL="postgres://u@h/db?connect_timeout=9")["options"]["connect_timeout"] == "9"
    assert "pool" not in probe(DATABASE_URL="postgres://u@h/db?pool=0&sslmode=require")["options"]
    assert probe(DATABASE_URL="postgres://u@h/db?sslmode=require")["options"]["sslmode"] == "require"


def test_redis_url_selects_the_pubsub_layer_redis_cache_and_redis_broker():
    found = probe(REDIS_URL="redis://r:6380/2", MESSENGER_CHANNEL_PREFIX="pfx")
    assert found["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    host = found["layer_config"]["hosts"][0]
    assert host["address"] == "redis://r:6380/2"
    # redis-py's 5 s default would tear idle WebSocket subscriptions down.
    assert host["socket_timeout"] is None
    assert found["layer_config"]["prefix"] == "pfx"
    assert found["cache"] == "messenger.cache.RedisCache"
    assert found["cache_location"] == "redis://r:6380/2"
    assert found["q_cluster"]["redis"] == "redis://r:6380/2"
    assert "orm" not in found["q_cluster"]
    assert found["embedded_scheduler"] is False


def test_production_without_secret_key_refuses_to_start():
    result = run_python(PROBE, DEBUG="0")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


def test_production_with_secret_key_starts():
    found = probe(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="chat.example.com, ,example.org")
    assert found["debug"] is False
    assert found["allowed_hosts"] == ["chat.example.com", "example.org"]


def test_unsupported_database_url_is_refused():
    result = run_python(PROBE, DATABASE_URL="mysql://u@h/db")
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr


def test_non_integer_setting_is_refused():
    result = run_python(PROBE, MESSENGER_ESCALATION_TIMEOUT_SECONDS="four minutes")
    assert result.returncode != 0 and "MESSENGER_ESCALATION_TIMEOUT_SECONDS" in result.stderr


@pytest.mark.slow
def test_migrations_apply_to_a_fresh_sqlite_database_and_match_the_models(tmp_path):
    database = tmp_path / "fresh.sqlite3"
    migrated = run_manage("migrate", "--noinput", SQLITE_PATH=str(database))
    assert migrated.returncode == 0, migrated.stderr
    assert database.exists()
    check = run_manage("makemigrations", "--check", "--dry-run", SQLITE_PATH=str(database))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No changes detected" in check.stdout


def test_every_environment_variable_is_documented():
    import re

    names = set(
        re.findall(r'env_(?:str|bool|int|list)\("([A-Z0-9_]+)"', (BASE_DIR / "project/settings.py").read_text())
    )
    documented = (BASE_DIR / "docs/configuration.md").read_text()
    assert names and not {name for name in names if f"`{name}`" not in documented}


HTTPS_PROBE = """
import json, django
from django.conf import settings
django.setup()
names = ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
         "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER", "SECURE_REDIRECT_EXEMPT")
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


def https_probe(**variables: str) -> dict:
    result = run_python(HTTPS_PROBE, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_https_settings_come_from_the_environment():
    production = {"DEBUG": "0", "SECRET_KEY": "x" * 50}
    # Secure cookies by default in production; what needs TLS in front waits for the environment.
    assert https_probe(**production) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_REDIRECT_EXEMPT": ["^health/$"],
    }
    assert https_probe(
        **production,
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    ) == {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_REDIRECT_EXEMPT": ["^health/$"],
    }
    assert "SECURE_HSTS_SECONDS" in run_python(HTTPS_PROBE, SECURE_HSTS_SECONDS="a year").stderr
