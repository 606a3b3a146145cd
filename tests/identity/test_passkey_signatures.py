"""An approval signed with the approver's own passkey, in a real browser: Chromium's virtual
authenticator (the DevTools WebAuthn domain) registers a passkey, a second administrator
confirms it, the approver signs a decision, and the stored assertion is checked here with a
few lines of `cryptography` (not the project's verifier): the signature is valid over the
authenticator data and the client data hash, and its challenge is the one derived from what
was decided. The same assertion presented for changed content fails."""

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from approvals.models import Approval, ApprovalSignature
from approvals.selectors import approval_state_of
from audit.models import AuditEvent
from changelogs.models import Changelog
from identity.models import Passkey
from tests.browser import chromium
from tests.conftest import Cast
from tests.factories import SECOND_FACTOR_URL, changelog_make, seen_of, totp_code
from tests.identity.by_hand import b64, expected_challenge, verified_by_hand, virtual_authenticator

pytestmark = pytest.mark.browser
PASSWORD = "a-test-password-1234"

# The page's side of the ceremonies: JSON options in, JSON credential out (base64url fields),
# as any front end would do it with the browser's WebAuthn API.
CEREMONIES_JS = """
async ([kind, url, body]) => {
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
  const unb64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0));
  const csrf = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
  const post = async (path, data) => {
    const response = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf}, body: JSON.stringify(data)});
    return {status: response.status, body: await response.json()};
  };
  const options = await post(url, body);
  if (options.status !== 200) return options;
  const publicKey = options.body.publicKey;
  publicKey.challenge = unb64(publicKey.challenge);
  if (kind === 'create') {
    publicKey.user.id = unb64(publicKey.user.id);
    publicKey.excludeCredentials = (publicKey.excludeCredentials || []).map(c => ({...c, id: unb64(c.id)}));
    const credential = await navigator.credentials.create({publicKey});
    return {status: 200, body: {id: credential.id, rawId: b64(credential.rawId), type: credential.type,
      response: {clientDataJSON: b64(credential.response.clientDataJSON), attestationObject: b64(credential.response.attestationObject)}}};
  }
  publicKey.allowCredentials = (publicKey.allowCredentials || []).map(c => ({...c, id: unb64(c.id)}));
  const credential = await navigator.credentials.get({publicKey});
  return {status: 200, body: {id: credential.id, rawId: b64(credential.rawId), type: credential.type,
    response: {clientDataJSON: b64(credential.response.clientDataJSON), authenticatorData: b64(credential.response.authenticatorData),
               signature: b64(credential.response.signature), userHandle: credential.response.userHandle ? b64(credential.response.userHandle) : null}}};
}
"""

