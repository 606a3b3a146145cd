"""The gate check authenticates exactly as every other endpoint (issue 17).

On PostgreSQL the gate check reads the API token together with its facts, in its one statement
(``GateCheckApi.token_read_with_facts``), instead of looking the token up first. That is allowed
only if authentication follows the same rules: lookup by the token's public prefix,
constant-time comparison of the hash, refusal of revoked, expired and disabled tokens and
accounts, the scope check, the throttled update of last use, and the same 401 bodies. One
table of cases runs against the gate check and an ordinary endpoint; the answers must be the
same. On SQLite both take the ordinary path, and the table holds there too.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from releasegate.models import ApiToken, GateDecision, User
from releasegate.services import api_token_issue
from tests.conftest import Cast
from tests.factories import DIGEST, FACTORY_ACTOR

ORDINARY = "/api/v1/changelogs/"  # a GET: the "read" scope
GATE = "/api/v1/gate/check"
QUESTION = {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST}
# The bodies the gate check may be sent: a well-formed question (the token is read with the
# facts), a question about no service (the ordinary lookup), and a body that is no question.
BODIES: dict[str, Any] = {
    "question": QUESTION,
    "unknown_service": {**QUESTION, "service": "no-such-service"},
    "no_question": {"service": "payments-api", "artifact_digest": "not-a-digest"},
}


def _issued(cast: Cast, scopes: tuple[str, ...] = ("gate", "read")) -> tuple[ApiToken, str]:
    token, plain = api_token_issue(acting_user=FACTORY_ACTOR, account=cast.pipeline.account, name="t", scopes=scopes)
    return token, plain


def _valid(cast: Cast) -> str:
    return f"Bearer {_issued(cast)[1]}"


def _lower_case_scheme(cast: Cast) -> str:
    return f"bearer {_issued(cast)[1]}"


def _none(cast: Cast) -> str:
    return ""


def _other_scheme(cast: Cast) -> str:
    return "Basic cGlwZWxpbmU6c2VjcmV0"


def _malformed(cast: Cast) -> str:
    return "Bearer rgp_short_token"


def _unknown_prefix(cast: Cast) -> str:
    _, plain = _issued(cast)
    marker, _, secret = plain.split("_")
    return f"Bearer {marker}_ZZZZZZZZ_{secret}"


def _wrong_secret(cast: Cast) -> str:
    _, plain = _issued(cast)
    flipped = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    return f"Bearer {flipped}"


def _token_updated(cast: Cast, **fields: Any) -> str:
    token, plain = _issued(cast)
    ApiToken.objects.filter(pk=token.pk).update(**fields)
    return f"Bearer {plain}"


def _account_disabled(cast: Cast) -> str:
    _, plain = _issued(cast)
    User.objects.filter(pk=cast.pipeline.account.pk).update(is_active=False)
    return f"Bearer {plain}"


def _scope_missing(cast: Cast) -> str:
    return f"Bearer {_issued(cast, scopes=('evidence',))[1]}"


def _another_accounts_token(cast: Cast) -> str:
    """Valid, of a service account that may not act on payments-api."""
    return f"Bearer {cast.other_pipeline.token}"


CASES: dict[str, tuple[Callable[[Cast], str], int]] = {
    # case: (the Authorization header, the ordinary endpoint's status)
    "valid": (_valid, 200),
    "lower_case_scheme": (_lower_case_scheme, 200),
    "another_accounts_token": (_another_accounts_token, 200),
    "none": (_none, 401),
    "other_scheme": (_other_scheme, 401),
    "malformed": (_malformed, 401),
    "unknown_prefix": (_unknown_prefix, 401),
    "wrong_secret": (_wrong_secret, 401),
    "revoked": (lambda cast: _token_updated(cast, revoked_at=timezone.now()), 401),
    "expired": (lambda cast: _token_updated(cast, expires_at=timezone.now() - timedelta(seconds=1)), 401),
    "account_disabled": (_account_disabled, 401),
    "scope_missing": (_scope_missing, 403),
}


def _answer(response: Any) -> tuple[int, Any, str | None]:
    return response.status_code, response.json(), response.headers.get("WWW-Authenticate")


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_gate_check_authenticates_as_every_endpoint(cast: Cast, case: str, body: str) -> None:
    make_header, ordinary_status = CASES[case]
    header = make_header(cast)
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    ordinary = _answer(client.get(ORDINARY))
    gate = _answer(client.post(GATE, BODIES[body], format="json"))

    assert ordinary[0] == ordinary_status
    if ordinary_status == 200:
        # Authenticated: the gate answers the question (or says what is wrong with it).
        expected = {"question": 200, "unknown_service": 400, "no_question": 400}[body]
        if case == "another_accounts_token" and body == "question":
            expected = 400  # not a service its account may act on: the same answer as none
        assert gate[0] == expected, gate
        return
    if ordinary_status == 403:
        # The same refusal; only the scope each operation needs differs.
        assert gate[0] == 403
        assert gate[1] == {
            **ordinary[1],
            "message": ordinary[1]["message"].replace("'read' scope", "'gate' scope"),
        }
        return
    assert gate == ordinary
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize("path", [ORDINARY, GATE])
def test_the_last_use_is_written_at_most_once_a_minute_on_either_endpoint(cast: Cast, path: str) -> None:
    token, plain = _issued(cast)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    start = timezone.now()

    def used_at(moment: Any) -> Any:
        with time_machine.travel(moment, tick=False):
            response = client.post(GATE, QUESTION, format="json") if path == GATE else client.get(ORDINARY)
            assert response.status_code == 200
        return ApiToken.objects.get(pk=token.pk).last_used_at

    assert used_at(start) == start
    assert used_at(start + timedelta(seconds=10)) == start
    assert used_at(start + timedelta(minutes=2)) == start + timedelta(minutes=2)


def test_on_postgresql_the_token_is_read_with_the_facts(cast: Cast, on_postgres: None) -> None:
    """The round trip saved: no statement of its own looks the token up."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=_valid(cast))
    client.post(GATE, QUESTION, format="json")  # the token's last use is written once

    with CaptureQueriesContext(connection) as queries:
        response = client.post(GATE, QUESTION, format="json")

    assert response.status_code == 200
    assert response.json()["decision"] == "deny"
    token_table = ApiToken._meta.db_table
    assert not [q["sql"] for q in queries if f'FROM "{token_table}"' in (q["sql"] or "")]
    decision = GateDecision.objects.latest("evaluated_at")
    assert decision.requested_by_id == cast.pipeline.account.pk
    assert decision.token_prefix.startswith("rgp_")
