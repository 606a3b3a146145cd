"""Single sign-on with a real OpenID Connect provider: Node's oidc-provider package
(tests/oidc/provider.mjs, installed by `npm ci` in tests/oidc) on 127.0.0.1, and a login in
Chromium. An ID token without a second factor in `amr` cannot approve; with one it can. People
are created from the claims; a provider group maps to the auditors' role but never into a
group that holds signing authority. With SSO on, local passwords work only for the break-glass
administrator, whose login is audited."""

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from approvals.models import Approval
from audit.models import AuditEvent
from identity.models import ExternalIdentity
from releasegate.models import User
from releasegate.roles import AUDITORS
from tests.browser import chromium
from tests.conftest import Cast
from tests.factories import authority_give, changelog_make, seen_of, totp_code
from tests.identity.test_passkey_signatures import POST_JS
from tests.processes import free_port, process_stop

pytestmark = pytest.mark.browser
OIDC_DIR = Path(__file__).resolve().parent.parent / "oidc"
PASSWORD = "a-test-password-1234"


@pytest.fixture
def identity_provider(live_server: Any, settings: Any) -> Iterator[str]:
    """The provider running on a free port of 127.0.0.1, and Release Gate configured for it."""
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("needs Node.js and `npm ci` in tests/oidc (.ci/run does both)")
    port = free_port()
    origin = live_server.url.replace("127.0.0.1", "localhost")
    process = subprocess.Popen(
        [node, "provider.mjs", str(port), f"{origin}/oidc/callback/"],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("ready "), line
        issuer = line.split()[1]
        settings.OIDC_ENABLED = True
        settings.OIDC_RP_CLIENT_ID = "releasegate"
        settings.OIDC_RP_CLIENT_SECRET = "releasegate-test-client-secret"
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{issuer}/auth"
        settings.OIDC_OP_TOKEN_ENDPOINT = f"{issuer}/token"
        settings.OIDC_OP_USER_ENDPOINT = f"{issuer}/me"
        settings.OIDC_OP_JWKS_ENDPOINT = f"{issuer}/jwks"
        settings.OIDC_OP_LOGOUT_ENDPOINT = f"{issuer}/session/end"
        settings.OIDC_STORE_ID_TOKEN = True
        settings.OIDC_GROUP_MAP = {"rg-auditors": AUDITORS, "rg-signers": "payments-signers"}
        settings.BREAK_GLASS_USERNAMES = ["admin"]
        settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
        yield origin
    finally:
        process_stop(process, timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def _sso_login(browser: Any, origin: str, login: str, *, mfa: bool) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{origin}/oidc/authenticate/?next=/admin/")
    page.fill("#login", login)
    page.fill("#password", "anything")
    if mfa:
        page.check("#mfa")
    page.click("#sign-in")
    page.wait_for_url(f"{origin}/admin/")
    return page


def _approve(page: Any, changelog: Any) -> dict[str, Any]:
    body = {"decision": "approved", "reason": "Checked.", **seen_of(changelog)}
    result: dict[str, Any] = page.evaluate(POST_JS, [f"/api/v1/changelogs/{changelog.pk}/approvals/", body])
    return result


def test_an_id_token_without_mfa_cannot_approve_and_with_mfa_can(
    browser: Any, identity_provider: str, cast: Cast
) -> None:
    signers = Group.objects.create(name="payments-signers")
    authority_give(domain=cast.payments, group=signers)  # a group that holds signing authority
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)

    first = _sso_login(browser, identity_provider, "alice", mfa=False)
    alice = User.objects.get(external_identities__subject="alice")
    assert (alice.email, alice.first_name, alice.last_name) == ("alice@bank.example", "Alice", "Approver")
    assert not alice.has_usable_password()
    assert ExternalIdentity.objects.get(user=alice).issuer.startswith("http://127.0.0.1:")
    # The provider's groups: the auditors' role yes, a signing group never (two-person rule).
    assert set(alice.groups.values_list("name", flat=True)) == {AUDITORS}
    refused = AuditEvent.objects.get(action="user:sso_group_refused")
    assert json.loads(refused.data)["group"] == "payments-signers"
    [login] = AuditEvent.objects.filter(action="authentication:sso_login")
    assert json.loads(login.data)["mfa"] is False
    assert json.loads(login.data)["amr"] == ["pwd"]

    authority_give(domain=cast.payments, user=alice)  # by two administrators, in Release Gate
    without = _approve(first, changelog)
    assert without["status"] == 403, without
    assert without["body"]["code"] == "mfa_required"
    assert not Approval.objects.exists()

    second = _sso_login(browser, identity_provider, "alice", mfa=True)
    assert User.objects.filter(external_identities__subject="alice").count() == 1  # the same person
    with_mfa = _approve(second, changelog)
    assert with_mfa["status"] == 201, with_mfa
    assert Approval.objects.get().approver == alice
    logins = [json.loads(e.data) for e in AuditEvent.objects.filter(action="authentication:sso_login").order_by("id")]
    assert [item["mfa"] for item in logins] == [False, True]
    assert logins[1]["amr"] == ["pwd", "otp"]


def test_with_sso_on_only_the_break_glass_administrator_logs_in_with_a_password(
    identity_provider: str, cast: Cast
) -> None:
    refused = Client().post("/admin/login/?next=/admin/", {"username": "approver", "password": PASSWORD})
    assert refused.status_code == 200  # the login form again: local passwords are off
    assert not AuditEvent.objects.filter(action="authentication:logged_in").exists()

    client = Client()
    admitted = client.post("/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD})
    assert admitted.status_code == 302
    [event] = AuditEvent.objects.filter(action="authentication:break_glass_login")
    assert event.actor == "user:admin"
    # Even break-glass signs only with a second factor of its own.
    assert client.post("/admin/identity/passkey/second-factor/", {"token": totp_code(cast.admin)}).status_code == 302


def test_the_login_page_offers_sso_and_logging_out_ends_the_providers_session_too(
    browser: Any, identity_provider: str, cast: Cast
) -> None:
    origin = identity_provider
    page = browser.new_context().new_page()
    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.click("#sso-login-button")
    page.fill("#login", "alice")
    page.fill("#password", "anything")
    page.click("#sign-in")
    page.wait_for_url(f"{origin}/admin/")
    # While the provider's session lasts, signing in again passes through it without its login page.
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    page.goto(f"{origin}/oidc/authenticate/?next=/admin/")
    page.wait_for_url(f"{origin}/admin/")
    assert any("/oidc/callback/?code=" in url for url in visited)
    assert not any("/interaction/" in url for url in visited)
    assert AuditEvent.objects.filter(action="authentication:sso_login").count() == 2  # audited all the same

    page.click("#logout-form button")
    page.click("button[name=logout][value=yes]")  # the provider asks, as oidc-provider does
    page.wait_for_url(lambda url: url.startswith(f"{origin}/admin/login/"))
    [event] = AuditEvent.objects.filter(action="authentication:sso_logout")
    assert event.actor == "user:alice"
    assert json.loads(event.data)["end_session_endpoint"].endswith("/session/end")
    # Signed out of both: Release Gate asks for a login, and so does the provider.
    page.goto(f"{origin}/admin/")
    page.wait_for_url(lambda url: url.startswith(f"{origin}/admin/login/"))
    visited.clear()
    page.goto(f"{origin}/oidc/authenticate/?next=/admin/")
    page.wait_for_selector("#login")
    assert any("/interaction/" in url for url in visited)


def test_without_sso_the_login_page_offers_only_the_password(client: Client, db: None) -> None:
    page = client.get("/admin/login/?next=/admin/").content.decode()
    assert 'id="id_password"' in page
    assert "sso-login" not in page
