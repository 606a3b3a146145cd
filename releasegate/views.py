"""Site-wide views: health, the schema, and JSON error pages for the API."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import bad_request, page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from releasegate.errors import CommonError, error_body


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any /api/ URL that nothing else matched, a path parameter that does not fit its
    converter (``/api/v1/changelogs/not-a-uuid/``) included, and in DEBUG too: never HTML."""
    return JsonResponse(error_body(CommonError.NOT_FOUND, "No such resource."), status=404)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return api_not_found(request)
    return page_not_found(request, exception)


def refused(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 (a request it would not read), as JSON under /api/."""
    if _is_api(request):
        return JsonResponse(error_body(CommonError.MALFORMED_REQUEST, "The request could not be read."), status=400)
    return bad_request(request, exception)


def internal_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(CommonError.SERVER_ERROR, "The server failed; nothing was changed."), status=500)
    return server_error(request)


class SchemaView(SpectacularAPIView):
    """The OpenAPI document. It is YAML or JSON as asked, but its errors (401 for a bad token,
    405 for a POST) have the API's one JSON error shape, like every other endpoint's."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = "application/json"
        return super().finalize_response(request, response, *args, **kwargs)
