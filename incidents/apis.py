"""HTTP API of incidents (docs/incidents.md): thin views over incidents.services and selectors."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs.models import Domain, Journey, Service
from core.actors import actor_of
from core.api import DayField, InstantField, QueryFilters, StrictInput, checked, error_responses
from core.errors import CommonError, InvalidInput, NotFound
from incidents import dora, selectors, services
from incidents.errors import IncidentError
from incidents.models import (
    ActionKind,
    ActionStatus,
    ImpactBucket,
    Incident,
    IncidentStatus,
    Postmortem,
    PostmortemAction,
    Verdict,
)
from incidents.rules import Severity

SEVERITIES = [s.value for s in Severity]


class Text(serializers.CharField):
    """A string, and only a string: DRF's CharField would take 0 for "0"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class Flag(serializers.BooleanField):
    """true or false, and only those: DRF's BooleanField would take 0, 1 and "yes"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


def body_of(request: Request) -> dict[str, Any]:
    """The JSON body, which must be an object."""
    if not isinstance(request.data, Mapping):
        raise InvalidInput(CommonError.INVALID_INPUT, "The request body must be a JSON object.")
    return dict(request.data)


def valid_body(serializer: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The JSON body, checked by ``serializer`` (400 when it does not pass): its validated data."""
    return checked(serializer, body_of(request))


def query_of(request: Request) -> dict[str, Any]:
    """The query, where a parameter given empty is a mistake, not one left out."""
    blank = sorted(name for name, value in request.query_params.items() if value == "")
    if blank:
        raise InvalidInput(
            CommonError.INVALID_INPUT,
            f"Empty query parameter(s): {', '.join(blank)}.",
            fields={name: [{"code": "blank", "message": "This may not be empty."}] for name in blank},
        )
    return {name: request.query_params.get(name) for name in request.query_params}


