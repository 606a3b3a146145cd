"""`make run`'s demo data: loaded twice, the same; its token works; its approvers can approve."""

from io import StringIO
from typing import Any

from django.core.management import call_command
from rest_framework.test import APIClient

from approvals.selectors import authorities_of
from changelogs.models import Changelog, Domain, Journey, Service
from incidents.models import DoraReport, Incident, Postmortem, PostmortemAction
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
    # Incidents (incidents/demo.py), added once: one resolved with a completed postmortem and its
    # DORA reports, one open, one old; and figures to show for them.
    assert sorted(Incident.objects.values_list("severity", "status")) == [
        ("high", "resolved"),
        ("low", "resolved"),
        ("medium", "open"),
    ]
    assert Postmortem.objects.get().status == "completed"
    assert PostmortemAction.objects.count() == 2
    assert DoraReport.objects.filter(sent_at__isnull=False).count() == 1
    admin = APIClient()
    admin.force_login(User.objects.get(username="admin"))
    figures = admin.get("/api/v1/incidents/figures").json()
    assert figures["incidents_restored"] == 2  # both resolved in the last 30 days
    assert figures["incidents"]["by_severity"] == {"high": 1, "medium": 1, "low": 1}


def test_the_demo_data_refuses_to_load_without_debug(db: None) -> None:
    import pytest
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="only with DEBUG"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username="admin").exists()
