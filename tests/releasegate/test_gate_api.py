"""The gate API reads its question and writes its answer without DRF's serializers on the way
(releasegate/apis.py); the serializers stay the schema and the judge of anything unusual.
Both ways must give the same."""

import uuid
from typing import Any

import pytest

from releasegate.apis import GateCheckInput, GateDecisionOutput, gate_question
from releasegate.models import GateDecision
from tests.conftest import Cast
from tests.factories import DIGEST, OTHER_DIGEST
from tests.releasegate.gate_support import check, ready_changelog

CHANGELOG = "0f4c7c9e-5d2a-4c7e-9a41-8f2d6c1b7e90"
QUESTIONS: list[Any] = [
    {"service": "payments-api", "artifact_digest": DIGEST},
    {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST},
    {"service": " payments-api\n", "environment": " production ", "artifact_digest": f" {DIGEST}\t"},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": CHANGELOG},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": CHANGELOG.replace("-", "")},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": CHANGELOG.upper()},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": f"urn:uuid:{CHANGELOG}"},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": f"{{{CHANGELOG}}}"},
    {"service": "pay_ments-API-2", "artifact_digest": OTHER_DIGEST},
    # Not for the quick reading: the serializer judges (and may accept or refuse).
    {"service": "payments-api", "artifact_digest": DIGEST, "unknown": "refused"},
    {"service": 42, "artifact_digest": DIGEST},
    {"service": "payments api", "artifact_digest": DIGEST},
    {"service": "", "artifact_digest": DIGEST},
    {"service": "payments-api\u00e9", "artifact_digest": DIGEST},
    {"service": "payments-api", "artifact_digest": DIGEST.upper()},
    {"service": "payments-api", "artifact_digest": DIGEST + "\n0"},
    {"service": "payments-api", "artifact_digest": DIGEST[:-1]},
    {"service": "payments-api", "artifact_digest": None},
    {"service": "payments-api"},
    {"artifact_digest": DIGEST},
    {"service": "payments-api", "artifact_digest": DIGEST, "environment": "staging"},
    {"service": "payments-api", "artifact_digest": DIGEST, "environment": None},
    {"service": "payments-api", "artifact_digest": DIGEST, "environment": ""},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": None},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": "not-a-uuid"},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": 12},
    {"service": "payments-api", "artifact_digest": DIGEST, "changelog": ""},
    {"service": ["payments-api"], "artifact_digest": DIGEST},
    ["payments-api", DIGEST],
    "payments-api",
    None,
]


@pytest.mark.parametrize("data", QUESTIONS)
def test_the_quick_reading_of_a_question_agrees_with_the_serializer(data: Any) -> None:
    quick = gate_question(data)
    serializer = GateCheckInput(data=data)
    valid = serializer.is_valid()
    if quick is not None:
        assert valid
        assert quick == dict(serializer.validated_data)


def test_the_quick_reading_takes_the_plain_questions() -> None:
    assert gate_question(QUESTIONS[3]) == {
        "service": "payments-api",
        "environment": "production",
        "artifact_digest": DIGEST,
        "changelog": uuid.UUID(CHANGELOG),
    }
    assert all(gate_question(data) is not None for data in QUESTIONS[:9])


@pytest.mark.parametrize("digest", [DIGEST, OTHER_DIGEST])
def test_the_answer_is_what_the_serializer_makes_of_the_stored_decision(cast: Cast, digest: str) -> None:
    ready_changelog(cast)

    response = check(cast.pipeline.client(), digest)

    assert response.status_code == 200
    stored = GateDecision.objects.select_related("service", "revision").get(pk=response.json()["decision_id"])
    assert response.json() == GateDecisionOutput(stored).data