class TimelineOutput(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    summary = serializers.CharField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    actor = serializers.CharField()


class DoraReportOutput(serializers.Serializer[Any]):
    kind = serializers.CharField()
    due_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    reference = serializers.CharField()
    overdue = serializers.SerializerMethodField()

    def get_overdue(self, report: Any) -> bool:
        return dora.overdue(report.due_at, report.sent_at, timezone.now())


class DoraOutput(serializers.Serializer[Any]):
    major = serializers.BooleanField()
    met = serializers.ListField(child=serializers.CharField())
    why = serializers.CharField()
    thresholds_version = serializers.CharField()
    criteria = serializers.DictField()
    classified_at = serializers.DateTimeField()


class IncidentOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    reference = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    services = serializers.SerializerMethodField()
    domains = serializers.SerializerMethodField()
    journeys = serializers.SerializerMethodField()
    planned = serializers.BooleanField()
    security = serializers.BooleanField()
    severity = serializers.ChoiceField(choices=SEVERITIES)
    impact = serializers.CharField(help_text="Bucket of active users likely affected: under_10, 10_25, 25_50, over_50.")
    impact_rationale = serializers.CharField()
    status = serializers.ChoiceField(choices=IncidentStatus.choices)
    detected_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()
    mitigated_at = serializers.DateTimeField(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.SerializerMethodField(
        help_text="Start to mitigation (else resolution); null while open."
    )
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    external_id = serializers.CharField()
    external_url = serializers.CharField()
    timeline = TimelineOutput(many=True)
    dora = serializers.SerializerMethodField()
    dora_reports = DoraReportOutput(many=True)

    def get_services(self, incident: Incident) -> list[str]:
        return sorted(incident.services.values_list("slug", flat=True))

    def get_domains(self, incident: Incident) -> list[str]:
        return [d.slug for d in selectors.domains_of(incident)]

    def get_journeys(self, incident: Incident) -> list[str]:
        return sorted(incident.journeys.values_list("journey_id", flat=True))

    def get_duration_seconds(self, incident: Incident) -> float | None:
        duration = incident.duration
        return duration.total_seconds() if duration is not None else None

    @extend_schema_field(DoraOutput(allow_null=True))
    def get_dora(self, incident: Incident) -> dict[str, Any] | None:
        found = getattr(incident, "dora", None) if hasattr(incident, "dora") else None
        return dict(DoraOutput(found).data) if found else None


M = TypeVar("M", bound=Model)


def _all_known(objects: QuerySet[M], key: str, values: list[str], *, field: str, noun: str) -> list[M]:
    """The objects whose ``key`` is one of ``values``; a value that names none refuses the input."""
    found = list(objects.filter(**{f"{key}__in": values}))
    unknown = sorted(set(values) - {getattr(item, key) for item in found})
    if unknown:
        raise InvalidInput(
            "invalid_input",
            f"Unknown {noun}(s): {', '.join(unknown)}.",
            fields={field: [{"code": f"unknown_{noun}", "message": ", ".join(unknown)}]},
        )
    return found


def _services(slugs: list[str]) -> list[Service]:
    return _all_known(Service.objects.all(), "slug", slugs, field="services", noun="service")


def _journeys(ids: list[str]) -> list[Journey]:
    return _all_known(Journey.objects.all(), "journey_id", ids, field="journeys", noun="journey")


class IncidentInput(StrictInput):
    title = Text(max_length=300)
    description = Text(max_length=20000, required=False, allow_blank=True, default="")
    services = serializers.ListField(child=serializers.SlugField(), min_length=1, max_length=50)
    journeys = serializers.ListField(child=Text(max_length=20), required=False, default=list, max_length=50)
    planned = Flag(required=False, default=False)
    security = Flag(required=False, default=False)
    severity = serializers.ChoiceField(choices=SEVERITIES)
    impact = serializers.ChoiceField(choices=ImpactBucket.choices, required=False, allow_blank=True, default="")
    impact_rationale = Text(max_length=5000, required=False, allow_blank=True, default="")
    started_at = InstantField()
    detected_at = InstantField(required=False, allow_null=True, default=None)


class IncidentUpdateInput(StrictInput):
    title = Text(max_length=300, required=False)
    description = Text(max_length=20000, required=False, allow_blank=True)
    services = serializers.ListField(child=serializers.SlugField(), min_length=1, max_length=50, required=False)
    journeys = serializers.ListField(child=Text(max_length=20), required=False, max_length=50)
    planned = Flag(required=False)
    security = Flag(required=False)
    severity = serializers.ChoiceField(choices=SEVERITIES, required=False)
    impact = serializers.ChoiceField(choices=ImpactBucket.choices, required=False, allow_blank=True)
    impact_rationale = Text(max_length=5000, required=False, allow_blank=True)
    started_at = InstantField(required=False)
    detected_at = InstantField(required=False)


def _incident(incident: Incident) -> dict[str, Any]:
    return dict(IncidentOutput(Incident.objects.prefetch_related("timeline", "dora_reports").get(pk=incident.pk)).data)


class IncidentListCreateApi(APIView):
    write_scope = "incidents"

    class FilterSerializer(QueryFilters):
        status = serializers.ChoiceField(choices=IncidentStatus.choices, required=False)
        service = serializers.SlugField(required=False)

    @extend_schema(
        operation_id="incidents_list",
        parameters=[FilterSerializer],
        responses={200: IncidentOutput(many=True), **error_responses(400, 401)},
        description="Incidents the caller may see, newest start first (at most 200).",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=query_of(request))
        filters.is_valid(raise_exception=True)
        incidents = selectors.incident_list_visible(user=actor_of(request))
        if "status" in filters.validated_data:
            incidents = incidents.filter(status=filters.validated_data["status"])
        if "service" in filters.validated_data:
            incidents = incidents.filter(services__slug=filters.validated_data["service"])
        incidents = incidents.prefetch_related("timeline", "dora_reports")[:200]
        return Response(IncidentOutput(incidents, many=True).data)

    @extend_schema(
        operation_id="incidents_open",
        request=IncidentInput,
        responses={201: IncidentOutput, **error_responses(400, 401, 403)},
        description="Record an incident of services the caller manages (people and pipeline tokens with the "
        "`incidents` scope).",
    )
    def post(self, request: Request) -> Response:
        values = valid_body(IncidentInput, request)
        incident = services.incident_open(
            acting_user=actor_of(request),
            services=_services(values.pop("services")),
            journeys=_journeys(values.pop("journeys")),
            **values,
        )
        return Response(_incident(incident), status=status.HTTP_201_CREATED)


class IncidentDetailApi(APIView):
    write_scope = "incidents"

    @extend_schema(operation_id="incidents_get", responses={200: IncidentOutput, **error_responses(401, 404)})
    def get(self, request: Request, incident_id: str) -> Response:
        return Response(_incident(selectors.incident_get(user=actor_of(request), incident_id=incident_id)))

    @extend_schema(
        operation_id="incidents_update",
        request=IncidentUpdateInput,
        responses={200: IncidentOutput, **error_responses(400, 401, 403, 404)},
    )
    def patch(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        values = valid_body(IncidentUpdateInput, request)
        if "services" in values:
            values["services"] = _services(values["services"])
        if "journeys" in values:
            values["journeys"] = _journeys(values["journeys"])
        services.incident_update(acting_user=actor_of(request), incident=incident, changes=values)
        return Response(_incident(incident))


class StatusInput(StrictInput):
    status = serializers.ChoiceField(choices=IncidentStatus.choices)
    at = InstantField(required=False, allow_null=True, default=None, help_text="Default: now.")
    note = Text(max_length=2000, required=False, allow_blank=True, default="")


class IncidentStatusApi(APIView):
    write_scope = "incidents"

    @extend_schema(
        operation_id="incidents_status",
        request=StatusInput,
        responses={200: IncidentOutput, **error_responses(400, 401, 404, 409)},
        description="open → mitigated → resolved → closed (reopen: back to open). Resolving an incident of "
        "severity medium or above opens its postmortem, due in POSTMORTEM_DUE_DAYS.",
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        values = valid_body(StatusInput, request)
        services.incident_status_change(acting_user=actor_of(request), incident=incident, **values)
        return Response(_incident(incident))


class SuspectOutput(serializers.Serializer[Any]):
    deployment = serializers.UUIDField(source="deployment.id")
    service = serializers.CharField(source="deployment.service.slug")
    started_at = serializers.DateTimeField(source="deployment.started_at")
    status = serializers.CharField(source="deployment.status")
    changelog = serializers.UUIDField(source="deployment.changelog_id", allow_null=True)
    same_service = serializers.BooleanField()
    verdict = serializers.CharField(source="verdict.verdict", allow_null=True, default=None)
    reason = serializers.CharField(source="verdict.reason", allow_null=True, default=None)
    decided_by = serializers.CharField(source="verdict.decided_by.username", allow_null=True, default=None)


class SuspectListApi(APIView):
    @extend_schema(
        operation_id="incidents_suspects",
        responses={200: SuspectOutput(many=True), **error_responses(401, 404)},
        description="Production deployments of the incident's services and of their domains' other services in "
        "INCIDENT_SUSPECT_WINDOW_HOURS before it started, with the verdict given on each.",
    )
    def get(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        return Response(SuspectOutput(selectors.suspect_list(incident=incident), many=True).data)


class VerdictInput(StrictInput):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    reason = Text(max_length=5000)


class SuspectDecideApi(APIView):
    @extend_schema(
        operation_id="incidents_suspect_decide",
        request=VerdictInput,
        responses={200: SuspectOutput(many=True), **error_responses(400, 401, 403, 404)},
        description="A person confirms a suspect as the cause (`caused_by`: it counts as a failed change) or "
        "`not_related`, with a reason.",
    )
    def post(self, request: Request, incident_id: str, deployment_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        values = valid_body(VerdictInput, request)
        services.suspect_decide(acting_user=actor_of(request), incident=incident, deployment_id=deployment_id, **values)
        return Response(SuspectOutput(selectors.suspect_list(incident=incident), many=True).data)


class CriteriaInput(StrictInput):
    critical_services_affected = Flag()
    malicious_access_with_possible_data_loss = Flag(required=False, default=False)
    clients_percent = serializers.FloatField(min_value=0, max_value=100, required=False, default=0)
    clients_number = serializers.IntegerField(min_value=0, required=False, default=0)
    counterparts_percent = serializers.FloatField(min_value=0, max_value=100, required=False, default=0)
    transactions_percent_number = serializers.FloatField(min_value=0, max_value=100, required=False, default=0)
    transactions_percent_value = serializers.FloatField(min_value=0, max_value=100, required=False, default=0)
    reputational_media = Flag(required=False, default=False)
    reputational_complaints = Flag(required=False, default=False)
    reputational_regulatory = Flag(required=False, default=False)
    reputational_client_loss = Flag(required=False, default=False)
    duration_hours = serializers.FloatField(min_value=0, required=False, default=0)
    downtime_hours = serializers.FloatField(min_value=0, required=False, default=0)
    member_states = serializers.IntegerField(min_value=0, max_value=100, required=False, default=0)
    data_losses = Flag(required=False, default=False)
    economic_eur = serializers.FloatField(min_value=0, required=False, default=0)


class DoraClassifyApi(APIView):
    @extend_schema(
        operation_id="incidents_dora_classify",
        request=CriteriaInput,
        responses={200: IncidentOutput, **error_responses(400, 401, 403, 404)},
        description="Record the DORA classification criteria (Delegated Regulation 2024/1772) and compute the "
        "result with the thresholds in force; a major incident gets its reporting clock.",
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        values = valid_body(CriteriaInput, request)
        services.dora_classify(acting_user=actor_of(request), incident=incident, criteria=dora.Criteria(**values))
        return Response(_incident(incident))


class ReportSentInput(StrictInput):
    reference = Text(max_length=200)
    sent_at = InstantField(required=False, allow_null=True, default=None)


class DoraReportSentApi(APIView):
    @extend_schema(
        operation_id="incidents_dora_report_sent",
        request=ReportSentInput,
        responses={200: IncidentOutput, **error_responses(400, 401, 403, 404, 409)},
        description="Mark the initial, intermediate or final report of a major incident sent, with its reference.",
    )
    def post(self, request: Request, incident_id: str, kind: str) -> Response:
        if kind not in dora.ReportKind.__members__.values():
            raise NotFound("not_found", "No such report kind.")
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        values = valid_body(ReportSentInput, request)
        services.dora_report_sent(acting_user=actor_of(request), incident=incident, kind=kind, **values)
        return Response(_incident(incident))


class ActionOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    description = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    due_date = DayField()
    ticket_url = serializers.CharField()
    status = serializers.ChoiceField(choices=ActionStatus.choices)


class PostmortemOutput(serializers.Serializer[Any]):
    incident = serializers.CharField(source="incident.reference")
    status = serializers.CharField()
    due_at = serializers.DateTimeField(allow_null=True)
    customer_impact = serializers.CharField()
    impact_determination = serializers.CharField()
    components_impacted = serializers.CharField()
    root_cause = serializers.CharField()
    tags = serializers.SerializerMethodField()
    chronology = serializers.ListField(child=serializers.DictField())
    participants = serializers.ListField(child=serializers.CharField())
    actions = ActionOutput(many=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    def get_tags(self, postmortem: Postmortem) -> list[str]:
        return sorted(postmortem.tags.values_list("slug", flat=True))


class ChronologyItem(StrictInput):
    at = InstantField()
    text = Text(max_length=2000)
    source = Text(max_length=32, required=False, default="manual")  # type: ignore[assignment]


class PostmortemInput(StrictInput):
    customer_impact = Text(max_length=20000, required=False, allow_blank=True)
    impact_determination = Text(max_length=20000, required=False, allow_blank=True)
    components_impacted = Text(max_length=20000, required=False, allow_blank=True)
    root_cause = Text(max_length=20000, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.SlugField(), required=False, max_length=20)
    chronology = serializers.ListField(child=ChronologyItem(), required=False, max_length=500)
    participants = serializers.ListField(child=Text(max_length=200), required=False, max_length=100)
    complete = Flag(required=False, default=False)


def _postmortem(incident: Incident) -> Postmortem:
    postmortem = Postmortem.objects.filter(incident=incident).first()
    if postmortem is None:
        raise NotFound(IncidentError.NO_POSTMORTEM, "The incident has no postmortem yet.")
    return postmortem


class PostmortemApi(APIView):
    @extend_schema(
        operation_id="incidents_postmortem_get", responses={200: PostmortemOutput, **error_responses(401, 404)}
    )
    def get(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        return Response(PostmortemOutput(_postmortem(incident)).data)

    @extend_schema(
        operation_id="incidents_postmortem_start",
        request=None,
        responses={201: PostmortemOutput, **error_responses(401, 404, 409)},
        description="Open the postmortem now (it opens by itself when an incident of medium or above is resolved); "
        "its chronology is prefilled from the incident's timeline.",
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        postmortem = services.postmortem_start(acting_user=actor_of(request), incident=incident)
        return Response(PostmortemOutput(postmortem).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="incidents_postmortem_update",
        request=PostmortemInput,
        responses={200: PostmortemOutput, **error_responses(400, 401, 404, 409)},
        description="Edit the postmortem; `complete: true` completes it (impact, root cause and tags needed).",
    )
    def patch(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        postmortem = _postmortem(incident)
        values = valid_body(PostmortemInput, request)
        complete = values.pop("complete")
        if "chronology" in values:
            values["chronology"] = [
                {"at": item["at"].isoformat(), "text": item["text"], "source": item["source"]}
                for item in values["chronology"]
            ]
        services.postmortem_update(
            acting_user=actor_of(request), postmortem=postmortem, changes=values, complete=complete
        )
        return Response(PostmortemOutput(postmortem).data)


class ActionInput(StrictInput):
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    description = Text(max_length=5000)
    owner = Text(max_length=150, help_text="The owner's username.")
    due_date = DayField()
    ticket_url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")


class ActionListApi(APIView):
    @extend_schema(
        operation_id="incidents_postmortem_action_add",
        request=ActionInput,
        responses={201: PostmortemOutput, **error_responses(400, 401, 404)},
        description="A short- or long-term fix: owner, due date, the bank's backlog ticket.",
    )
    def post(self, request: Request, incident_id: str) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        postmortem = _postmortem(incident)
        values = valid_body(ActionInput, request)
        owner = get_user_model().objects.filter(username=values.pop("owner"), is_active=True).first()
        if owner is None:
            raise InvalidInput(
                "invalid_input", "No such owner.", fields={"owner": [{"code": "unknown", "message": "No such user."}]}
            )
        services.action_add(acting_user=actor_of(request), postmortem=postmortem, owner=owner, **values)
        return Response(PostmortemOutput(postmortem).data, status=status.HTTP_201_CREATED)


class ActionStatusInput(StrictInput):
    status = serializers.ChoiceField(choices=ActionStatus.choices)


class ActionDetailApi(APIView):
    @extend_schema(
        operation_id="incidents_postmortem_action_update",
        request=ActionStatusInput,
        responses={200: PostmortemOutput, **error_responses(400, 401, 404)},
    )
    def patch(self, request: Request, incident_id: str, action_id: int) -> Response:
        incident = selectors.incident_get(user=actor_of(request), incident_id=incident_id)
        postmortem = _postmortem(incident)
        action = PostmortemAction.objects.filter(postmortem=postmortem, pk=action_id).first()
        if action is None:
            raise NotFound("not_found", "No such action.")
        values = valid_body(ActionStatusInput, request)
        services.action_status_change(acting_user=actor_of(request), action=action, status=values["status"])
        return Response(PostmortemOutput(postmortem).data)


# --- Figures, the weekly review, overdue work, a change's incidents --------------------------------


class FiguresOutput(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    service = serializers.CharField(allow_null=True)
    domain = serializers.CharField(allow_null=True)
    deployments = serializers.IntegerField(help_text="Succeeded production deployments started in the period.")
    days = serializers.FloatField()
    deployment_frequency_per_day = serializers.FloatField()
    lead_time_hours_median = serializers.FloatField(allow_null=True, help_text="First submission to production.")
    commit_lead_time_hours_median = serializers.FloatField(
        allow_null=True, help_text="Source commit to production, when the commit time is known."
    )
    failed_changes = serializers.IntegerField(help_text="Deployments confirmed as the cause of an incident.")
    change_failure_rate = serializers.FloatField(allow_null=True)
    incidents_restored = serializers.IntegerField()
    time_to_restore_hours_median = serializers.FloatField(allow_null=True)
    incidents = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Incidents started in the period by_severity, by_tag, by_domain and by_month.",
    )


class PeriodInput(serializers.Serializer[Any]):
    start = InstantField(required=False, help_text="Default: 30 days before end.")
    end = InstantField(required=False, help_text="Default: now.")
    service = serializers.SlugField(required=False)
    domain = serializers.SlugField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(days=30)
        if start >= end:
            raise serializers.ValidationError({"start": ["start must be before end."]})
        if end - start > timedelta(days=732):
            raise serializers.ValidationError({"start": ["The period is at most two years."]})
        return {**attrs, "start": start, "end": end}


def figures_of(values: dict[str, Any]) -> dict[str, Any]:
    service = domain = None
    if values.get("service"):
        service = Service.objects.filter(slug=values["service"]).first()
        if service is None:
            raise NotFound("not_found", "No such service.")
    if values.get("domain"):
        domain = Domain.objects.filter(slug=values["domain"]).first()
        if domain is None:
            raise NotFound("not_found", "No such domain.")
    figures = selectors.figures_for(start=values["start"], end=values["end"], service=service, domain=domain)
    return {
        "start": values["start"],
        "end": values["end"],
        "service": service.slug if service else None,
        "domain": domain.slug if domain else None,
        **figures.__dict__,
        "incidents": selectors.incident_counts(start=values["start"], end=values["end"]),
    }


class FiguresApi(APIView):
    @extend_schema(
        operation_id="incidents_figures",
        parameters=[PeriodInput],
        responses={200: FiguresOutput, **error_responses(400, 401, 404)},
        description="Delivery figures of production for a service, a domain or everything over a period: "
        "deployment frequency, lead time, change failure rate (confirmed causes / deployments), time to "
        "restore; and incident counts.",
    )
    def get(self, request: Request) -> Response:
        given = PeriodInput(data=query_of(request))
        given.is_valid(raise_exception=True)
        return Response(FiguresOutput(figures_of(dict(given.validated_data))).data)


class ReviewItemOutput(serializers.Serializer[Any]):
    reference = serializers.CharField(source="incident.reference")
    title = serializers.CharField(source="incident.title")
    severity = serializers.CharField(source="incident.severity")
    resolved_at = serializers.DateTimeField(source="incident.resolved_at")
    postmortem_status = serializers.CharField(allow_null=True)
    postmortem_due_at = serializers.DateTimeField(allow_null=True)


class ReviewApi(APIView):
    class WeekInput(serializers.Serializer[Any]):
        week = DayField(required=False, help_text="Any day of the week (Monday to Sunday); default: this week.")

    @extend_schema(
        operation_id="incidents_weekly_review",
        parameters=[WeekInput],
        responses={200: ReviewItemOutput(many=True), **error_responses(400, 401)},
        description="The weekly review: incidents resolved in the week with their postmortem's state.",
    )
    def get(self, request: Request) -> Response:
        given = self.WeekInput(data=query_of(request))
        given.is_valid(raise_exception=True)
        day = given.validated_data.get("week") or timezone.now().date()
        monday = day - timedelta(days=day.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
        visible = set(selectors.incident_list_visible(user=actor_of(request)).values_list("pk", flat=True))
        rows = [row for row in selectors.weekly_review(week_start=start) if row["incident"].pk in visible]
        return Response(ReviewItemOutput(rows, many=True).data)


class OverdueOutput(serializers.Serializer[Any]):
    postmortems = serializers.ListField(child=serializers.DictField())
    long_term_actions = serializers.ListField(child=serializers.DictField())
    dora_reports = serializers.ListField(child=serializers.DictField())
    recurring_root_causes = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class OverdueApi(APIView):
    @extend_schema(
        operation_id="exceptions_incidents",
        responses={200: OverdueOutput, **error_responses(401)},
        description="The exceptions of incidents: overdue postmortems, overdue long-term actions, overdue DORA "
        "reports of major incidents, and root-cause tags that recurred within six months (Art. 8(2)).",
    )
    def get(self, request: Request) -> Response:
        now = timezone.now()
        visible = selectors.incident_list_visible(user=actor_of(request))
        body = {
            "postmortems": [
                {"incident": p.incident.reference, "due_at": p.due_at}
                for p in selectors.postmortems_overdue(now=now).filter(incident__in=visible)
            ],
            "long_term_actions": [
                {
                    "incident": a.postmortem.incident.reference,
                    "action": a.pk,
                    "description": a.description,
                    "owner": a.owner.username,
                    "due_date": a.due_date,
                    "ticket_url": a.ticket_url,
                }
                for a in selectors.actions_overdue(now=now).filter(postmortem__incident__in=visible)
            ],
            "dora_reports": [
                {"incident": r.incident.reference, "kind": r.kind, "due_at": r.due_at}
                for r in selectors.dora_reports_overdue(now=now).filter(incident__in=visible)
            ],
            "recurring_root_causes": selectors.recurring_root_causes(now=now),
        }
        return Response(OverdueOutput(body).data)


class ChangelogIncidentsOutput(serializers.Serializer[Any]):
    caused = serializers.ListField(child=serializers.CharField(), help_text="Incidents confirmed as caused by it.")
    answered = serializers.ListField(
        child=serializers.CharField(), help_text="The incident its hotfix reference names, when that incident exists."
    )


class ChangelogIncidentsApi(APIView):
    @extend_schema(
        operation_id="changelogs_incidents",
        responses={200: ChangelogIncidentsOutput, **error_responses(401, 404)},
        description="The incidents linked to a change: caused by it (confirmed) and answered by it (a hotfix's "
        "incident_reference that names an existing incident).",
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        from changelogs import selectors as changelog_selectors

        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        linked = selectors.incidents_of_changelog(changelog=changelog)
        return Response(ChangelogIncidentsOutput({k: [i.reference for i in v] for k, v in linked.items()}).data)
