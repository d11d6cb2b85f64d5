"""The admin's hours and inbox forms in Chromium against a live server (docs/configuration.md,
"Per-inbox settings"): a superuser sets a branch's hours by typing into the weekday rows, sees a
wrong time refused with its day named, and opens an inbox with every settings form. No page or
console error (a CSP violation is one). Screenshots: artifacts/screenshots/admin-*.png."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from messenger.models import Branch
from tests import live
from tests.factories import make_branch, make_inbox

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT = 15_000


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright(django_db_setup):  # noqa: ANN001
    with live.orm_beside_playwright():
        yield


def admin_page(browser: Any, server: Any) -> Any:
    get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.errors = errors
    page.goto(server.url + "/admin/login/?next=/admin/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root-123")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page


def test_branch_hours_and_inbox_forms(chromium, live_server_factory):  # noqa: ANN001
    branch = make_branch("Berlin", timezone="Europe/Berlin")
    inbox = make_inbox(
        branch,
        name="Shop",
        settings={
            "working_hours": {"enabled": True, "days": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]]}},
            "features": {"pre_chat_form": True},
            "pre_chat": {
                "fields": [
                    {"name": "name", "label": "Your name", "type": "text", "required": True},
                    {"name": "topic", "type": "select", "required": False, "options": ["Sales", "Support"]},
                ]
            },
        },
    )
    server = live_server_factory({"DJANGO_ALLOW_ASYNC_UNSAFE": ""})
    page = admin_page(chromium, server)
    try:
        # The index, grouped.
        captions = [text.strip() for text in page.locator("#content-main .module caption").all_text_contents()]
        assert captions[:4] == ["Configuration", "Staff and access", "Conversations and contacts", "Logs"]
        live.screenshot(page, "admin-index")

        page.goto(f"{server.url}/admin/messenger/branch/{branch.pk}/change/")
        page.uncheck("input[name=always_open]")
        for day in ("mon", "tue", "wed", "thu", "fri"):
            page.uncheck(f"input[name=working_hours_{day}_closed]")
            page.fill(f"input[name=working_hours_{day}_0_open]", "9:00")
            page.fill(f"input[name=working_hours_{day}_0_close]", "18:00")
        page.fill("input[name=working_hours_wed_0_close]", "25:00")
        page.click("input[name=_continue]")
        error = page.locator(".errorlist").first
        assert 'Wednesday: "25:00" is not a time from 00:00 to 24:00 (HH:MM).' in error.inner_text()
        live.screenshot(page, "admin-branch-hours-error")
        branch.refresh_from_db()
        assert branch.working_hours == {}  # nothing saved
        # The rows come back as typed; fixed, the hours are stored.
        assert page.input_value("input[name=working_hours_wed_0_close]") == "25:00"
        page.fill("input[name=working_hours_wed_0_close]", "13:00")
        page.click("input[name=_continue]")
        page.locator(".messagelist .success").wait_for()
        branch = Branch.objects.get(pk=branch.pk)
        assert branch.working_hours["mon"] == [["09:00", "18:00"]]
        assert branch.working_hours["wed"] == [["09:00", "13:00"]]
        assert branch.working_hours["sat"] == []
        page.locator("table.messenger-hours").scroll_into_view_if_needed()
        live.screenshot(page, "admin-branch-hours")

        page.goto(f"{server.url}/admin/messenger/inbox/{inbox.pk}/change/")
        assert page.input_value("input[name=hours_mon_1_open]") == "14:00"
        assert page.is_checked("input[name=features][value=pre_chat_form]")
        assert page.input_value("textarea[name=pre_chat_fields_1_options]") == "Sales\nSupport"
        page.fill("input[name=pre_chat_fields_2_name]", "company_size")
        page.select_option("select[name=pre_chat_fields_2_type]", "select")
        page.click("input[name=_continue]")
        assert "a select needs at least one option" in page.locator(".errorlist").first.inner_text()
        page.fill("textarea[name=pre_chat_fields_2_options]", "1-10\n11-100\n100+")
        page.click("input[name=_continue]")
        page.locator(".messagelist .success").wait_for()
        inbox.refresh_from_db()
        assert inbox.settings["pre_chat"]["fields"][2] == {
            "name": "company_size",
            "type": "select",
            "required": False,
            "options": ["1-10", "11-100", "100+"],
        }
        page.screenshot(path=str(live.ROOT / "artifacts" / "screenshots" / "admin-inbox.png"), full_page=True)
        assert page.errors == []
    finally:
        page.context.close()
