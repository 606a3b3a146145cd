"""What a changelog says, how it is validated, and the hash that approvals sign.

The content is validated as a whole every time it changes (a draft edit merges the edit into
the current content first), so a stored revision is always complete and consistent.
"""

import json
from enum import StrEnum
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from changelogs.models import DIGEST_PATTERN, ChangelogKind, RiskTier
from core.api import StrictInput
from tlog.canonical import canonical_json, sha256_hex

CONTENT_FORMAT = "releasegate/changelog/v1"


class ContentError(StrEnum):
    INVALID_DIGEST = "invalid_digest"
    INVALID_SOURCE_REVISION = "invalid_source_revision"
    DEPLOY_STEPS_MISSING = "deploy_steps_missing"
    DATA_CHANGES_UNDECLARED = "data_changes_undeclared"
    DATA_CHANGES_CONTRADICTORY = "data_changes_contradictory"
    HOTFIX_DETAILS_MISSING = "hotfix_details_missing"
    HOTFIX_DETAILS_NOT_ALLOWED = "hotfix_details_not_allowed"
    WINDOW_ENDS_BEFORE_START = "window_ends_before_start"
    SECURITY_IMPACT_UNDESCRIBED = "security_impact_undescribed"
    INVALID_EVIDENCE_HASH = "invalid_evidence_hash"
    BUNDLES_NOT_ALLOWED = "bundles_not_allowed"


digest_validator = RegexValidator(
    DIGEST_PATTERN,
    "A digest is 'sha256:' followed by 64 lowercase hex digits.",
    code=ContentError.INVALID_DIGEST,
)
source_revision_validator = RegexValidator(
    r"^[0-9a-f]{7,64}$",
    "A source revision is a commit id: 7 to 64 lowercase hex digits.",
    code=ContentError.INVALID_SOURCE_REVISION,
)


evidence_hash_validator = RegexValidator(
    r"^[0-9a-f]{64}$",
    "An evidence file is named by its SHA-256: 64 lowercase hex digits.",
    code=ContentError.INVALID_EVIDENCE_HASH,
)


class LinkSerializer(StrictInput):
    title = serializers.CharField(max_length=100, help_text="What the link is, e.g. 'ticket' or 'pull request'.")
    url = serializers.URLField(max_length=500)


class ArtifactSerializer(StrictInput):
    name = serializers.CharField(max_length=200)
    version = serializers.CharField(max_length=100)
    digest = serializers.CharField(
        max_length=71, validators=[digest_validator], help_text="Immutable digest: sha256:<64 hex>."
    )
    source_revision = serializers.CharField(
        max_length=64, validators=[source_revision_validator], help_text="The commit the artifact was built from."
    )
    links = LinkSerializer(many=True, required=False, default=list, max_length=20)  # type: ignore[call-arg]  # DRF >= 3.14 takes max_length with many=True; the stubs do not know


class DeployStepSerializer(StrictInput):
    description = serializers.CharField(max_length=2000)
    command = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class DataChangeSerializer(StrictInput):
    description = serializers.CharField(max_length=2000)
    version = serializers.CharField(max_length=200, help_text="Migration or script version, e.g. V42__add_index.")
    digest = serializers.CharField(max_length=71, validators=[digest_validator])
    rollback = serializers.CharField(max_length=2000, help_text="How this data change is undone.")
    dry_run_evidence = serializers.CharField(
        max_length=64,
        validators=[evidence_hash_validator],
        help_text="SHA-256 of the evidence file with the staging dry run's result (uploaded with environment staging).",
    )
    backup_evidence = serializers.CharField(
        max_length=64,
        validators=[evidence_hash_validator],
        help_text="SHA-256 of the evidence file showing the backup taken (or the rollback tested) before it runs.",
    )


class BundledChangeSerializer(StrictInput):
    changelog = serializers.UUIDField(help_text="A changelog of the same service, approved on its own.")
    content_hash = serializers.CharField(
        max_length=64,
        validators=[evidence_hash_validator],
        help_text="The content hash of its revision that was approved: the train carries exactly that content.",
    )


class PlannedWindowSerializer(StrictInput):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError(
                {"end": ["The window must end after it starts."]}, code=ContentError.WINDOW_ENDS_BEFORE_START
            )
        return attrs


class SecurityImpactSerializer(StrictInput):
    declared = serializers.BooleanField(help_text="Whether the change affects security (needs a security sign-off).")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["declared"] and not attrs["description"].strip():
            raise serializers.ValidationError(
                {"description": ["Describe the security impact."]}, code=ContentError.SECURITY_IMPACT_UNDESCRIBED
            )
        return attrs


