"""The content's rules (changelogs/content_rules.py, what the services check) and the API's
content schema (ChangelogContentSerializer, what the OpenAPI schema and the responses describe)
say the same field by field: for each of many documents, good and bad at every field, the same
normal form or the same error body, message for message. The rules over a whole object live in
the rules alone; their answers are written out below, as the API has always given them."""

import copy
import dataclasses
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework import serializers

from changelogs.content import ChangelogContentSerializer
from changelogs.content_rules import CONTENT, Errors, Invalid, Many, Record, Rule, content_validate
from core.errors import CommonError, InvalidInput, error_body
from releasegate.errors import flatten_validation_errors
from tests.factories import changelog_content

HOTFIX = {"incident_reference": "INC-1234", "emergency_category": "service_outage", "emergency_reason": "Outage."}
BUNDLE = {"changelog": "6f1c1b8e-7e3a-4f7e-9a53-0d6a4b8d0c11", "content_hash": "a" * 64}
DATA_CHANGE = {
    "description": "Add an index",
    "version": "V42__add_index",
    "digest": "sha256:" + "b" * 64,
    "rollback": "Drop the index.",
    "dry_run_evidence": "c" * 64,
    "backup_evidence": "d" * 64,
}

# Values tried in place of every field: of every JSON type, blank, too long, odd characters.
ODD: list[Any] = [
    None,
    "",
    "   ",
    " padded ",
    0,
    1,
    1.5,
    True,
    False,
    [],
    [1],
    ["x"],
    {},
    {"x": 1},
    "x" * 260,
    "x" * 10001,
    "nul\x00",
    "surrogate\ud800",
    "true",
    "no",
    "low",
    "critical",
    "https://example.com/",
    "not a url",
    "2026-01-01T10:00:00Z",
    "2026-01-01T10:00:00",
    "2026-01-01T10:00:00+02:00",
    "2026-13-01T10:00:00Z",
    "2026-01-01",
    "6f1c1b8e-7e3a-4f7e-9a53-0d6a4b8d0c11",
    "sha256:" + "e" * 64,
    "f" * 64,
    "0123456",
    "service_outage",
    -1,
    2**130,
    0.0,
    "0.0",
    "ON",
    "T",
    "2026-01-01T10:00:00.123456Z",
    "2026-01-01 10:00",
    "{6f1c1b8e-7e3a-4f7e-9a53-0d6a4b8d0c11}",
    "urn:uuid:6f1c1b8e-7e3a-4f7e-9a53-0d6a4b8d0c11",
    " 6f1c1b8e7e3a4f7e9a530d6a4b8d0c11 ",
    "ftp://example.com/x",
    "https://" + "a" * 490 + ".com",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
    "3000-01-01T00:00:00Z",
]


# REST framework deep-copies every declared field of the nested content serializer each time one
# is made (two thirds of this module's time when it made one per document); the agreement test
# asks about thousands of documents, so it asks one instance, with its results cleared between
# them: the fields it validates with are the same.
_SERIALIZER = ChangelogContentSerializer(data={})


