from django.urls import path

from incidents import apis, webhook_apis

urlpatterns = [
    path("incidents/", apis.IncidentListCreateApi.as_view(), name="incident-list"),
    path("incidents/figures", apis.FiguresApi.as_view(), name="incident-figures"),
    path("incidents/review", apis.ReviewApi.as_view(), name="incident-review"),
    path("exceptions/incidents", apis.OverdueApi.as_view(), name="exceptions-incidents"),
    path("changelogs/<uuid:changelog_id>/incidents", apis.ChangelogIncidentsApi.as_view(), name="changelog-incidents"),
    path("incidents/<uuid:incident_id>/", apis.IncidentDetailApi.as_view(), name="incident-detail"),
    path("incidents/<uuid:incident_id>/status", apis.IncidentStatusApi.as_view(), name="incident-status"),
    path("incidents/<uuid:incident_id>/suspects/", apis.SuspectListApi.as_view(), name="incident-suspects"),
    path(
        "incidents/<uuid:incident_id>/suspects/<uuid:deployment_id>",
        apis.SuspectDecideApi.as_view(),
        name="incident-suspect-decide",
    ),
    path("incidents/<uuid:incident_id>/dora", apis.DoraClassifyApi.as_view(), name="incident-dora"),
    path(
        "incidents/<uuid:incident_id>/dora/reports/<str:kind>",
        apis.DoraReportSentApi.as_view(),
        name="incident-dora-report",
    ),
    path("incidents/<uuid:incident_id>/postmortem", apis.PostmortemApi.as_view(), name="incident-postmortem"),
    path(
        "incidents/<uuid:incident_id>/postmortem/actions/",
        apis.ActionListApi.as_view(),
        name="incident-postmortem-actions",
    ),
    path(
        "incidents/<uuid:incident_id>/postmortem/actions/<int:action_id>",
        apis.ActionDetailApi.as_view(),
        name="incident-postmortem-action",
    ),
    path("integrations/pagerduty", webhook_apis.PagerDutyWebhookApi.as_view(), name="integration-pagerduty"),
    path("integrations/incident-events", webhook_apis.GenericWebhookApi.as_view(), name="integration-incident-events"),
]
