from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from releasegate import health, sso, views
from releasegate.incident_report import LearningReportApi
from releasegate.metrics import metrics_view

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.doc, name="docs"),
    path("docs/<str:name>", views.doc, name="doc"),
    # The packs' admin page moved with the pack job model (audit -> packs): old bookmarks follow it.
    re_path(r"^admin/audit/packjob/(?P<rest>.*)$", RedirectView.as_view(url="/admin/packs/packjob/%(rest)s")),
    # Before the admin's own: with single sign-on, login offers the provider and logout ends its session.
    path("admin/login/", sso.admin_login, name="admin-login"),
    path("admin/logout/", sso.admin_logout, name="admin-logout"),
    path("admin/", admin.site.urls),
    path("oidc/authenticate/", sso.sso_authenticate, name="oidc_authentication_init"),
    path("oidc/callback/", sso.sso_callback, name="sso-callback"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", views.SchemaView.as_view(), name="schema"),
    # The split view serves its script as a file: the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("releasegate.gate_urls")),
    path("api/v1/", include("packs.urls")),
    path("api/v1/", include("approvals.urls")),
    path("api/v1/incidents/report", LearningReportApi.as_view(), name="incident-learning-report"),
    path("api/v1/", include("incidents.urls")),
    path("api/v1/", include("changelogs.urls")),
    path("api/v1/", include("audit.urls")),
    path("api/v1/", include("identity.urls")),
    # Last: whatever else is under /api/ is a JSON 404, never Django's HTML page.
    re_path(r"^api/", views.api_not_found),
]

handler400 = "releasegate.views.refused"
handler404 = "releasegate.views.not_found"
handler500 = "releasegate.views.internal_error"
