"""Pipeline identities: tokens shown once, stored hashed, scoped, expiring and revocable."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from releasegate.models import ApiToken, User
from releasegate.services import api_token_issue, api_token_revoke
from releasegate.tokens import token_hash, token_parse
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR, ServiceFactory

LIST = "/api/v1/changelogs/"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_token_is_stored_only_as_its_hash(cast: Cast) -> None:
    stored = ApiToken.objects.get(service_account=cast.pipeline.account)

    assert stored.token_hash == token_hash(cast.pipeline.token)
    assert cast.pipeline.token.startswith(stored.prefix + "_")
    as_text = " ".join(str(value) for value in ApiToken.objects.values_list().get(pk=stored.pk))
    assert cast.pipeline.token not in as_text
    secret = cast.pipeline.token.rsplit("_", 1)[1]
    assert secret not in as_text


def test_a_token_has_a_recognisable_prefix() -> None:
    parsed = token_parse("rgp_AbCd1234_" + "x" * 40)

    assert parsed is not None
    assert parsed.prefix == "rgp_AbCd1234"
    assert token_parse("ghp_" + "x" * 36) is None
    assert token_parse("rgp_AbCd1234_short") is None


@pytest.mark.parametrize(
    "header",
    ["Bearer rgp_AbCd1234_" + "x" * 40, "Bearer not-a-token", "Bearer "],
)
def test_a_wrong_token_is_refused_with_401(cast: Cast, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(LIST)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_token_with_the_right_prefix_but_wrong_secret_is_refused(cast: Cast) -> None:
    forged = cast.pipeline.token[:-1] + ("A" if cast.pipeline.token[-1] != "A" else "B")

    assert bearer(forged).get(LIST).status_code == 401


def test_an_expired_token_is_refused(cast: Cast) -> None:
    token = ApiToken.objects.get(service_account=cast.pipeline.account)

    with time_machine.travel(token.expires_at + timedelta(seconds=1)):
        response = cast.pipeline.client().get(LIST)

    assert response.status_code == 401
    assert response.json()["message"] == "The API token has expired."


def test_a_revoked_token_is_refused_and_the_revocation_is_audited(cast: Cast) -> None:
    token = ApiToken.objects.get(service_account=cast.pipeline.account)

    api_token_revoke(acting_user=cast.admin, token=token)

    assert cast.pipeline.client().get(LIST).status_code == 401
    event = AuditEvent.objects.get(action="api_token:revoked")
    assert event.actor == "user:admin"
    assert event.target_id == str(token.pk)


def test_a_disabled_service_account_is_refused(cast: Cast) -> None:
    User.objects.filter(pk=cast.pipeline.account.pk).update(is_active=False)

    assert cast.pipeline.client().get(LIST).status_code == 401


def test_the_last_used_time_is_kept_without_a_write_per_request(cast: Cast) -> None:
    token = ApiToken.objects.get(service_account=cast.pipeline.account)
    assert token.last_used_at is None
    start = timezone.now()

    with time_machine.travel(start, tick=False):
        cast.pipeline.client().get(LIST)
        first = ApiToken.objects.get(pk=token.pk).last_used_at
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        cast.pipeline.client().get(LIST)
        unchanged = ApiToken.objects.get(pk=token.pk).last_used_at
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        cast.pipeline.client().get(LIST)
        later = ApiToken.objects.get(pk=token.pk).last_used_at

    assert first == start
    assert unchanged == start
    assert later == start + timedelta(minutes=2)


def test_a_token_acts_only_on_its_own_services(cast: Cast) -> None:
    from tests.factories import changelog_make

    mine = changelog_make(service=cast.payments_api)
    theirs = changelog_make(service=cast.transfers_api)

    client = cast.pipeline.client()

    assert client.get(f"{LIST}{mine.id}/").status_code == 200
    assert client.get(f"{LIST}{theirs.id}/").status_code == 404
    assert {item["id"] for item in client.get(LIST).json()["results"]} == {str(mine.id)}


def test_issuing_a_token_for_a_person_is_refused(cast: Cast) -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        api_token_issue(acting_user=FACTORY_ACTOR, account=cast.requester, name="nope", scopes=["gate"])


def test_the_command_creates_a_scoped_account_and_prints_its_token_once(db: None) -> None:
    ServiceFactory(slug="payments-api")
    ServiceFactory(slug="payments-web")
    ServiceFactory(slug="transfers-api")
    out = StringIO()

    call_command(
        "create_service_account",
        "payments-ci",
        "--service",
        "payments-api",
        "--service",
        "payments-web",
        "--scope",
        "changelogs",
        stdout=out,
    )

    token = out.getvalue().strip().splitlines()[-1]
    assert token.startswith("rgp_")
    account = User.objects.get(username="svc-payments-ci")
    assert account.is_service_account
    assert not account.has_usable_password()
    client = bearer(token)
    for slug, expected in (("payments-api", 201), ("payments-web", 201), ("transfers-api", 400)):
        from tests.factories import changelog_content

        response = client.post(LIST, {"service": slug, "kind": "train", **changelog_content()}, format="json")
        assert response.status_code == expected, (slug, response.json())
    actions = list(
        AuditEvent.objects.filter(target_type="releasegate.user", target_id=str(account.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions == ["service_account:created", "service_account:scope_granted", "service_account:scope_granted"]


def test_the_command_refuses_an_unknown_service_and_creates_nothing(db: None) -> None:
    with pytest.raises(CommandError, match="unknown service"):
        call_command("create_service_account", "ci", "--service", "nope", "--scope", "all", stdout=StringIO())

    assert not User.objects.filter(username="svc-ci").exists()
