from django.urls import path

from releasegate import access_apis, apis, github_apis, smoke_apis

urlpatterns = [
    path("gate/check", apis.GateCheckApi.as_view(), name="gate-check"),
    path("deployments/", apis.DeploymentListReportApi.as_view(), name="deployment-list"),
    path("deployments/<uuid:deployment_id>/smoke", smoke_apis.DeploymentSmokeApi.as_view(), name="deployment-smoke"),
    path(
        "exceptions/unauthorised-deployments",
        apis.UnauthorisedDeploymentListApi.as_view(),
        name="exceptions-unauthorised",
    ),
    path(
        "integrations/github/deployment-protection",
        github_apis.GitHubDeploymentProtectionApi.as_view(),
        name="github-deployment-protection",
    ),
    path("access/deployment-rights", access_apis.DeploymentRightsApi.as_view(), name="access-deployment-rights"),
    path("access/report", access_apis.AccessReportApi.as_view(), name="access-report"),
    path("access/reviews/open", access_apis.AccessReviewApi.as_view(), name="access-review"),
    path(
        "access/reviews/items/<int:item_id>/reconfirm",
        access_apis.AccessReviewReconfirmApi.as_view(),
        name="access-review-reconfirm",
    ),
]
