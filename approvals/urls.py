from django.urls import path

from approvals import apis

urlpatterns = [
    path("changelogs/<uuid:changelog_id>/submit", apis.SubmitApi.as_view(), name="changelog-submit"),
    path("changelogs/<uuid:changelog_id>/approvals/", apis.ApprovalListDecideApi.as_view(), name="approval-list"),
    path(
        "changelogs/<uuid:changelog_id>/approvals/challenge",
        apis.ApprovalChallengeApi.as_view(),
        name="approval-challenge",
    ),
    path("changelogs/<uuid:changelog_id>/close", apis.CloseApi.as_view(), name="changelog-close"),
    path(
        "changelogs/<uuid:changelog_id>/retrospective/review",
        apis.RetrospectiveReviewApi.as_view(),
        name="retrospective-review",
    ),
    path("approvals/queue", apis.QueueApi.as_view(), name="approval-queue"),
    path("exceptions/retrospectives", apis.RetrospectiveListApi.as_view(), name="exceptions-retrospectives"),
]
