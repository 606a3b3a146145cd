"""Incident services lock the incident themselves (the API no longer locks for them) and decide
on the state they find under the lock, not on the copy their caller read before."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from core.errors import Conflict
from incidents.models import Incident
from incidents.selectors import incident_lock_in_place
from incidents.services import incident_open, incident_status_change
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
def test_a_status_change_decides_on_the_state_it_finds_under_the_lock(cast: Cast) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    incident = incident_open(
        acting_user=FACTORY_ACTOR,
        title="Card payments time out",
        services=[cast.payments_api],
        severity="high",
        started_at=timezone.now() - timedelta(hours=1),
    )
    stale = Incident.objects.get(pk=incident.pk)  # read while still open
    refused: list[Exception] = []
    done = threading.Event()

    def mitigate() -> None:
        try:
            with transaction.atomic():
                incident_status_change(acting_user=FACTORY_ACTOR, incident=stale, status="mitigated")
        except Conflict as error:
            refused.append(error)
        finally:
            done.set()
            connections.close_all()

    with transaction.atomic():
        incident_lock_in_place(incident=incident)
        mitigating = threading.Thread(target=mitigate)
        mitigating.start()
        assert not done.wait(timeout=1.0)  # waiting on the lock
        incident_status_change(acting_user=FACTORY_ACTOR, incident=incident, status="resolved")
        incident_status_change(acting_user=FACTORY_ACTOR, incident=incident, status="closed")
    mitigating.join(timeout=10)

    assert [error.code for error in refused] == ["incident_status_transition"]
    assert Incident.objects.get(pk=incident.pk).status == "closed"
