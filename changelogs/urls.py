from django.urls import path

from changelogs import apis

urlpatterns = [
    path("domains/", apis.DomainListApi.as_view(), name="domain-list"),
    path("services/", apis.ServiceListApi.as_view(), name="service-list"),
    path("journeys/", apis.JourneyListApi.as_view(), name="journey-list"),
    path("changelogs/", apis.ChangelogListCreateApi.as_view(), name="changelog-list"),
    path("changelogs/<uuid:changelog_id>/", apis.ChangelogDetailApi.as_view(), name="changelog-detail"),
    path("changelogs/<uuid:changelog_id>/revisions/", apis.RevisionListApi.as_view(), name="revision-list"),
    path(
        "changelogs/<uuid:changelog_id>/revisions/<int:number>",
        apis.RevisionDetailApi.as_view(),
        name="revision-detail",
    ),
    path("changelogs/<uuid:changelog_id>/evidence/", apis.EvidenceListAddApi.as_view(), name="evidence-list"),
    path(
        "changelogs/<uuid:changelog_id>/evidence/<uuid:evidence_id>/",
        apis.EvidenceDetailApi.as_view(),
        name="evidence-detail",
    ),
    path(
        "changelogs/<uuid:changelog_id>/evidence/<uuid:evidence_id>/download",
        apis.EvidenceDownloadApi.as_view(),
        name="evidence-download",
    ),
    path("changelogs/<uuid:changelog_id>/readiness", apis.ReadinessApi.as_view(), name="changelog-readiness"),
    path("policies/", apis.PolicyListApi.as_view(), name="policy-list"),
]
