"""The rules of a changelog's content, as data plus one routine that checks a document, without
the REST framework, so that the services that write content check it themselves.

``ChangelogContentSerializer`` (changelogs/content.py) describes the same content for the API's
schema and renders it; ``tests/changelogs/test_content_rules.py`` holds the two equal, error for
error and normal form for normal form. The errors are those the REST framework gives for the same
input (codes, messages, field paths such as ``deploy_steps.0.description``), so the API answers
as it did when the serializer checked the content.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator, URLValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from changelogs.models import DIGEST_PATTERN, ChangelogKind, RiskTier
from core.errors import UNKNOWN_FIELD, CommonError, InvalidInput, field_error
from core.times import OUT_OF_RANGE, TIME_RANGE, in_range


class ContentError(StrEnum):
    INVALID_DIGEST = "invalid_digest"
    INVALID_SOURCE_REVISION = "invalid_source_revision"
    DEPLOY_STEPS_MISSING = "deploy_steps_missing"
    DATA_CHANGES_UNDECLARED = "data_changes_undeclared"
    DATA_CHANGES_CONTRADICTORY = "data_changes_contradictory"
    HOTFIX_DETAILS_MISSING = "hotfix_details_missing"
    HOTFIX_DETAILS_NOT_ALLOWED = "hotfix_details_not_allowed"
    WINDOW_ENDS_BEFORE_START = "window_ends_before_start"
    SECURITY_IMPACT_UNDESCRIBED = "security_impact_undescribed"
    INVALID_EVIDENCE_HASH = "invalid_evidence_hash"
    BUNDLES_NOT_ALLOWED = "bundles_not_allowed"


digest_validator = RegexValidator(
    DIGEST_PATTERN,
    "A digest is 'sha256:' followed by 64 lowercase hex digits.",
    code=ContentError.INVALID_DIGEST,
)
source_revision_validator = RegexValidator(
    r"^[0-9a-f]{7,64}$",
    "A source revision is a commit id: 7 to 64 lowercase hex digits.",
    code=ContentError.INVALID_SOURCE_REVISION,
)
evidence_hash_validator = RegexValidator(
    r"^[0-9a-f]{64}$",
    "An evidence file is named by its SHA-256: 64 lowercase hex digits.",
    code=ContentError.INVALID_EVIDENCE_HASH,
)

# Why a change could not wait for the normal approvals (PR-08): counted and sampled by category.
EMERGENCY_CATEGORIES = {
    "service_outage": "A production service is down or degraded for customers",
    "security_incident": "An exploited or actively threatened vulnerability",
    "data_integrity": "Data is being corrupted or lost",
    "regulatory_deadline": "A legal or regulatory obligation falls due before a normal change could",
    "financial_loss": "Money is being lost or misdirected (failed or duplicated payments)",
    "third_party": "A supplier's failure or forced change (certificate, API, provider outage)",
}

Errors = dict[str, list[dict[str, str]]]  # field path -> [{"code", "message"}], in the order found


class _Missing:
    def __str__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
NO_DEFAULT: Any = _Missing()


class Invalid(Exception):
    """The errors found in a value (path -> errors); ``content_validate`` turns them into the
    400 the callers see."""

    def __init__(self, errors: Errors) -> None:
        self.errors = errors


def _at(path: str, code: str, message: str) -> Invalid:
    return Invalid({path: [field_error(code, message)]})


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else (prefix or name)


def _merge(into: Errors, more: Errors) -> None:
    for path, errors in more.items():
        into.setdefault(path, []).extend(errors)


def _django_errors(error: DjangoValidationError, path: str) -> Errors:
    return {
        path: [
            field_error(item.code or "invalid", str(item.message % item.params if item.params else item.message))
            for item in error.error_list
        ]
    }


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One field: whether it must be given, its default, whether null is allowed."""

    required: bool = True
    default: Any = NO_DEFAULT
    allow_null: bool = False

    def check(self, value: Any, path: str) -> Any:
        """The normal (JSON) form of ``value``, or ``Invalid``; ``MISSING`` when left out and
        without a default (the field is then left out too)."""
        if value is MISSING:
            if self.required:
                raise _at(path, "required", "This field is required.")
            if self.default is NO_DEFAULT:
                return MISSING
            return self.normal(self.default() if callable(self.default) else self.default)
        if value is None:
            if not self.allow_null:
                raise _at(path, "null", "This field may not be null.")
            return None
        return self.normal(self.parse(value, path))

    def parse(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def normal(self, value: Any) -> Any:
        return value


@dataclass(frozen=True, kw_only=True)
class Text(Rule):
    max_length: int
    allow_blank: bool = False
    validators: Sequence[Callable[[Any], None]] = ()
    url: bool = False

    def check(self, value: Any, path: str) -> Any:
        # As the REST framework does: blank is judged before anything else, after trimming.
        if value == "" or (value is not MISSING and str(value).strip() == ""):
            if not self.allow_blank:
                raise _at(path, "blank", "This field may not be blank.")
            return ""
        return super().check(value, path)

    def parse(self, value: Any, path: str) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _at(path, "invalid", "Enter a valid URL." if self.url else "Not a valid string.")
        text = str(value).strip()
        errors: Errors = {}
        for validator in self.validators:
            try:
                validator(text)
            except DjangoValidationError as error:
                _merge(errors, _django_errors(error, path))
        if len(text) > self.max_length:
            _merge(
                errors,
                _at(path, "max_length", f"Ensure this field has no more than {self.max_length} characters.").errors,
            )
        if "\x00" in text:
            _merge(errors, _at(path, "null_characters_not_allowed", "Null characters are not allowed.").errors)
        surrogate = next((ord(ch) for ch in text if 0xD800 <= ord(ch) <= 0xDFFF), None)
        if surrogate is not None:
            message = f"Surrogate characters are not allowed: U+{surrogate:X}."
            _merge(errors, _at(path, "surrogate_characters_not_allowed", message).errors)
        if self.url:
            try:
                URLValidator(message="Enter a valid URL.")(text)
            except DjangoValidationError as error:
                _merge(errors, _django_errors(error, path))
        if errors:
            raise Invalid(errors)
        return text


_DATETIME_FORMATS = "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]"


def _in_zone(value: datetime, path: str) -> datetime:
    zone: tzinfo = timezone.get_current_timezone()
    if timezone.is_aware(value):
        try:
            return _in_range(value.astimezone(zone), path)
        except OverflowError:
            raise _at(path, OUT_OF_RANGE, TIME_RANGE) from None
    aware = timezone.make_aware(value, zone)
    exists = aware.astimezone(UTC) == aware
    if not exists or aware.replace(fold=not aware.fold).utcoffset() != aware.utcoffset():
        raise _at(path, "make_aware", f'Invalid datetime for the timezone "{zone}".')
    return _in_range(aware, path)


def _in_range(value: datetime, path: str) -> datetime:
    if not in_range(value):
        raise _at(path, OUT_OF_RANGE, TIME_RANGE)
    return value


@dataclass(frozen=True, kw_only=True)
class When(Rule):
    """A date and time (ISO 8601); its normal form is in the current time zone, UTC as ``Z``."""

    def parse(self, value: Any, path: str) -> datetime:
        if isinstance(value, date) and not isinstance(value, datetime):
            raise _at(path, "date", "Expected a datetime but got a date.")
        if isinstance(value, datetime):
            return _in_zone(value, path)
        try:
            parsed = parse_datetime(value)
        except (ValueError, TypeError):
            parsed = None
        if parsed is None:
            message = f"Datetime has wrong format. Use one of these formats instead: {_DATETIME_FORMATS}."
            raise _at(path, "invalid", message)
        return _in_zone(parsed, path)

    def normal(self, value: Any) -> str:
        text = _in_zone(value, "").isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text


_TRUE = {"t", "y", "yes", "true", "on", "1", 1}
_FALSE = {"f", "n", "no", "false", "off", "0", 0}


@dataclass(frozen=True, kw_only=True)
class Flag(Rule):
    def parse(self, value: Any, path: str) -> bool:
        lowered = value.lower() if isinstance(value, str) else value
        try:
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        except TypeError:  # unhashable: a list or an object
            pass
        raise _at(path, "invalid", "Must be a valid boolean.")


@dataclass(frozen=True, kw_only=True)
class Choice(Rule):
    choices: Sequence[str]

    def parse(self, value: Any, path: str) -> str:
        if str(value) not in self.choices:
            raise _at(path, "invalid_choice", f'"{value}" is not a valid choice.')
        return str(value)


@dataclass(frozen=True, kw_only=True)
class Uuid(Rule):
    def parse(self, value: Any, path: str) -> uuid.UUID:
        if isinstance(value, uuid.UUID):
            return value
        try:
            if isinstance(value, int):
                return uuid.UUID(int=value)
            if isinstance(value, str):
                return uuid.UUID(hex=value)
        except ValueError:
            pass
        raise _at(path, "invalid", "Must be a valid UUID.")

    def normal(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True, kw_only=True)
class Record(Rule):
    """An object with known fields only, each checked; then ``rules`` over the whole, which
    see the normal form and return the errors of their own (path -> [(code, message)])."""

    fields: Mapping[str, Rule]
    rules: Callable[[dict[str, Any], Mapping[str, Any]], Errors] | None = None

    def check_record(self, value: Any, path: str, context: Mapping[str, Any]) -> Any:
        if value is MISSING or value is None:
            return self.check(value, path)
        if not isinstance(value, Mapping):
            raise _at(path, "invalid", f"Invalid data. Expected a dictionary, but got {type(value).__name__}.")
        unknown = sorted(str(name) for name in set(value) - set(self.fields))
        if unknown:
            raise Invalid(
                {_join(path, name): [field_error(UNKNOWN_FIELD, "This field is not known.")] for name in unknown}
            )
        normal: dict[str, Any] = {}
        errors: Errors = {}
        for name, rule in self.fields.items():
            try:
                checked = _check(rule, value.get(name, MISSING), _join(path, name), context)
            except Invalid as invalid:
                _merge(errors, invalid.errors)
            else:
                if checked is not MISSING:
                    normal[name] = checked
        if errors:
            raise Invalid(errors)
        if self.rules is not None:
            found = self.rules(normal, context)
            if found:
                raise Invalid({_join(path, name): found[name] for name in found})
        return normal


@dataclass(frozen=True, kw_only=True)
class Many(Rule):
    """A list of ``of``. ``records`` lists (of objects) judge their length before their items,
    lists of plain values after, as the REST framework does."""

    of: Rule
    max_length: int
    allow_empty: bool = True

    def check_many(self, value: Any, path: str, context: Mapping[str, Any]) -> Any:
        if value is MISSING or value is None:
            return self.check(value, path)
        if not isinstance(value, list):
            raise _at(path, "not_a_list", f'Expected a list of items but got type "{type(value).__name__}".')
        if not self.allow_empty and not value:
            raise _at(path, "empty", "This list may not be empty.")
        records = isinstance(self.of, Record)
        too_long = _at(path, "max_length", f"Ensure this field has no more than {self.max_length} elements.")
        if records and len(value) > self.max_length:
            raise too_long
        normal: list[Any] = []
        errors: Errors = {}
        for index, item in enumerate(value):
            try:
                normal.append(_check(self.of, item, _join(path, str(index)), context))
            except Invalid as invalid:
                _merge(errors, invalid.errors)
        if errors:
            raise Invalid(errors)
        if not records and len(value) > self.max_length:
            raise too_long
        return normal


def _check(rule: Rule, value: Any, path: str, context: Mapping[str, Any]) -> Any:
    if isinstance(rule, Record):
        return rule.check_record(value, path, context)
    if isinstance(rule, Many):
        return rule.check_many(value, path, context)
    return rule.check(value, path)


def _error(code: str, message: str) -> list[dict[str, str]]:
    return [field_error(code, message)]


def _window(window: dict[str, Any], context: Mapping[str, Any]) -> Errors:
    if parse_datetime(window["end"]) <= parse_datetime(window["start"]):  # type: ignore[operator]  # normal form: both parse
        return {"end": _error(ContentError.WINDOW_ENDS_BEFORE_START, "The window must end after it starts.")}
    return {}


def _security_impact(impact: dict[str, Any], context: Mapping[str, Any]) -> Errors:
    if impact["declared"] and not impact["description"].strip():
        return {"description": _error(ContentError.SECURITY_IMPACT_UNDESCRIBED, "Describe the security impact.")}
    return {}


def _whole(content: dict[str, Any], context: Mapping[str, Any]) -> Errors:
    errors: Errors = {}

    def add(name: str, code: ContentError, message: str) -> None:
        errors.setdefault(name, []).append(field_error(code, message))

    if not content["deploy_steps"]:
        add("deploy_steps", ContentError.DEPLOY_STEPS_MISSING, "List at least one deploy step.")
    if content["data_changes"] and content["no_data_changes"]:
        add(
            "no_data_changes",
            ContentError.DATA_CHANGES_CONTRADICTORY,
            "Data changes are listed, so 'no_data_changes' cannot be true.",
        )
    if not content["data_changes"] and not content["no_data_changes"]:
        add(
            "data_changes",
            ContentError.DATA_CHANGES_UNDECLARED,
            "List the data changes, or declare none with 'no_data_changes': true.",
        )
    kind = context["kind"]
    if kind == ChangelogKind.HOTFIX and not content.get("hotfix"):
        add(
            "hotfix",
            ContentError.HOTFIX_DETAILS_MISSING,
            "A hotfix needs an incident reference and an emergency reason.",
        )
    if kind == ChangelogKind.HOTFIX and content.get("bundles"):
        add("bundles", ContentError.BUNDLES_NOT_ALLOWED, "Only a train bundles changes.")
    if kind == ChangelogKind.TRAIN and content.get("hotfix"):
        add("hotfix", ContentError.HOTFIX_DETAILS_NOT_ALLOWED, "Only hotfixes carry hotfix details.")
    return errors


CONTENT = Record(
    fields={
        "artifact": Record(
            fields={
                "name": Text(max_length=200),
                "version": Text(max_length=100),
                "digest": Text(max_length=71, validators=[digest_validator]),
                "source_revision": Text(max_length=64, validators=[source_revision_validator]),
                "links": Many(
                    of=Record(fields={"title": Text(max_length=100), "url": Text(max_length=500, url=True)}),
                    max_length=20,
                    required=False,
                    default=list,
                ),
            }
        ),
        "deploy_steps": Many(
            of=Record(
                fields={
                    "description": Text(max_length=2000),
                    "command": Text(max_length=2000, required=False, allow_blank=True, default=""),
                }
            ),
            max_length=100,
        ),
        "data_changes": Many(
            of=Record(
                fields={
                    "description": Text(max_length=2000),
                    "version": Text(max_length=200),
                    "digest": Text(max_length=71, validators=[digest_validator]),
                    "rollback": Text(max_length=2000),
                    "dry_run_evidence": Text(max_length=64, validators=[evidence_hash_validator]),
                    "backup_evidence": Text(max_length=64, validators=[evidence_hash_validator]),
                }
            ),
            max_length=100,
            required=False,
            default=list,
        ),
        "no_data_changes": Flag(required=False, default=False),
        "rollback_plan": Text(max_length=10000),
        "reason": Text(max_length=10000),
        "scope": Text(max_length=10000),
        "expected_outcome": Text(max_length=10000),
        "planned_window": Record(fields={"start": When(), "end": When()}, rules=_window),
        "risk_tier": Choice(choices=RiskTier.values),
        "security_impact": Record(
            fields={
                "declared": Flag(),
                "description": Text(max_length=5000, required=False, allow_blank=True, default=""),
            },
            rules=_security_impact,
        ),
        "hotfix": Record(
            fields={
                "incident_reference": Text(max_length=100),
                "emergency_category": Choice(choices=list(EMERGENCY_CATEGORIES)),
                "emergency_reason": Text(max_length=5000),
            },
            required=False,
            allow_null=True,
            default=None,
        ),
        "bundles": Many(
            of=Record(
                fields={
                    "changelog": Uuid(),
                    "content_hash": Text(max_length=64, validators=[evidence_hash_validator]),
                }
            ),
            max_length=100,
            required=False,
            default=list,
        ),
        "commit_authors": Many(of=Text(max_length=254), max_length=200, required=False, default=list),
    },
    rules=_whole,
)

CONTENT_FIELDS = tuple(CONTENT.fields)


def content_validate(*, kind: str, content: Any) -> dict[str, Any]:
    """Check a whole content document and return its normal form (JSON: times as ISO 8601
    strings). Raises ``InvalidInput`` (400 ``invalid_input``) naming every field found wrong,
    as the API always answered."""
    try:
        normal: dict[str, Any] = CONTENT.check_record(content, "", {"kind": kind})
    except Invalid as invalid:
        first = next(iter(invalid.errors.values()), [{"message": "The input is not valid."}])[0]["message"]
        raise InvalidInput(
            CommonError.INVALID_INPUT, f"The input is not valid: {first}", fields=invalid.errors
        ) from None
    return normal
