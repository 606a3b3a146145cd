"""The REST framework's side of the error contract: the one handler that renders every error.

The vocabulary itself (codes, ``ApplicationError`` and its kinds) is ``core.errors``, free of
Django and REST framework; this adapter maps it, DRF's own exceptions and Django's refusals of
unreadable requests to ``{"code", "message", "fields"}`` with the right status.
"""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import (
    ApplicationError,
    CommonError,
    InvalidInput,
    PayloadTooLarge,
    TooManyAttempts,
    error_body,
    field_error,
)


def flatten_validation_errors(detail: Any, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """DRF nests errors like the input; clients want one list per field path
    (``deploy_steps.0.description``)."""
    flat: dict[str, list[dict[str, str]]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for sub_path, errors in flatten_validation_errors(value, path).items():
                flat.setdefault(sub_path, []).extend(errors)
    elif isinstance(detail, list):
        if all(isinstance(item, drf_exceptions.ErrorDetail | str) for item in detail):
            flat[prefix] = [field_error(getattr(item, "code", "invalid"), str(item)) for item in detail]
        else:
            for index, item in enumerate(detail):
                if item:
                    path = f"{prefix}.{index}" if prefix else str(index)
                    for sub_path, errors in flatten_validation_errors(item, path).items():
                        flat.setdefault(sub_path, []).extend(errors)
    else:
        flat[prefix] = [field_error(getattr(detail, "code", "invalid"), str(detail))]
    return flat


def request_refused(exc: Exception) -> ApplicationError | None:
    """Django's refusals of a request it will not read (raised while the body is parsed), as
    errors of our own shape; None for anything else."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge(
            CommonError.PAYLOAD_TOO_LARGE,
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
        )
    if isinstance(exc, TooManyFieldsSent):
        return InvalidInput(
            CommonError.TOO_MANY_FIELDS,
            f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} form fields.",
        )
    if isinstance(exc, TooManyFilesSent):
        return InvalidInput(
            CommonError.TOO_MANY_FILES, f"The request has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files."
        )
    return None


_DRF_CODES: dict[type[drf_exceptions.APIException], CommonError] = {
    drf_exceptions.ParseError: CommonError.MALFORMED_REQUEST,
    drf_exceptions.NotAuthenticated: CommonError.NOT_AUTHENTICATED,
    drf_exceptions.AuthenticationFailed: CommonError.AUTHENTICATION_FAILED,
    drf_exceptions.PermissionDenied: CommonError.PERMISSION_DENIED,
    drf_exceptions.NotFound: CommonError.NOT_FOUND,
    drf_exceptions.MethodNotAllowed: CommonError.METHOD_NOT_ALLOWED,
    drf_exceptions.NotAcceptable: CommonError.NOT_ACCEPTABLE,
    drf_exceptions.UnsupportedMediaType: CommonError.UNSUPPORTED_MEDIA_TYPE,
    drf_exceptions.Throttled: CommonError.THROTTLED,
}


def _keep() -> None:
    pass


def api_exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response | None:
    """The REST framework exception handler: every error leaves as ``{"code", "message",
    "fields"}`` and rolls back the request's transaction."""
    # A view outside the request's transaction (``atomic_request = False``) has already rolled
    # back its own; marking a transaction around it for rollback (a test's) would be wrong.
    rollback = set_rollback if getattr(context.get("view"), "atomic_request", True) else _keep
    exc = request_refused(exc) or exc
    if isinstance(exc, ApplicationError):
        rollback()
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(max(1, int(exc.retry_after.total_seconds())))
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code, headers=headers)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None
    rollback()
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = flatten_validation_errors(exc.detail)
        first = next(iter(fields.values()), [{"message": "The input is not valid."}])[0]["message"]
        body = error_body(CommonError.INVALID_INPUT, f"The input is not valid: {first}", fields)
    else:
        code = next((code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), CommonError.SERVER_ERROR)
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)
