"""The admin's incident pages open, and the data administrators keep is audited when saved."""

import json

from audit.models import AuditEvent
from incidents.models import IncidentGatePolicy, PagerDutyService
from incidents.services import incident_status_change
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR
from tests.incidents.conftest import incident_make


def test_every_incident_admin_page_opens(cast: Cast) -> None:
    incident = incident_make(service=cast.payments_api, title="Slow", severity="medium")
    incident_status_change(acting_user=FACTORY_ACTOR, incident=incident, status="resolved")
    admin = cast.session(cast.admin)

    for model in (
        "incident",
        "postmortem",
        "inboundevent",
        "pagerdutyservice",
        "incidentgatepolicy",
        "rootcausetag",
        "dorathresholdversion",
    ):
        assert admin.get(f"/admin/incidents/{model}/").status_code == 200, model
    assert admin.get(f"/admin/incidents/incident/{incident.pk}/change/").status_code == 200
    assert admin.get(f"/admin/incidents/postmortem/{incident.postmortem.pk}/change/").status_code == 200
    assert admin.get("/admin/incidents/pagerdutyservice/add/").status_code == 200


def test_a_pagerduty_mapping_and_a_gate_policy_saved_in_the_admin_are_audited(cast: Cast) -> None:
    admin = cast.session(cast.admin)

    mapped = admin.post(
        "/admin/incidents/pagerdutyservice/add/",
        {"pagerduty_id": "PF9KMXH", "name": "Payments API", "service": cast.payments_api.pk},
    )
    policy = admin.post(
        "/admin/incidents/incidentgatepolicy/add/",
        {"domain": cast.payments.pk, "enabled": "on", "min_severity": "medium"},
    )

    assert mapped.status_code == 302
    assert policy.status_code == 302
    assert PagerDutyService.objects.get().service == cast.payments_api
    assert IncidentGatePolicy.objects.get().min_severity == "medium"
    event = AuditEvent.objects.get(action="pagerdutyservice:added")
    assert json.loads(event.data)["pagerduty_id"] == "PF9KMXH"
    assert AuditEvent.objects.filter(action="incidentgatepolicy:added", actor="user:admin").exists()
