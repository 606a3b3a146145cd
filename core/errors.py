"""Errors a request can end in, as plain Python: what services raise.

Every error response has the shape ``{"code", "message", "fields"}``. Codes are ``StrEnum``
members declared next to the code that raises them and listed in docs/api-errors.md. This
module imports neither Django nor REST framework: services raise these without depending on
the web layer, and the REST framework adapter (``releasegate.errors``) renders them.
"""

from collections.abc import Iterable, Mapping
from datetime import timedelta
from enum import StrEnum
from http import HTTPStatus
from typing import Any, Self

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
    # A decision that carries authority reached its service without a fresh step-up (core.actors).
    STEP_UP_REQUIRED = "step_up_required"


class ApplicationError(Exception):
    """A request that could not be served, with a stable code. Raised by services."""

    status_code: int = HTTPStatus.BAD_REQUEST

    def __init__(self, code: StrEnum | str, message: str, *, fields: FieldErrors | None = None) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.fields = dict(fields or {})

    @classmethod
    def on_field(cls, field: str, code: StrEnum | str, message: str) -> Self:
        """The error, with the same code and message on one input field."""
        return cls(code, message, fields={field: [field_error(code, message)]})


class InvalidInput(ApplicationError):
    status_code = HTTPStatus.BAD_REQUEST


class NotAuthenticated(ApplicationError):
    status_code = HTTPStatus.UNAUTHORIZED


class PermissionDenied(ApplicationError):
    """The caller may see the object but not do this to it."""

    status_code = HTTPStatus.FORBIDDEN


class NotFound(ApplicationError):
    """The object does not exist or the caller may not see it: the two look the same."""

    status_code = HTTPStatus.NOT_FOUND


class Conflict(ApplicationError):
    """The object is in a state that does not allow this."""

    status_code = HTTPStatus.CONFLICT


class TooManyAttempts(ApplicationError):
    """Too many failed attempts: come back after ``retry_after``."""

    status_code = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, message: str, *, retry_after: timedelta) -> None:
        super().__init__(CommonError.THROTTLED, message)
        self.retry_after = retry_after


class PayloadTooLarge(ApplicationError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class InsufficientStorage(ApplicationError):
    """The store has no room for what the request would keep: nothing was recorded."""

    status_code = HTTPStatus.INSUFFICIENT_STORAGE


class IntegrityFailure(ApplicationError):
    """Stored data failed its own integrity check: serve nothing rather than something wrong."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR


def field_error(code: StrEnum | str, message: str) -> dict[str, str]:
    return {"code": str(code), "message": message}


def error_body(code: str, message: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    # A plain str, not the StrEnum member: every renderer (the schema's YAML one too) can write it.
    return {"code": str(code), "message": message, "fields": dict(fields or {})}


UNKNOWN_FIELD = "unknown_field"


def reject_unknown_fields(data: Any, allowed: Iterable[str]) -> None:
    """Typos in a pipeline's JSON should fail loudly instead of being ignored. Here, beside the
    errors, so that services can refuse what their callers did not filter."""
    if not isinstance(data, Mapping):
        raise InvalidInput(CommonError.INVALID_INPUT, "The request body must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput(
            CommonError.INVALID_INPUT,
            f"Unknown field(s): {', '.join(unknown)}.",
            fields={name: [field_error(UNKNOWN_FIELD, "This field is not known.")] for name in unknown},
        )
