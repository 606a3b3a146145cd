"""`make run`'s demo data: loaded twice, the same; its token works; its approvers can approve."""

from io import StringIO
from typing import Any

from django.core.management import call_command
from rest_framework.test import APIClient

from approvals.selectors import authorities_of
from changelogs.models import Changelog, Domain, Journey, Service
from releasegate.models import ApiToken, User


def test_the_demo_data_loads_idempotently_and_its_token_works(db: None, settings: Any) -> None:
    settings.DEBUG = True
    first, second = StringIO(), StringIO()

    call_command("seed_demo", stdout=first)
    counts = (Domain.objects.count(), Service.objects.count(), Journey.objects.count(), User.objects.count())
    call_command("seed_demo", stdout=second)

    assert counts == (4, 8, 9, 7)  # six people (two of them administrators) and the pipeline
    assert (Domain.objects.count(), Service.objects.count(), Journey.objects.count(), User.objects.count()) == counts
    assert ApiToken.objects.count() == 1
    token = first.getvalue().strip().splitlines()[-1].strip()
    assert second.getvalue().strip().splitlines()[-1].strip() == token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert {s["slug"] for s in client.get("/api/v1/services/").json()} >= {"payments-api", "payments-web"}
    assert authorities_of(user=User.objects.get(username="approver"), domain=Domain.objects.get(slug="payments")) == {
        "sign_off",
        "security_sign_off",
    }
    assert "admin-demo-password" in first.getvalue()
    assert Changelog.objects.count() == 3  # the demo's own changes, added once (test_front_page.py)


def test_the_demo_data_refuses_to_load_without_debug(db: None) -> None:
    import pytest
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="only with DEBUG"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username="admin").exists()
