"""The approver's pages in a real browser (Debian's Chromium, driven by Playwright)."""

from collections.abc import Iterator
from typing import Any

import pytest

from audit.models import AuditEvent
from changelogs.models import Changelog
from tests.browser import chromium
from tests.conftest import Cast
from tests.factories import changelog_make

pytestmark = pytest.mark.browser
PASSWORD = "a-test-password-1234"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def change(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)


def logged_in(browser: Any, live_server: Any, username: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


def test_an_approver_finds_the_change_and_approves_it_with_reason_and_password(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    page = logged_in(browser, live_server, "approver")

    page.click("text=Waiting for my sign-off")
    row = page.locator(f"tr.queue-item[data-changelog='{change.pk}']")
    assert row.count() == 1
    row.locator("a").click()
    assert page.locator("#artifact-digest").inner_text() == change.current_revision.artifact_digest  # type: ignore[union-attr]
    page.click("#approve")
    page.fill("#id_reason", "Evidence complete; rollback plan checked.")
    page.fill("#id_password", PASSWORD)
    page.click("#confirm")

    page.wait_for_selector("#changelog-status")
    assert page.locator("#changelog-status").inner_text() == "Approved"
    assert "Your decision (approved) is recorded" in page.content()
    assert page.locator("#decision-buttons").count() == 0
    event = AuditEvent.objects.get(action="approval:approved")
    assert event.actor == "user:approver"
    assert event.target_id == str(change.pk)


def test_a_wrong_password_records_nothing(browser: Any, live_server: Any, cast: Cast, change: Changelog) -> None:
    page = logged_in(browser, live_server, "approver")
    page.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/approved/")

    page.fill("#id_password", "not-my-password")
    page.click("#confirm")

    assert "That is not your password" in page.content()
    assert not AuditEvent.objects.filter(action="approval:approved").exists()


def test_the_requester_sees_their_change_without_the_buttons_and_a_forged_post_is_refused(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    page = logged_in(browser, live_server, "requester")

    page.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/")
    assert page.locator("#changelog-status").inner_text() == "Submitted"
    assert page.locator("#decision-buttons").count() == 0
    status = page.evaluate(
        """async (url) => {
            const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
            const body = new URLSearchParams({csrfmiddlewaretoken: token, reason: 'mine', password: 'PASSWORD'});
            const response = await fetch(url, {method: 'POST', body, credentials: 'same-origin'});
            return response.status;
        }""".replace("PASSWORD", PASSWORD),
        f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/approved/",
    )
    assert status == 403
    assert not AuditEvent.objects.filter(action="approval:approved").exists()


def test_an_approver_of_another_domain_does_not_see_the_change(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    page = logged_in(browser, live_server, "other-approver")

    page.click("text=Waiting for my sign-off")
    assert page.locator(f"tr.queue-item[data-changelog='{change.pk}']").count() == 0
    response = page.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/")
    assert response.status == 404
