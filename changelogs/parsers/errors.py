"""The one error every parser raises, with a stable code the API can hand back as is.

A file that does not parse is refused whole: parsers never return a partial summary. The
``code`` is stable (clients and docs/api-errors.md key on it), the ``message`` is a sentence for
a human, and ``location`` points into the file where that helps ("line 12, column 4" for text
and XML, a JSON path such as ``$.runs[0].results[3].level`` for JSON and YAML).
"""

from enum import StrEnum


class ParseErrorCode(StrEnum):
    EMPTY_FILE = "empty_file"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    MALFORMED_XML = "malformed_xml"
    MALFORMED_JSON = "malformed_json"
    MALFORMED_YAML = "malformed_yaml"
    MALFORMED_CSV = "malformed_csv"
    FORBIDDEN_XML_CONSTRUCT = "forbidden_xml_construct"
    FORBIDDEN_YAML_CONSTRUCT = "forbidden_yaml_construct"
    TOO_DEEP = "too_deep"
    # A JSON escape of half a UTF-16 pair ("\\ud800" alone): it decodes to no character, and
    # no database, hash or report can hold it.
    LONE_SURROGATE = "lone_surrogate"
    TOO_MANY_ITEMS = "too_many_items"
    # The bytes are fine but they are another kind of document (JSON where XML was expected,
    # a CycloneDX BOM uploaded as SARIF, a Locust history CSV instead of the stats CSV).
    WRONG_FORMAT = "wrong_format"
    # The right kind of document, but a field has the wrong type or an impossible value.
    INVALID_STRUCTURE = "invalid_structure"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED_VERSION = "unsupported_version"
    INVALID_ATTESTATION = "invalid_attestation"


class EvidenceParseError(Exception):
    """An evidence file that could not be turned into a summary."""

    def __init__(self, code: ParseErrorCode, message: str, *, location: str | None = None) -> None:
        super().__init__(f"{message} ({location})" if location else message)
        self.code: str = str(code)
        self.message = message
        self.location = location

    def __repr__(self) -> str:
        return f"EvidenceParseError(code={self.code!r}, message={self.message!r}, location={self.location!r})"
