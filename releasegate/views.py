"""Site-wide views: health, and JSON error pages for the API."""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found, server_error

from releasegate.errors import CommonError, error_body


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(CommonError.NOT_FOUND, "No such resource."), status=404)
    return page_not_found(request, exception)


def internal_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(CommonError.SERVER_ERROR, "The server failed; nothing was changed."), status=500)
    return server_error(request)
