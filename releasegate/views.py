"""Site-wide views: the front page, the documentation, health, the schema, and JSON error
pages for the API."""

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import bad_request, page_not_found, server_error
from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import actor_of
from core.errors import CommonError, error_body
from releasegate.home import waiting_for

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
_DOC_NAME = re.compile(r"[a-z][a-z0-9-]*\.md")


def home(request: HttpRequest) -> HttpResponse:
    """The front page, for people: what Release Gate is and, once logged in, what waits for
    you: changes to sign, your changes in progress, retrospectives owed, unauthorised
    deployments and recent gate decisions."""
    user = request.user
    context = {
        **admin.site.each_context(request),
        "title": "Release Gate",
        "waiting": waiting_for(user=actor_of(request)) if user.is_authenticated else None,
        "docs": sorted(path.name for path in DOCS_DIR.glob("*.md")),
    }
    return TemplateResponse(request, "releasegate/home.html", context)


def doc(request: HttpRequest, name: str = "") -> HttpResponse:
    """The repository's docs/ pages as they are (Markdown, as text), so that the front page's
    links work wherever the service runs."""
    if not name:
        pages = sorted(path.name for path in DOCS_DIR.glob("*.md"))
        return HttpResponse("".join(f"{page}\n" for page in pages), content_type="text/plain; charset=utf-8")
    if not _DOC_NAME.fullmatch(name) or not (DOCS_DIR / name).is_file():
        raise Http404("No such page.")
    return HttpResponse((DOCS_DIR / name).read_bytes(), content_type="text/markdown; charset=utf-8")


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # whatever the method and cookies, the answer is this 404, never the CSRF page
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


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal, as JSON under /api/ (the API's own views check CSRF through REST
    framework for sessions; this covers anything else)."""
    if _is_api(request):
        return JsonResponse(error_body(CommonError.PERMISSION_DENIED, f"CSRF check failed: {reason}"), status=403)
    return django_csrf_failure(request, reason)


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
