"""Failed authentication is slowed and recorded (django-axes): admin logins and step-up
re-entries, per account and per address. The attacker here guesses passwords: 30 wrong ones,
then the right one."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Changelog
from tests.conftest import Cast
from tests.factories import UserFactory, changelog_make, seen_of

PASSWORD = "a-test-password-1234"
GUESSES = 30


def _admin_login(client: Client, username: str, password: str) -> int:
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return response.status_code


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_thirty_wrong_admin_passwords_lock_the_account_out_even_for_the_right_one(cast: Cast, settings) -> None:
    client = Client()
    statuses = [_admin_login(client, "approver", f"guess-{n}") for n in range(GUESSES)]

    right = _admin_login(client, "approver", PASSWORD)

    assert statuses[0] == 200  # the login form again, with its error
    assert statuses[-1] == 429
    assert right == 429
    assert "_auth_user_id" not in client.session
    assert len(_events("authentication:failed")) == GUESSES + 1
    locked = _events("authentication:locked_out")
    assert locked
    assert json.loads(locked[0].data)["username"] == "approver"
    assert json.loads(locked[0].data)["address"] == "127.0.0.1"


def test_the_lock_ends_after_the_lockout_period_and_a_login_is_recorded(cast: Cast, settings) -> None:
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _admin_login(client, "approver", f"guess-{n}")
    assert _admin_login(client, "approver", PASSWORD) == 429

    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        assert _admin_login(client, "approver", PASSWORD) == 302

    [login] = _events("authentication:logged_in")
    assert login.actor == "user:approver"
    assert json.loads(login.data)["username"] == "approver"


def test_failures_against_many_accounts_from_one_address_lock_the_address(cast: Cast, settings) -> None:
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        UserFactory(username=f"target-{n}")
        _admin_login(client, f"target-{n}", "guess")

    assert _admin_login(client, "auditor", PASSWORD) == 429


@pytest.fixture
def submitted(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)


def test_thirty_wrong_step_up_passwords_then_the_right_one_are_throttled_and_recorded(
    cast: Cast, submitted: Changelog, settings
) -> None:
    approver = cast.session(cast.approver)
    url = f"/api/v1/changelogs/{submitted.id}/approvals/"

    def attempt(password: str):  # type: ignore[no-untyped-def]
        body = {"decision": "approved", "reason": "ok", "password": password, **seen_of(submitted)}
        return approver.post(url, body, format="json")

    answers = [attempt(f"guess-{n}") for n in range(GUESSES)]
    right = attempt(PASSWORD)

    assert answers[0].status_code == 403
    assert answers[0].json()["code"] == "step_up_failed"
    assert answers[-1].status_code == 429
    assert right.status_code == 429
    assert right.json()["code"] == "throttled"
    assert int(right["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert not submitted.approvals.exists()
    failures = _events("authentication:step_up_failed")
    assert len(failures) == GUESSES + 1
    assert {event.actor for event in failures} == {"user:approver"}
    assert _events("authentication:locked_out")
    assert len(_events("approval:refused")) == GUESSES + 1
