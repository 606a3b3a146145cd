from django.urls import path

from releasegate import apis

urlpatterns = [
    path("gate/check", apis.GateCheckApi.as_view(), name="gate-check"),
    path("deployments/", apis.DeploymentListReportApi.as_view(), name="deployment-list"),
    path(
        "exceptions/unauthorised-deployments",
        apis.UnauthorisedDeploymentListApi.as_view(),
        name="exceptions-unauthorised",
    ),
]
