"""compose.yaml, Procfile and Dockerfile refer to things that exist; demo_data is idempotent."""

from __future__ import annotations

import io
import shlex
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
    for name in ("web", "worker", "migrate"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["DATABASE_URL"].split("@")[1].startswith("postgres:5432/")
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert env["DEBUG"] == "0"
        assert "SECRET_KEY" in env and "ALLOWED_HOSTS" in env
        # 127.0.0.1 must be allowed for the web healthcheck's request.
        assert "127.0.0.1" in env["ALLOWED_HOSTS"]


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
