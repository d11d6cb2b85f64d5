"""compose.yaml, Procfile and Dockerfile refer to things that exist; demo_data is idempotent."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import authenticate
from django.core.management import call_command, get_commands

from messenger.models import AgentProfile, AgentStatus, Branch, CannedResponse, Inbox, Label, Region, RoutingRule

BASE_DIR = Path(__file__).resolve().parent.parent
LONG_RUNNING = ("postgres", "redis", "web", "worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    processes = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def assert_asgi_target_exists(target: str) -> None:
    module, _, attribute = target.partition(":")
    path = BASE_DIR / (module.replace(".", "/") + ".py")
    assert path.exists(), path
    assert f"{attribute} =" in path.read_text()


def assert_command_runnable(argv: list[str]) -> None:
    """``python manage.py X`` names a known command; ``daphne … module:app`` an existing module."""
    if argv[:2] == ["python", "manage.py"]:
        assert argv[2] in get_commands(), argv
    elif argv[0] == "daphne":
        assert argv[-1] == "project.asgi:application"
        assert_asgi_target_exists(argv[-1])
        assert "-b" in argv and argv[argv.index("-b") + 1] == "0.0.0.0"
    else:
        raise AssertionError(f"unexpected command {argv}")


def shell_commands(command: str) -> list[list[str]]:
    return [shlex.split(part) for part in command.split("&&")]


def test_procfile_has_release_web_and_worker(procfile):
    assert set(procfile) == {"release", "web", "worker"}
    assert procfile["web"] == "daphne -b 0.0.0.0 -p $PORT project.asgi:application"
    assert procfile["worker"] == "python manage.py qcluster"
    release = shell_commands(procfile["release"])
    assert release[0] == ["python", "manage.py", "migrate", "--noinput"]
    for process in procfile.values():
        for argv in shell_commands(process):
            if (
                argv[2:3] == ["setup_schedules"]
                and not (BASE_DIR / "messenger/management/commands/setup_schedules.py").exists()
            ):
                continue
            assert_command_runnable(argv)


def test_compose_services_and_healthchecks(compose):
    services = compose["services"]
    assert set(LONG_RUNNING) <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for name in LONG_RUNNING:
        healthcheck = services[name].get("healthcheck")
        assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable"), name


def test_compose_web_and_worker_commands(compose):
    services = compose["services"]
    web = services["web"]["command"]
    assert web == ["daphne", "-b", "0.0.0.0", "-p", "8000", "project.asgi:application"]
    assert_command_runnable(web)
    assert services["worker"]["command"] == ["python", "manage.py", "qcluster"]
    assert_command_runnable(services["worker"]["command"])
    migrate = services["migrate"]["command"]
    assert migrate[:2] == ["sh", "-c"]
    for argv in shell_commands(migrate[2]):
        assert_command_runnable(argv)


def test_compose_web_and_worker_wait_for_healthy_services_and_migrations(compose):
    for name in ("web", "worker", "migrate"):
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert compose["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_environment_is_production(compose):
    example = dotenv(BASE_DIR / ".env.example")
    for name in ("web", "worker", "migrate"):
        service = compose["services"][name]
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["DEBUG"] == "0"
        # The site's settings come from .env, whose template names the secret.
        assert service["env_file"] == ".env" and "SECRET_KEY" in example
        # 127.0.0.1 must be allowed for the web healthcheck's request.
        assert interpolate(env["ALLOWED_HOSTS"], example) == "chat.example.com,127.0.0.1"


# --- the proxy ---------------------------------------------------------------------------------------


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose reads an env file (no quoting is used in ours)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?message}`` (which must be set)."""

    def replace(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if operator == ":?":
            assert env.get(name), f"{name} is required: {argument}"
        if operator == ":-" and not env.get(name):
            return argument
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def test_caddy_is_the_only_way_in_and_the_web_trusts_exactly_its_network(compose):
    services = compose["services"]
    caddy = services["caddy"]
    assert caddy["image"] == "caddy:2"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert caddy["networks"] == ["edge"]
    assert caddy["depends_on"]["web"]["condition"] == "service_healthy"
    assert caddy["environment"]["MESSENGER_DOMAIN"].startswith("${MESSENGER_DOMAIN:?")
    # Nothing else is published: no way around the proxy.
    assert [name for name, service in services.items() if service.get("ports")] == ["caddy"]
    assert set(services["web"]["networks"]) == {"default", "edge"}
    assert interpolate(services["web"]["deploy"]["replicas"], {}) == "2"
    assert not any("edge" in services[name].get("networks", []) for name in ("worker", "migrate", "postgres", "redis"))

    example = dotenv(BASE_DIR / ".env.example")
    subnet = interpolate(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"], example)
    web_env = services["web"]["environment"]
    assert interpolate(web_env["MESSENGER_TRUSTED_PROXIES"], example) == subnet == "172.30.80.0/24"
    assert interpolate(web_env["MESSENGER_TRUSTED_PROXIES"], {}) == subnet
    assert web_env["SECURE_PROXY_SSL_HEADER"] == "X-Forwarded-Proto"


def caddy_blocks(text: str) -> dict:
    """The Caddyfile as nested dicts: each line's first word → its arguments, or its block."""
    root: dict = {}
    stack = [root]
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "}":
            stack.pop()
            continue
        words = line.split()
        if words[-1] == "{":
            block: dict = {}
            stack[-1][" ".join(words[:-1])] = block
            stack.append(block)
        else:
            stack[-1][words[0]] = words[1:]
    assert stack == [root], "unbalanced braces"
    return root


def test_caddyfile_proxies_every_web_replica_with_compression(compose):
    config = caddy_blocks((BASE_DIR / "deploy" / "Caddyfile").read_text())
    # One site, its address from the environment: Caddy gets the certificate for it.
    assert list(config) == ["{$MESSENGER_DOMAIN}"]
    site = config["{$MESSENGER_DOMAIN}"]
    assert site["encode"] == ["zstd", "gzip"]
    proxy = site["reverse_proxy"]
    # The compose service and the port its daphne listens on.
    web = compose["services"]["web"]["command"]
    assert proxy["dynamic a"] == {"name": ["web"], "port": [web[web.index("-p") + 1]], "refresh": ["5s"]}
    assert proxy["lb_policy"] == ["least_conn"]


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (apt-get install caddy)")
def test_caddy_accepts_the_caddyfile():
    result = subprocess.run(
        ["caddy", "adapt", "--config", "deploy/Caddyfile", "--adapter", "caddyfile"],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"], "HOME": "/tmp", "MESSENGER_DOMAIN": "chat.example.com"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    route = json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]["routes"][0]
    assert route["match"] == [{"host": ["chat.example.com"]}]
    handlers = {handler["handler"]: handler for handler in route["handle"][0]["routes"][0]["handle"]}
    assert handlers["encode"]["prefer"] == ["zstd", "gzip"]
    assert handlers["reverse_proxy"]["dynamic_upstreams"] == {
        "source": "a",
        "name": "web",
        "port": "8000",
        "refresh": 5_000_000_000,
    }


def production_environment(compose: dict) -> dict[str, str]:
    """.env.example with a real secret, plus what compose.yaml sets for the web processes."""
    example = dotenv(BASE_DIR / ".env.example")
    example["SECRET_KEY"] = secrets.token_hex(32)
    compose_env = {
        key: interpolate(str(value), example) for key, value in compose["services"]["web"]["environment"].items()
    }
    return {**example, **compose_env}


def test_check_deploy_passes_with_the_documented_production_environment(compose):
    env = {"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "project.settings", **production_environment(compose)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_healthchecks_call_real_endpoints(compose):
    web_check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/health/" in web_check
    from django.urls import resolve

    assert resolve("/health/").func.__name__ == "health"
    worker_check = " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    assert "django_q.status" in worker_check


def test_dockerfile_installs_requirements_and_runs_daphne():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert '"project.asgi:application"' in dockerfile
    # Production's static files: hashed and compressed, which only DEBUG=0's storage writes.
    assert "RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput -v0" in dockerfile
    ignored = (BASE_DIR / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "db.sqlite3*" in ignored


# --- demo_data -------------------------------------------------------------------------------------


def run_demo_data() -> str:
    out = io.StringIO()
    call_command("demo_data", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_demo_data_is_complete_and_idempotent():
    output = run_demo_data()
    counts = [
        model.objects.count() for model in (Branch, Region, RoutingRule, AgentProfile, Inbox, CannedResponse, Label)
    ]
    Inbox.objects.filter(widget_token="demo-widget-token").update(settings={})
    AgentProfile.objects.update(status=AgentStatus.OFFLINE)
    run_demo_data()
    assert [
        model.objects.count() for model in (Branch, Region, RoutingRule, AgentProfile, Inbox, CannedResponse, Label)
    ] == counts

    for url in ("http://127.0.0.1:8000/dashboard/", "http://127.0.0.1:8000/admin/", "http://localhost:8000/demo/"):
        assert url in output
    for login in ("admin", "supervisor", "operator1", "operator2", "operator3"):
        assert authenticate(username=login, password=login) is not None, login
        assert login in output
    admin = authenticate(username="admin", password="admin")
    assert admin.is_superuser and admin.agent.role == "admin"

    moscow, berlin = Branch.objects.get(name="Moscow"), Branch.objects.get(name="Berlin")
    assert (moscow.timezone, berlin.timezone) == ("Europe/Moscow", "Europe/Berlin")
    assert Region.objects.get(name="Central").geoip_codes == ["RU-MOW", "RU"]
    assert Region.objects.get(name="Europe").geoip_codes == ["DE", "AT", "CH"]
    assert RoutingRule.objects.get(region__name="Europe").branch == berlin
    assert RoutingRule.objects.get(region__name="Central").branch == moscow
    operators = {p.user.username: p for p in AgentProfile.objects.filter(role="operator").select_related("user")}
    assert {name: p.branch.name for name, p in operators.items()} == {
        "operator1": "Moscow",
        "operator2": "Moscow",
        "operator3": "Berlin",
    }
    assert all(p.status == AgentStatus.ONLINE for p in operators.values())

    inbox = Inbox.objects.get(widget_token="demo-widget-token")
    assert inbox.name == "Demo shop" and inbox.branch == moscow
    assert inbox.allowed_domains == ["localhost"]
    assert inbox.effective_settings["widget"]["title"]
    assert CannedResponse.objects.filter(branch=None).count() >= 3 and Label.objects.count() >= 3


@pytest.mark.django_db
def test_demo_data_prints_the_urls_of_the_real_host_and_port():
    out = io.StringIO()
    call_command("demo_data", host="127.0.0.1", port=8123, stdout=out)
    local = out.getvalue()
    for url in ("http://127.0.0.1:8123/dashboard/", "http://127.0.0.1:8123/admin/", "http://localhost:8123/demo/"):
        assert url in local
    assert ":8000" not in local
    # A wildcard bind is reached through the loopback address.
    out = io.StringIO()
    call_command("demo_data", host="0.0.0.0", port=9000, stdout=out)
    assert "http://127.0.0.1:9000/dashboard/" in out.getvalue() and "http://localhost:9000/demo/" in out.getvalue()
    # Another address: its URLs, and no demo page (the demo inbox allows localhost only).
    out = io.StringIO()
    call_command("demo_data", host="192.0.2.10", port=8123, stdout=out)
    assert "http://192.0.2.10:8123/dashboard/" in out.getvalue()
    assert "localhost:" not in out.getvalue()


def make_dry_run(*arguments: str) -> list[str]:
    """The commands ``make`` would run, every target taken as out of date."""
    # Make takes variables from the environment too: only the arguments may set these.
    env = {key: value for key, value in os.environ.items() if key not in ("HOST", "PORT", "ALLOWED_HOSTS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", *arguments],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_the_runtime_only_and_serves_on_the_given_host_and_port():
    commands = make_dry_run("run", "HOST=0.0.0.0", "PORT=8123")
    assert [line for line in commands if "pip install" in line] == [
        ".venv/bin/pip install -q --disable-pip-version-check -r requirements.txt"
    ]
    assert (
        "env -u DATABASE_URL -u REDIS_URL .venv/bin/python manage.py demo_data --host 0.0.0.0 --port 8123" in commands
    )
    assert commands[-1] == (
        "env -u DATABASE_URL -u REDIS_URL ALLOWED_HOSTS='localhost,127.0.0.1,[::1],0.0.0.0' "
        ".venv/bin/daphne -b 0.0.0.0 -p 8123 project.asgi:application"
    )
    # Another address is allowed too, so that the dashboard URL printed for it answers.
    assert "ALLOWED_HOSTS='localhost,127.0.0.1,[::1],192.0.2.10'" in make_dry_run("run", "HOST=192.0.2.10")[-1]
    assert not any(
        tool in (BASE_DIR / "requirements.txt").read_text() for tool in ("pytest", "playwright", "schemathesis")
    )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lint_and_test_install_the_development_requirements():
    for target in ("lint", "test-embedded"):
        assert ".venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt" in make_dry_run(target)
