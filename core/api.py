"""Small pieces every API module shares: the error schema for OpenAPI, and input helpers."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from core.errors import UNKNOWN_FIELD, CommonError, InvalidInput, PayloadTooLarge
from core.times import OUT_OF_RANGE, TIME_RANGE, in_range

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "code": serializers.CharField(help_text="Stable error code; see docs/api-errors.md."),
        "message": serializers.CharField(help_text="A sentence for humans."),
        "fields": serializers.DictField(
            child=serializers.ListField(
                child=inline_serializer(
                    name="FieldError",
                    fields={"code": serializers.CharField(), "message": serializers.CharField()},
                )
            ),
            help_text="Per field path (e.g. artifact.digest), the problems found there.",
        ),
    },
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input.",
        401: "No or bad credentials.",
        403: "Visible, but the caller may not do this.",
        404: "Does not exist, or not visible to the caller.",
        409: "The object's state does not allow this.",
        413: "Too large.",
        429: "Too many failed attempts; `Retry-After` says when to try again.",
    }
    return {status: OpenApiResponse(ErrorSerializer, description=descriptions[status]) for status in statuses}


def checked(serializer: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """``data`` checked by ``serializer`` (400 with its field errors when it does not pass): the
    validated data."""
    given = serializer(data=data)
    given.is_valid(raise_exception=True)
    return dict(given.validated_data)


class StrictInput(serializers.Serializer[Any]):
    """An input that refuses fields it does not know, at every level where it is used.

    A pipeline that sends ``content_hash`` to an endpoint that would ignore it believes it was
    checked; a typo in a field name must fail loudly instead. The OpenAPI schema says so too
    (``additionalProperties: false``, see ``StrictAutoSchema``)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [ErrorDetail("This field is not known.", code=UNKNOWN_FIELD)] for name in unknown}
                )
        return super().to_internal_value(data)


class _InRange(serializers.Field):  # type: ignore[type-arg]  # a mixin for the two fields below
    """A date or time refused (``out_of_range``) outside 1970 to 2999 (core.times says why),
    where it would otherwise end as a 500; its help text in the schema says the range."""

    default_error_messages = {OUT_OF_RANGE: TIME_RANGE}

    def __init__(self, **kwargs: Any) -> None:
        help_text = kwargs.get("help_text")
        super().__init__(**{**kwargs, "help_text": f"{help_text} {TIME_RANGE}" if help_text else TIME_RANGE})

    def to_internal_value(self, value: Any) -> Any:
        given = super().to_internal_value(value)
        if not in_range(given):
            self.fail(OUT_OF_RANGE)
        return given


class InstantField(_InRange, serializers.DateTimeField):
    """A point in time given to the API."""

    def enforce_timezone(self, value: datetime) -> datetime:
        try:
            return super().enforce_timezone(value)
        except serializers.ValidationError as error:
            if error.get_codes() != ["overflow"]:  # year 1 or 9999 with an offset, out of range in UTC
                raise
            self.fail(OUT_OF_RANGE)


class DayField(_InRange, serializers.DateField):
    """A calendar day given to the API."""


class StrictAutoSchema(AutoSchema):
    """drf-spectacular's schema, stating that strict inputs take no other properties."""

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)  # type: ignore[no-untyped-call]  # drf-spectacular is untyped
        if direction == "request" and isinstance(serializer, StrictInput) and schema.get("type") == "object":
            schema["additionalProperties"] = False
        return schema


def cursor_page(name: str, item: serializers.BaseSerializer[Any]) -> serializers.Serializer[Any]:
    """The OpenAPI shape of one page of a cursor-paginated list."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last one."),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
        },
    )


class NewestFirstCursorPagination(CursorPagination):
    page_size = 50
    max_page_size = 500
    page_size_query_param = "limit"
    ordering = ("-created_at", "-id")


class QueryFilters(serializers.Serializer[Any]):
    """A list endpoint's query parameters. REST framework reads a query string like a form, where
    an empty value (``?status=``) of an optional field means "not given"; for a filter that
    would silently widen the answer, so an empty value is refused, as the schema says (minLength 1)."""

    def to_internal_value(self, data: Any) -> Any:
        names: list[str] = [str(name) for name in self.fields]
        blank = sorted(name for name in names if hasattr(data, "get") and data.get(name) == "")
        if blank:
            raise serializers.ValidationError(
                {name: [ErrorDetail("This may not be empty.", code="blank")] for name in blank}
            )
        return super().to_internal_value(data)


class DeliveryApi(APIView):
    """An endpoint another system calls with no account here (GitHub, PagerDuty): the signature
    over the raw body (``delivery_body``), which the view checks, authenticates it."""

    authentication_classes = []
    permission_classes = [AllowAny]


def delivery_body(request: Request) -> bytes:
    """The raw body of a webhook delivery, the bytes its signature covers (413 when larger
    than Django lets a request be)."""
    try:
        body: bytes = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge(CommonError.PAYLOAD_TOO_LARGE, "The delivery is too large.") from None
    return body


def delivery_json(body: bytes) -> Any:
    """A webhook delivery's JSON (400 ``malformed_request`` when it is not JSON)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(CommonError.MALFORMED_REQUEST, "The delivery is not JSON.") from None