POST_JS = """
async ([path, data]) => {
  const csrf = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
  const response = await fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf}, body: JSON.stringify(data)});
  return {status: response.status, body: await response.json()};
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def relying_party(live_server: Any, settings: Any) -> str:
    # A passkey is bound to a host name: localhost (an IP address cannot be a WebAuthn RP id).
    origin = live_server.url.replace("127.0.0.1", "localhost")
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [origin]
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
    return origin


def _signed_in_with_authenticator(browser: Any, origin: str, user: Any) -> tuple[Any, Any]:
    """The user signed in (password, then their authenticator app's code) in a browser with a
    virtual platform authenticator that verifies its user."""
    context = browser.new_context()
    page = context.new_page()
    virtual_authenticator(context, page)
    page.goto(f"{origin}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")
    page.goto(f"{origin}{SECOND_FACTOR_URL}")
    page.fill("#id_token", totp_code(user))
    page.click("#totp-form input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")
    return context, page


@pytest.fixture
def high_risk_change(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester, submitted=True, risk_tier="high")


@pytest.fixture
def approver_page(browser: Any, relying_party: str, cast: Cast) -> Iterator[Any]:
    context, page = _signed_in_with_authenticator(browser, relying_party, cast.approver)
    yield page
    context.close()


def _refused_for_changed_content(cast: Cast, changelog: Changelog, decision: dict[str, Any], assertion: Any) -> None:
    """The requester revises the change; the same assertion, presented for the new content
    hash, is refused (signature_invalid) and nothing more is recorded."""
    requester = cast.session(cast.requester)
    edited = requester.patch(
        f"/api/v1/changelogs/{changelog.pk}/", {"rollback_plan": "Roll back with helm rollback."}, format="json"
    )
    assert edited.status_code == 200, edited.content
    assert requester.post(f"/api/v1/changelogs/{changelog.pk}/submit").status_code == 200
    changed = {**decision, **seen_of(Changelog.objects.get(pk=changelog.pk))}
    assert changed["content_hash"] != decision["content_hash"]
    replayed = cast.session(cast.approver).post(
        f"/api/v1/changelogs/{changelog.pk}/approvals/",
        {**changed, "password": PASSWORD, "assertion": assertion},
        format="json",
    )
    assert replayed.status_code == 403, replayed.content
    assert replayed.json()["code"] == "signature_invalid"
    assert "challenge" in replayed.json()["message"]
    assert Approval.objects.filter(changelog=changelog).count() == 1


@pytest.mark.requirement("PR-06")
def test_a_passkey_signs_the_approval_and_the_signature_covers_the_content_hash(
    relying_party: str, cast: Cast, high_risk_change: Changelog, approver_page: Any
) -> None:
    changelog, page = high_risk_change, approver_page

    # Register a passkey: audited, pending until a second administrator confirms it.
    created = page.evaluate(CEREMONIES_JS, ["create", "/api/v1/identity/passkeys/options", {}])
    assert created["status"] == 200, created
    registered = page.evaluate(
        POST_JS, ["/api/v1/identity/passkeys", {"name": "laptop", "credential": created["body"]}]
    )
    assert registered["status"] == 201, registered
    assert registered["body"]["status"] == "pending"
    passkey = Passkey.objects.get(user=cast.approver)
    assert AuditEvent.objects.filter(action="identity:passkey_registered", target_id=str(passkey.pk)).exists()

    seen = seen_of(changelog)
    decision = {"decision": "approved", "reason": "Rollback plan checked.", **seen}
    challenge_url = f"/api/v1/changelogs/{changelog.pk}/approvals/challenge"
    approvals_url = f"/api/v1/changelogs/{changelog.pk}/approvals/"
    # Unconfirmed, it cannot sign.
    early = page.evaluate(CEREMONIES_JS, ["get", challenge_url, decision])
    refused = page.evaluate(POST_JS, [approvals_url, {**decision, "password": PASSWORD, "assertion": early["body"]}])
    assert refused["status"] == 403
    assert refused["body"]["code"] == "passkey_not_confirmed"

    confirmed = cast.session(cast.admin).post(f"/api/v1/identity/passkeys/{passkey.pk}/confirm")
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["confirmed_by"] == "admin"

    assertion = page.evaluate(CEREMONIES_JS, ["get", challenge_url, decision])
    assert assertion["status"] == 200, assertion
    approved = page.evaluate(
        POST_JS, [approvals_url, {**decision, "password": PASSWORD, "assertion": assertion["body"]}]
    )
    assert approved["status"] == 201, approved
    [shown] = approved["body"]["approvals"]
    assert shown["signed"] is True

    # What is stored, checked here with cryptography alone.
    stored = ApprovalSignature.objects.get(approval=Approval.objects.get(changelog=changelog))
    client_data = verified_by_hand(stored, relying_party)
    expected = expected_challenge(
        str(changelog.pk), seen["revision"], seen["content_hash"], "approved", "Rollback plan checked."
    )
    assert b64(client_data["challenge"]) == expected
    assert stored.credential_id == passkey.credential_id
    assert stored.public_key_pem == passkey.public_key_pem

    # For any other content hash the signed challenge is not the derived one: the same assertion
    # does not sign it, here by hand and at the API, for a revision with changed content.
    other_hash = hashlib.sha256(b"other content").hexdigest()
    assert b64(client_data["challenge"]) != expected_challenge(
        str(changelog.pk), seen["revision"], other_hash, "approved", "Rollback plan checked."
    )
    _refused_for_changed_content(cast, changelog, decision, assertion["body"])


@pytest.mark.requirement("PR-06")
def test_in_the_admin_an_approver_registers_a_passkey_and_signs_the_decision_with_it(
    browser: Any, relying_party: str, cast: Cast, high_risk_change: Changelog, approver_page: Any
) -> None:
    changelog, page = high_risk_change, approver_page
    decide_url = f"{relying_party}/admin/approvals/approval/queue/{changelog.pk}/approved/"
    page.goto(decide_url)  # without a confirmed passkey, the page warns
    assert "recorded but not counted" in page.inner_text("#signing-note")

    # Register on the Second factor page: audited, pending until a second administrator confirms.
    page.goto(f"{relying_party}{SECOND_FACTOR_URL}")
    page.fill("#passkey-name", "laptop")
    page.click("#passkey-register")
    page.wait_for_selector("#passkeys >> text=laptop — Registered, waiting for a second administrator")
    passkey = Passkey.objects.get(user=cast.approver)
    assert AuditEvent.objects.filter(action="identity:passkey_registered", target_id=str(passkey.pk)).exists()

    # A second administrator confirms it in the admin, with a second factor of their own.
    admin_context, admin_page = _signed_in_with_authenticator(browser, relying_party, cast.admin)
    admin_page.goto(f"{relying_party}{SECOND_FACTOR_URL}")
    admin_page.click("#passkeys-to-confirm input[type=submit]")
    admin_page.wait_for_selector("text=Confirmed: ")
    assert Passkey.objects.get(pk=passkey.pk).confirmed_by == cast.admin
    assert AuditEvent.objects.filter(action="identity:passkey_confirmed", target_id=str(passkey.pk)).exists()
    admin_context.close()

    # The decision page signs the decision with the passkey: the reason's line break included.
    seen = seen_of(changelog)
    reason = "Rollback plan checked.\nMonitoring in place."
    page.goto(decide_url)
    assert "asks your passkey to sign" in page.inner_text("#signing-note")
    page.fill("#id_reason", reason)
    page.fill("#id_password", PASSWORD)
    page.click("#confirm")
    page.wait_for_url(f"{relying_party}/admin/approvals/approval/queue/{changelog.pk}/")
    assert "signed with your passkey" in page.inner_text("ul.messagelist")
    approval = Approval.objects.get(changelog=changelog)
    assert approval.reason == reason

    # What is stored, checked here with cryptography alone; the approval counts for a high risk.
    stored = ApprovalSignature.objects.get(approval=approval)
    client_data = verified_by_hand(stored, relying_party)
    assert b64(client_data["challenge"]) == expected_challenge(
        str(changelog.pk), seen["revision"], seen["content_hash"], "approved", reason
    )
    assert stored.public_key_pem == Passkey.objects.get(pk=passkey.pk).public_key_pem
    assert str(approval.pk) not in approval_state_of(changelog=changelog, now=timezone.now()).not_counted

    # The same assertion presented for a changed content hash fails.
    assertion = {
        "id": stored.credential_id,
        "rawId": stored.credential_id,
        "type": "public-key",
        "response": {
            "clientDataJSON": stored.client_data_json,
            "authenticatorData": stored.authenticator_data,
            "signature": stored.signature,
        },
    }
    _refused_for_changed_content(cast, changelog, {"decision": "approved", "reason": reason, **seen}, assertion)
