"""The product's URLs plus the baseline of bench/gate.py: a trivial authenticated endpoint.

``GET /bench/trivial`` does what every API request does before its own work (the same
middleware, DRF view, API-token authentication, permission check and JSON rendering, in one
transaction as ``ATOMIC_REQUESTS`` makes every request) and then one indexed SELECT. The gate
is measured against it on the same server in the same run. It exists only under
bench.settings_gate, never in the product's URLconf.
"""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs.models import Service
from releasegate.urls import handler404, handler500  # noqa: F401  (the product's error pages)
from releasegate.urls import urlpatterns as product_urlpatterns


class TrivialApi(APIView):
    def get(self, request: Request) -> Response:
        # One indexed SELECT: the unique index on the service's slug.
        row = Service.objects.filter(slug=request.query_params.get("service", "")).values("slug", "name").first()
        return Response({"service": row})


urlpatterns = [path("bench/trivial", TrivialApi.as_view()), *product_urlpatterns]
