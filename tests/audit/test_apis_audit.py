"""The auditor's API, and proofs from it checked offline with the standalone verifier."""

import json
from pathlib import Path

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from audit import record
from audit.models import AuditEvent
from tests.audit.support import run_verifier, sequence_all, write
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log(cast: Cast, settings: object) -> Cast:
    settings.AUDIT_SEQUENCE_ON_COMMIT = False  # type: ignore[attr-defined]
    for number in range(5):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:early", target=("test.thing", str(number)), data={"n": number})
    sequence_all()  # on PostgreSQL, after the server's transaction horizon passed them
    for number in range(6):
        with transaction.atomic():
            record(actor=cast.requester, action="test:late", target=("test.thing", f"late-{number}"), data={})
    sequence_all()  # on PostgreSQL, after the server's transaction horizon passed them
    return cast


ENDPOINTS = [
    "/api/v1/audit/checkpoint",
    "/api/v1/audit/public-key",
    "/api/v1/audit/events/",
    "/api/v1/audit/consistency?first_size={size}&second_size={size}",
]


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize(
    ("who", "status"),
    [("auditor", 200), ("admin", 200), ("requester", 403), ("approver", 403), ("pipeline", 403), ("anonymous", 401)],
)
def test_only_auditors_and_admins_read_the_audit_trail(log: Cast, url: str, who: str, status: int) -> None:
    if who == "pipeline":
        client = log.pipeline.client()
    elif who == "anonymous":
        client = APIClient()
    else:
        client = log.session(getattr(log, who))

    response = client.get(url.format(size=AuditEvent.objects.count()))

    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "not_an_auditor"


def test_the_latest_checkpoint_verifies_with_the_public_key(log: Cast, tmp_path: Path) -> None:
    auditor = log.session(log.auditor)
    checkpoint = auditor.get("/api/v1/audit/checkpoint")
    key = auditor.get("/api/v1/audit/public-key")

    assert checkpoint["Content-Type"].startswith("text/plain")
    result = run_verifier(
        "checkpoint",
        "--key",
        str(write(tmp_path / "key", key.content.decode())),
        str(write(tmp_path / "cp", checkpoint.content.decode())),
    )
    assert result.returncode == 0, result.stderr
    assert AuditEvent.objects.count() == int(checkpoint.content.decode().splitlines()[1])


def test_an_inclusion_proof_from_the_api_verifies_offline(log: Cast, tmp_path: Path) -> None:
    auditor = log.session(log.auditor)
    event = AuditEvent.objects.filter(action="test:early").order_by("id")[2]
    proof = auditor.get(f"/api/v1/audit/events/{event.id}/proof").json()
    checkpoint = auditor.get(f"/api/v1/audit/checkpoints/{proof['tree_size']}").content.decode()
    key = auditor.get("/api/v1/audit/public-key").content.decode()

    result = run_verifier(
        "inclusion",
        "--key",
        str(write(tmp_path / "key", key)),
        "--checkpoint",
        str(write(tmp_path / "cp", checkpoint)),
        str(write(tmp_path / "proof.json", proof)),
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(proof["event"])["id"] == event.id
    tampered = {**proof, "event": proof["event"].replace('"n":2', '"n":3')}
    refused = run_verifier(
        "inclusion",
        "--key",
        str(tmp_path / "key"),
        "--checkpoint",
        str(tmp_path / "cp"),
        str(write(tmp_path / "tampered.json", tampered)),
    )
    assert refused.returncode == 1


def test_an_inclusion_proof_against_an_older_checkpoint(log: Cast) -> None:
    auditor = log.session(log.auditor)
    early = AuditEvent.objects.filter(action="test:early").order_by("id").first()
    late = AuditEvent.objects.filter(action="test:late").order_by("id").first()
    first_size = AuditEvent.objects.count() - 6

    assert auditor.get(f"/api/v1/audit/events/{early.id}/proof?tree_size={first_size}").status_code == 200
    too_small = auditor.get(f"/api/v1/audit/events/{late.id}/proof?tree_size={first_size}")
    assert too_small.status_code == 400
    assert too_small.json()["code"] == "tree_size_too_small"
    unsigned_size = first_size + 1
    assert auditor.get(f"/api/v1/audit/events/{early.id}/proof?tree_size={unsigned_size}").json()["code"] == (
        "tree_size_unknown"
    )


@pytest.mark.requirement("PR-10")
def test_a_consistency_proof_from_the_api_verifies_offline(log: Cast, tmp_path: Path) -> None:
    auditor = log.session(log.auditor)
    second = AuditEvent.objects.count()
    first = second - 6
    proof = auditor.get(f"/api/v1/audit/consistency?first_size={first}&second_size={second}").json()
    old = auditor.get(f"/api/v1/audit/checkpoints/{first}").content.decode()
    new = auditor.get("/api/v1/audit/checkpoint").content.decode()
    key = auditor.get("/api/v1/audit/public-key").content.decode()

    result = run_verifier(
        "consistency",
        "--key",
        str(write(tmp_path / "key", key)),
        "--old",
        str(write(tmp_path / "old", old)),
        "--new",
        str(write(tmp_path / "new", new)),
        str(write(tmp_path / "proof.json", proof)),
    )

    assert result.returncode == 0, result.stderr
    assert proof["first_size"] == first
    assert proof["second_size"] == second


def test_an_event_not_yet_sequenced_has_no_proof_yet(log: Cast) -> None:
    with transaction.atomic():
        pending = record(actor=FACTORY_ACTOR, action="test:pending", target=("x", "1"), data={})

    response = log.session(log.auditor).get(f"/api/v1/audit/events/{pending.id}/proof")

    assert response.status_code == 409
    assert response.json()["code"] == "event_not_sequenced"


def test_events_are_filtered_and_paged_in_log_order(log: Cast) -> None:
    auditor = log.session(log.auditor)

    late = auditor.get("/api/v1/audit/events/?action=test:late&limit=4").json()
    rest = auditor.get(late["next"]).json()
    by_requester = auditor.get("/api/v1/audit/events/?actor=user:requester").json()["results"]
    one_target = auditor.get("/api/v1/audit/events/?target_type=test.thing&target_id=3").json()["results"]

    ids = [event["id"] for event in late["results"] + rest["results"]]
    assert len(ids) == 6
    assert ids == sorted(ids)
    assert {event["action"] for event in by_requester} == {"test:late"}
    assert [event["data"] for event in one_target] == [{"n": 3}]
    assert all(event["leaf_index"] is not None for event in late["results"])
    assert auditor.get("/api/v1/audit/events/?after=not-a-date").status_code == 400
