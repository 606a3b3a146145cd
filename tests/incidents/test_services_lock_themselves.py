"""Incident services lock the incident themselves (the API no longer locks for them) and decide
on the state they find under the lock, not on the copy their caller read before."""

import pytest

from incidents.models import Incident
from incidents.selectors import incident_lock_in_place
from incidents.services import incident_status_change
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR
from tests.incidents.conftest import incident_make
from tests.locks import run_against_held_lock


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
def test_a_status_change_decides_on_the_state_it_finds_under_the_lock(cast: Cast) -> None:
    incident = incident_make(service=cast.payments_api)
    stale = Incident.objects.get(pk=incident.pk)  # read while still open

    def resolve_and_close() -> None:
        for status in ("resolved", "closed"):
            incident_status_change(acting_user=FACTORY_ACTOR, incident=incident, status=status)

    raised = run_against_held_lock(
        hold=lambda: incident_lock_in_place(incident=incident),
        act=lambda: incident_status_change(acting_user=FACTORY_ACTOR, incident=stale, status="mitigated"),
        then=resolve_and_close,
    )

    assert [getattr(error, "code", error) for error in raised] == ["incident_status_transition"]
    assert Incident.objects.get(pk=incident.pk).status == "closed"
