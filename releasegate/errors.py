"""Errors that a request can end in, and the one handler that renders them.

Every error response has the shape ``{"code", "message", "fields"}``. Codes are ``StrEnum``
members declared next to the code that raises them and listed in docs/api-errors.md. This
module imports nothing from the apps, so every app may raise these.
"""

from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

FieldErrors = Mapping[str, list[dict[str, str]]]


class CommonError(StrEnum):
    INVALID_INPUT = "invalid_input"
    MALFORMED_REQUEST = "malformed_request"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    NOT_ACCEPTABLE = "not_acceptable"
    THROTTLED = "throttled"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    SERVER_ERROR = "server_error"
    # Requests no endpoint can read (issue 13): nested too deep, too many form fields or files.
    TOO_DEEP = "too_deep"
    LONE_SURROGATE = "lone_surrogate"
    TOO_MANY_FIELDS = "too_many_fields"
    TOO_MANY_FILES = "too_many_files"
    # Infrastructure faults (issue 19): the request changed nothing.
    STORAGE_FULL = "storage_full"


class ApplicationError(Exception):
    """A request that could not be served, with a stable code. Raised by services."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: StrEnum | str, message: str, *, fields: FieldErrors | None = None) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.fields = dict(fields or {})


class InvalidInput(ApplicationError):
    status_code = status.HTTP_400_BAD_REQUEST


class PermissionDenied(ApplicationError):
    """The caller may see the object but not do this to it."""

    status_code = status.HTTP_403_FORBIDDEN


class NotFound(ApplicationError):
    """The object does not exist or the caller may not see it: the two look the same."""

    status_code = status.HTTP_404_NOT_FOUND


class Conflict(ApplicationError):
    """The object is in a state that does not allow this."""

    status_code = status.HTTP_409_CONFLICT


class TooManyAttempts(ApplicationError):
    """Too many failed attempts: come back after ``retry_after``."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(CommonError.THROTTLED, message)
        self.retry_after = retry_after


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class InsufficientStorage(ApplicationError):
    """The store has no room for what the request would keep: nothing was recorded."""

    status_code = status.HTTP_507_INSUFFICIENT_STORAGE


class IntegrityFailure(ApplicationError):
    """Stored data failed its own integrity check: serve nothing rather than something wrong."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR


def field_error(code: StrEnum | str, message: str) -> dict[str, str]:
    return {"code": str(code), "message": message}


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


def error_body(code: str, message: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    # A plain str, not the StrEnum member: every renderer (the schema's YAML one too) can write it.
    return {"code": str(code), "message": message, "fields": dict(fields or {})}


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
