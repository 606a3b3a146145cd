"""Signing needs a session that proved a second factor, recently; factors are enrolled in
Release Gate (TOTP here; passkeys in test_passkeys.py); the admin ends idle sessions. Every
verification, failure and idle logout is in the audit trail."""

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from approvals.models import Approval
from audit.models import AuditEvent
from tests.conftest import Cast
from tests.factories import SECOND_FACTOR_URL, changelog_make, seen_of, totp_code

PASSWORD = "a-test-password-1234"


def _decide(client: Any, changelog: Any) -> Any:
    body = {"decision": "approved", "reason": "ok", "password": PASSWORD, **seen_of(changelog)}
    return client.post(f"/api/v1/changelogs/{changelog.pk}/approvals/", body, format="json")


def _password_only(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.requirement("PR-06")
def test_a_password_session_cannot_approve_until_it_proves_a_second_factor(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    client = _password_only(cast.approver)
    refused = _decide(client, changelog)
    assert refused.status_code == 403, refused.content
    assert refused.json()["code"] == "mfa_required"
    assert not Approval.objects.exists()
    [refusal] = AuditEvent.objects.filter(action="approval:refused")
    assert json.loads(refusal.data)["code"] == "mfa_required"

    # A wrong code is refused and recorded; the right one marks the session.
    wrong = client.post("/api/v1/identity/verify", {"method": "totp", "token": "000000"}, format="json")
    assert wrong.status_code in (403, 409)
    code = totp_code(cast.approver)
    if code == "000000":  # pragma: no cover - one chance in a million
        code = totp_code(cast.approver)
    verified = client.post("/api/v1/identity/verify", {"method": "totp", "token": code}, format="json")
    assert verified.status_code == 200, verified.content
    assert verified.json()["session_second_factor"] == "totp"
    assert AuditEvent.objects.filter(action="identity:second_factor_failed").count() == 1
    assert AuditEvent.objects.filter(action="identity:second_factor_verified").count() == 1

    assert _decide(client, changelog).status_code == 201
    # The same code again is not a second factor (django-otp refuses a code used before).
    again = client.post("/api/v1/identity/verify", {"method": "totp", "token": code}, format="json")
    assert again.status_code == 403
    assert again.json()["code"] == "totp_invalid"


@pytest.mark.requirement("PR-06")
def test_an_old_second_factor_asks_for_reauthentication(cast: Cast, settings: Any) -> None:
    settings.SIGNING_REAUTH_MINUTES = 10
    settings.ADMIN_IDLE_TIMEOUT_MINUTES = 60
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    with time_machine.travel(changelog.created_at, tick=True) as traveller:
        client = cast.session(cast.approver)
        traveller.shift(timedelta(minutes=11))
        refused = _decide(client, changelog)
        assert refused.status_code == 403
        assert refused.json()["code"] == "reauthentication_required"
        assert not Approval.objects.exists()
        verified = client.post(
            "/api/v1/identity/verify", {"method": "totp", "token": totp_code(cast.approver)}, format="json"
        )
        assert verified.status_code == 200
        assert _decide(client, changelog).status_code == 201


def test_enrolling_an_authenticator_app_on_the_second_factor_page(cast: Cast) -> None:
    client = Client()
    client.force_login(cast.approver)
    page = client.get(SECOND_FACTOR_URL)
    assert page.status_code == 200
    assert b"otpauth://totp/" in page.content
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user=cast.approver, confirmed=False)
    code = f"{totp(device.bin_key):06d}"
    response = client.post(SECOND_FACTOR_URL, {"token": code})
    assert response.status_code == 302
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert AuditEvent.objects.filter(action="identity:totp_enrolled").count() == 1
    assert b"This session proved a second factor (totp)" in client.get(SECOND_FACTOR_URL).content


def test_an_idle_admin_session_is_ended_and_the_logout_audited(cast: Cast, settings: Any) -> None:
    settings.ADMIN_IDLE_TIMEOUT_MINUTES = 30
    with time_machine.travel("2026-12-03 09:00Z", tick=False) as traveller:
        client = Client()
        client.force_login(cast.auditor)
        assert client.get("/admin/").status_code == 200
        traveller.shift(timedelta(minutes=29))
        assert client.get("/admin/").status_code == 200  # activity keeps it alive
        traveller.shift(timedelta(minutes=31))
        response = client.get("/admin/")
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]
    [event] = AuditEvent.objects.filter(action="identity:idle_logout")
    assert event.actor == "user:auditor"
