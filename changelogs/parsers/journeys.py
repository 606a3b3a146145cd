"""Journey ids: how a test says which critical customer journey it covers.

A journey id is an upper-case prefix and a number, ``PAY-001`` (``[A-Z][A-Z0-9]{1,9}-[0-9]{1,6}``,
matched whole and case-sensitively). Tests carry them in a few deliberate places only:

* a value that lists ids (a JUnit ``journey`` property, a Playwright ``journey`` annotation, a
  CTRF or Playwright tag), read by :func:`journey_ids_in`: split on commas, semicolons and
  white space, keep the tokens that are ids (a leading ``@`` is allowed, as tags are written);
* a tag in a test's name or title, read by :func:`journey_tags_in_title`: ``[PAY-001]`` or
  ``@PAY-001``.

Free text is never searched: the real pytest sample has an xfail reason "known defect PAY-123"
and a ``journey`` property with the value ``login``; neither is a journey id.
"""

import re

from changelogs.parsers._common import JsonObject, as_object, as_str, index_path, key_path, opt_list, opt_str

JOURNEY_ID_PATTERN = r"[A-Z][A-Z0-9]{1,9}-[0-9]{1,6}"

_JOURNEY_ID = re.compile(JOURNEY_ID_PATTERN)
_SEPARATORS = re.compile(r"[\s,;]+")
# A bracket group such as "[PAY-001]" or "[PAY-001, PAY-002]" anywhere in a title, or an
# "@PAY-001" tag that stands alone (not inside a word or an e-mail address).
_BRACKET_GROUP = re.compile(r"\[([^\[\]]{1,200})\]")
_AT_TAG = re.compile(r"(?<![\w@])@(" + JOURNEY_ID_PATTERN + r")(?![\w-])")


def is_journey_id(token: str) -> bool:
    return _JOURNEY_ID.fullmatch(token) is not None


def journey_ids_in(text: str | None) -> tuple[str, ...]:
    """The journey ids listed in a value such as ``"PAY-001, PAY-002"``, in order, once each."""
    if not text:
        return ()
    found: list[str] = []
    for token in _SEPARATORS.split(text):
        candidate = token[1:] if token.startswith("@") else token
        if is_journey_id(candidate) and candidate not in found:
            found.append(candidate)
    return tuple(found)


def journey_tags_in_title(title: str | None) -> tuple[str, ...]:
    """The journey ids tagged in a test title: ``[PAY-001]`` groups and ``@PAY-001`` tags."""
    if not title:
        return ()
    found: list[str] = []
    for group in _BRACKET_GROUP.finditer(title):
        for journey in journey_ids_in(group.group(1)):
            if journey not in found:
                found.append(journey)
    for tag in _AT_TAG.finditer(title):
        if tag.group(1) not in found:
            found.append(tag.group(1))
    return tuple(found)


def merge_journeys(*groups: tuple[str, ...]) -> tuple[str, ...]:
    merged: list[str] = []
    for group in groups:
        for journey in group:
            if journey not in merged:
                merged.append(journey)
    return tuple(merged)


def tag_journeys(test: JsonObject, path: str) -> tuple[str, ...]:
    """The journey ids in a JSON test's ``tags`` array (CTRF, Playwright: ``PAY-001`` or ``@PAY-001``)."""
    tags_path = key_path(path, "tags")
    return merge_journeys(
        *(journey_ids_in(as_str(tag, index_path(tags_path, i))) for i, tag in enumerate(opt_list(test, "tags", path)))
    )


def annotation_journeys(holder: JsonObject, path: str) -> tuple[str, ...]:
    """The journey ids in the ``annotations`` of type ``journey`` (or ``journeys``) of a JSON test,
    as Playwright writes them and its CTRF reporter copies them under ``extra``."""
    found: list[tuple[str, ...]] = []
    for i, raw in enumerate(opt_list(holder, "annotations", path)):
        annotation_path = index_path(key_path(path, "annotations"), i)
        annotation = as_object(raw, annotation_path)
        if (opt_str(annotation, "type", annotation_path) or "").lower() in ("journey", "journeys"):
            found.append(journey_ids_in(opt_str(annotation, "description", annotation_path)))
    return merge_journeys(*found)
