"""What a changelog says, as the API's schema describes and renders it, and the hash that
approvals sign.

The content is checked as a whole every time it changes (a draft edit merges the edit into the
current content first), so a stored revision is always complete and consistent. The checking is
``changelogs.content_rules`` (no REST framework: the services run it); the serializers here say
the same for the OpenAPI schema and the responses, and tests/changelogs/test_content_rules.py
holds the two equal.
"""

from rest_framework import serializers

from changelogs.content_rules import (
    EMERGENCY_CATEGORIES,
    digest_validator,
    evidence_hash_validator,
    source_revision_validator,
)
from changelogs.models import RiskTier
from core.api import InstantField, StrictInput


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
    start = InstantField()
    end = InstantField()


class SecurityImpactSerializer(StrictInput):
    declared = serializers.BooleanField(help_text="Whether the change affects security (needs a security sign-off).")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class HotfixSerializer(StrictInput):
    incident_reference = serializers.CharField(
        max_length=100, help_text="The incident this hotfix answers, e.g. INC-1234."
    )
    emergency_category = serializers.ChoiceField(
        choices=list(EMERGENCY_CATEGORIES.items()), help_text="Why it could not wait; explained in emergency_reason."
    )
    emergency_reason = serializers.CharField(max_length=5000)


# Its fields check what changelogs.content_rules checks field by field; the rules over a whole
# object (the window's order, a described security impact, what a hotfix or a train carries)
# live there alone. (The docstring is the schema's description of the content.)
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
