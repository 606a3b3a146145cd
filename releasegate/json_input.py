"""The API's JSON reader (REST framework's DEFAULT_PARSER_CLASSES).

A module of its own: REST framework imports the parser while it builds ``APIView``, so it must
not import anything that imports REST framework's views (``core.api`` does).
"""

import codecs
import json
from typing import IO, Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from core.errors import CommonError, InvalidInput, PayloadTooLarge

# No input of ours nests deeper than a handful of levels (a changelog: body, artifact, links,
# link); this leaves room and stops a body of 100,000 "[" long before Python's recursion limit.
MAX_JSON_DEPTH = 32


class JsonInputParser(JSONParser):
    """The API's JSON reader: a body of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 beyond,
    read no further), strict UTF-8, no NaN or Infinity, at most MAX_JSON_DEPTH levels deep
    (400 ``too_deep``) and text only: a lone surrogate escape (``"\\ud800"``) decodes to no
    character, and no database, hash or log can hold it (400 ``lone_surrogate``)."""

    def parse(self, stream: IO[bytes] | None, media_type: Any = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(CommonError.PAYLOAD_TOO_LARGE, f"The request body is larger than {limit} bytes.")
        try:
            text = codecs.decode(raw, "utf-8")
            value = json.loads(text, parse_constant=_no_constant)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as error:  # not UTF-8, not JSON, NaN/Infinity, a number beyond Python's digits
            raise InvalidInput(CommonError.MALFORMED_REQUEST, f"The body is not valid JSON: {error}") from None
        json_input_check(value)
        return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep() -> InvalidInput:
    return InvalidInput(CommonError.TOO_DEEP, f"The JSON nests more than {MAX_JSON_DEPTH} levels deep.")


def json_input_check(value: Any) -> None:
    """Refuse what a JSON parser accepts but no input of ours can hold: nesting deeper than
    MAX_JSON_DEPTH, and strings or keys with a lone surrogate."""
    # A bare scalar (null, 0, true) has nothing inside to walk; the view says it is no object.
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _too_deep()
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, str):
                if not child.isascii():
                    _require_text(child)
            elif isinstance(child, dict | list):
                stack.append((child, depth + 1))
    if isinstance(value, str) and not value.isascii():
        _require_text(value)


def _require_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInput(
            CommonError.LONE_SURROGATE,
            f"The JSON holds a lone surrogate ({value[error.start]!a}): an escape of half a character, "
            "which is not text. Send the character itself, or both halves of the pair.",
        ) from None