def _serializer_says(kind: str, content: Any) -> dict[str, Any]:
    serializer = _SERIALIZER
    serializer.initial_data = content
    for result in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(result, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the REST framework's notice about its list error format
        if serializer.is_valid():
            return {"normal": json.loads(json.dumps(serializer.data))}
    return _refused(flatten_validation_errors(serializers.ValidationError(serializer.errors).detail))


def _refused(fields: Errors) -> dict[str, Any]:
    first = next(iter(fields.values()), [{"message": "The input is not valid."}])[0]["message"]
    return {"error": error_body(CommonError.INVALID_INPUT, f"The input is not valid: {first}", fields)}


def _fields_only(rule: Rule) -> Rule:
    if isinstance(rule, Record):
        return dataclasses.replace(
            rule, fields={name: _fields_only(inner) for name, inner in rule.fields.items()}, rules=None
        )
    if isinstance(rule, Many):
        return dataclasses.replace(rule, of=_fields_only(rule.of))
    return rule


FIELDS_ONLY = _fields_only(CONTENT)
assert isinstance(FIELDS_ONLY, Record)


def _fields_say(kind: str, content: Any) -> dict[str, Any]:
    try:
        return {"normal": FIELDS_ONLY.check_record(copy.deepcopy(content), "", {"kind": kind})}
    except Invalid as invalid:
        return _refused(invalid.errors)


def _rules_say(kind: str, content: Any) -> dict[str, Any]:
    try:
        return {"normal": content_validate(kind=kind, content=copy.deepcopy(content))}
    except InvalidInput as error:
        return {"error": error_body(error.code, error.message, error.fields)}


def _paths(rule: Rule, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(rule, Record):
        for name, inner in rule.fields.items():
            yield (*path, name)
            yield from _paths(inner, (*path, name))
    elif isinstance(rule, Many):
        yield (*path, 0)
        yield from _paths(rule.of, (*path, 0))


def _base(kind: str) -> dict[str, Any]:
    content = changelog_content(
        data_changes=[DATA_CHANGE], no_data_changes=False, bundles=[BUNDLE] if kind == "train" else []
    )
    if kind == "hotfix":
        content["hotfix"] = HOTFIX
    return content


def _replaced(content: Any, path: tuple[str | int, ...], value: Any) -> Any | None:
    """``content`` with the value at ``path`` replaced (removed when ``value`` is ``...``);
    None when something on the way is not there."""
    changed = copy.deepcopy(content)
    holder = changed
    for step in path[:-1]:
        try:
            holder = holder[step]
        except (KeyError, IndexError, TypeError):
            return None
        if not isinstance(holder, dict | list):
            return None
    last = path[-1]
    if isinstance(holder, dict) and isinstance(last, str):
        if value is ...:
            holder.pop(last, None)
        else:
            holder[last] = value
        return changed
    if isinstance(holder, list) and isinstance(last, int) and last < len(holder):
        if value is ...:
            del holder[last]
        else:
            holder[last] = value
        return changed
    return None


def _documents() -> Iterator[tuple[str, Any]]:
    for kind in ("train", "hotfix"):
        base = _base(kind)
        yield kind, base
        yield kind, "not an object"
        yield kind, {**base, "unknown": 1}
        for path in _paths(CONTENT):
            for value in [..., *ODD]:
                document = _replaced(base, path, value)
                if document is not None:
                    yield kind, document


def test_the_rules_and_the_schema_agree_on_every_field_and_value() -> None:
    disagreements = []
    count = 0
    for kind, document in _documents():
        count += 1
        said, checked = _serializer_says(kind, document), _fields_say(kind, document)
        if said != checked:
            disagreements.append((kind, document, said, checked))
    assert count > 2000
    assert not disagreements, f"{len(disagreements)} of {count} differ; the first: {disagreements[0]}"


def _answer(path: str, code: str, message: str) -> dict[str, Any]:
    return {path: [{"code": code, "message": message}]}


WINDOW_BACKWARDS = {"start": "2026-01-02T10:00:00Z", "end": "2026-01-01T10:00:00Z"}


@pytest.mark.parametrize(
    ("overrides", "kind", "fields"),
    [
        (
            {"deploy_steps": []},
            "train",
            _answer("deploy_steps", "deploy_steps_missing", "List at least one deploy step."),
        ),
        (
            {"no_data_changes": True, "data_changes": [DATA_CHANGE]},
            "train",
            _answer(
                "no_data_changes",
                "data_changes_contradictory",
                "Data changes are listed, so 'no_data_changes' cannot be true.",
            ),
        ),
        (
            {"no_data_changes": False},
            "train",
            _answer(
                "data_changes",
                "data_changes_undeclared",
                "List the data changes, or declare none with 'no_data_changes': true.",
            ),
        ),
        (
            {"hotfix": HOTFIX},
            "train",
            _answer("hotfix", "hotfix_details_not_allowed", "Only hotfixes carry hotfix details."),
        ),
        (
            {},
            "hotfix",
            _answer(
                "hotfix", "hotfix_details_missing", "A hotfix needs an incident reference and an emergency reason."
            ),
        ),
        (
            {"hotfix": HOTFIX, "bundles": [BUNDLE]},
            "hotfix",
            _answer("bundles", "bundles_not_allowed", "Only a train bundles changes."),
        ),
        (
            {"planned_window": WINDOW_BACKWARDS},
            "train",
            _answer("planned_window.end", "window_ends_before_start", "The window must end after it starts."),
        ),
        (
            {"security_impact": {"declared": True, "description": "  "}},
            "train",
            _answer("security_impact.description", "security_impact_undescribed", "Describe the security impact."),
        ),
        (
            {"planned_window": WINDOW_BACKWARDS, "reason": "", "deploy_steps": []},
            "train",
            {
                **_answer("reason", "blank", "This field may not be blank."),
                **_answer("planned_window.end", "window_ends_before_start", "The window must end after it starts."),
            },
        ),
        (
            {"deploy_steps": [], "no_data_changes": False, "hotfix": HOTFIX},
            "train",
            {
                **_answer("deploy_steps", "deploy_steps_missing", "List at least one deploy step."),
                **_answer(
                    "data_changes",
                    "data_changes_undeclared",
                    "List the data changes, or declare none with 'no_data_changes': true.",
                ),
                **_answer("hotfix", "hotfix_details_not_allowed", "Only hotfixes carry hotfix details."),
            },
        ),
    ],
)
def test_the_rules_over_a_whole_object_answer_as_the_api_always_did(
    overrides: dict[str, Any], kind: str, fields: Errors
) -> None:
    """A rule over a whole object is judged once its fields are all valid, beside the other
    fields' errors; the rules over the whole content only once everything else is valid."""
    assert _rules_say(kind, changelog_content(**overrides)) == _refused(fields)


def test_a_normal_form_checks_again_to_itself() -> None:
    for kind in ("train", "hotfix"):
        normal = content_validate(kind=kind, content=_base(kind))
        assert content_validate(kind=kind, content=normal) == normal
