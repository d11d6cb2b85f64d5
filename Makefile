# Two commands: `make run` (embedded default with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make run` answers to the local names and to HOST, so that every URL it prints works.
ALLOWED_HOSTS ?= localhost,127.0.0.1,[::1],$(HOST)
# The suite runs against real PostgreSQL and Redis (started by scripts/services.sh when missing).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

# The core, the widget API and the smoke test again on the embedded default.
EMBEDDED_TESTS = $(wildcard tests/test_realtime_protocol.py tests/test_realtime_queries.py tests/test_realtime_smoke.py \
	tests/test_embedded_smoke.py tests/test_models.py tests/test_attachments.py tests/test_authorization.py \
	tests/test_formatting.py tests/test_bad_input.py tests/test_client_address.py tests/test_captcha.py \
	tests/test_staff_sessions.py tests/test_unused_contacts.py tests/test_availability.py tests/test_frame_size.py \
	tests/test_health.py tests/test_events.py tests/test_action_queries.py tests/test_send_parity.py tests/test_intake.py \
	tests/test_cache_adapter.py tests/test_scheduler.py tests/test_api_v1.py tests/test_email.py tests/test_webhooks.py \
	tests/test_integrations_outsider.py tests/test_api_v1_outsider.py tests/test_reports.py tests/test_presence_periods.py \
	tests/test_reports_now.py tests/test_visitor_rows.py tests/test_js_strings.py \
	tests/test_liveness.py tests/test_visitors_outsider.py)

.PHONY: run test test-embedded lint services bench clean

# The server needs requirements.txt only; the test tools (Playwright, schemathesis …) come with
# requirements-dev.txt, for `make test` and `make lint`.
$(BIN)/.installed-runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(BIN)/.installed-runtime

run: $(BIN)/.installed-runtime
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py migrate --noinput
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py demo_data --host $(HOST) --port $(PORT)
	env -u DATABASE_URL -u REDIS_URL ALLOWED_HOSTS='$(ALLOWED_HOSTS)' $(BIN)/daphne -b $(HOST) -p $(PORT) project.asgi:application

# The last line: the OpenAPI schema documents every operation, with no warning, as valid OpenAPI 3.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache --no-logo
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py makemigrations --check --dry-run
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py spectacular --fail-on-warn --validate --file /dev/null

services:
	bash scripts/services.sh

test: $(BIN)/.installed lint services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) MESSENGER_TEST_DB_NAME=test_messenger \
		$(BIN)/pytest -q -p no:cacheprovider
	$(MAKE) test-embedded

# The embedded default (SQLite + in-memory layer): the core, widget-API and smoke tests again.
test-embedded: $(BIN)/.installed
	env -u DATABASE_URL -u REDIS_URL MESSENGER_TEST_DB_NAME=/tmp/messenger-test-embedded.sqlite3 \
		$(BIN)/pytest -q -p no:cacheprovider -m "not browser and not postgres" $(EMBEDDED_TESTS)

$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.txt
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench: $(BIN)/.bench-installed services
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache artifacts .test-db.sqlite3*