# Why a change could not wait for the normal approvals (PR-08): counted and sampled by category.
EMERGENCY_CATEGORIES = {
    "service_outage": "A production service is down or degraded for customers",
    "security_incident": "An exploited or actively threatened vulnerability",
    "data_integrity": "Data is being corrupted or lost",
    "regulatory_deadline": "A legal or regulatory obligation falls due before a normal change could",
    "financial_loss": "Money is being lost or misdirected (failed or duplicated payments)",
    "third_party": "A supplier's failure or forced change (certificate, API, provider outage)",
}


class HotfixSerializer(StrictInput):
    incident_reference = serializers.CharField(
        max_length=100, help_text="The incident this hotfix answers, e.g. INC-1234."
    )
    emergency_category = serializers.ChoiceField(
        choices=list(EMERGENCY_CATEGORIES.items()), help_text="Why it could not wait; explained in emergency_reason."
    )
    emergency_reason = serializers.CharField(max_length=5000)


class ChangelogContentSerializer(StrictInput):
    """The full content of a changelog revision (PRODUCT.md section 2)."""

    artifact = ArtifactSerializer()
    deploy_steps = DeployStepSerializer(many=True, allow_empty=True, max_length=100)  # type: ignore[call-arg]  # as above
    data_changes = DataChangeSerializer(many=True, required=False, default=list, max_length=100)  # type: ignore[call-arg]  # as above
    no_data_changes = serializers.BooleanField(
        required=False, default=False, help_text="Set to true to declare that the change touches no data."
    )
    rollback_plan = serializers.CharField(max_length=10000)
    reason = serializers.CharField(max_length=10000)
    scope = serializers.CharField(
        max_length=10000,
        help_text="What the change touches: components, interfaces, data and customers affected, and what it does not.",
    )
    expected_outcome = serializers.CharField(max_length=10000)
    planned_window = PlannedWindowSerializer()
    risk_tier = serializers.ChoiceField(choices=RiskTier.choices)
    security_impact = SecurityImpactSerializer()
    hotfix = HotfixSerializer(required=False, allow_null=True, default=None)
    bundles = BundledChangeSerializer(  # type: ignore[call-arg]  # as above
        many=True,
        required=False,
        default=list,
        max_length=100,
        help_text="A train's changes, each approved on its own; adding or removing one needs the train approved again.",
    )
    commit_authors = serializers.ListField(
        child=serializers.CharField(max_length=254),
        required=False,
        default=list,
        max_length=200,
        help_text="Usernames or e-mail addresses of the commit authors; none of them may approve.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[serializers.ErrorDetail]] = {}

        def add(field: str, code: ContentError, message: str) -> None:
            errors.setdefault(field, []).append(serializers.ErrorDetail(message, code=code))

        if not attrs["deploy_steps"]:
            add("deploy_steps", ContentError.DEPLOY_STEPS_MISSING, "List at least one deploy step.")
        if attrs["data_changes"] and attrs["no_data_changes"]:
            add(
                "no_data_changes",
                ContentError.DATA_CHANGES_CONTRADICTORY,
                "Data changes are listed, so 'no_data_changes' cannot be true.",
            )
        if not attrs["data_changes"] and not attrs["no_data_changes"]:
            add(
                "data_changes",
                ContentError.DATA_CHANGES_UNDECLARED,
                "List the data changes, or declare none with 'no_data_changes': true.",
            )
        kind = self.context["kind"]
        if kind == ChangelogKind.HOTFIX and not attrs.get("hotfix"):
            add(
                "hotfix",
                ContentError.HOTFIX_DETAILS_MISSING,
                "A hotfix needs an incident reference and an emergency reason.",
            )
        if kind == ChangelogKind.HOTFIX and attrs.get("bundles"):
            add("bundles", ContentError.BUNDLES_NOT_ALLOWED, "Only a train bundles changes.")
        if kind == ChangelogKind.TRAIN and attrs.get("hotfix"):
            add("hotfix", ContentError.HOTFIX_DETAILS_NOT_ALLOWED, "Only hotfixes carry hotfix details.")
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def content_validate(*, kind: str, content: Any) -> dict[str, Any]:
    """Validate a whole content document and return its normal form (JSON-safe: datetimes as
    ISO 8601 strings). Raises the REST framework's ValidationError with field codes."""
    serializer = ChangelogContentSerializer(data=content, context={"kind": kind})
    serializer.is_valid(raise_exception=True)
    normal: dict[str, Any] = json.loads(json.dumps(serializer.data))
    return normal


def content_hash(*, service: str, kind: str, content: dict[str, Any], evidence: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON of everything an approver signs: which service, which
    kind, the content, and the evidence by hash."""
    document = {
        "format": CONTENT_FORMAT,
        "service": service,
        "kind": kind,
        "content": content,
        "evidence": sorted(evidence, key=lambda item: (item["sha256"], item.get("kind", ""))),
    }
    return sha256_hex(canonical_json(document))
