"""Any other evidence file, kept as it is: a pentest report PDF, a change ticket export...

Nothing is parsed; the summary records the size and SHA-256 so the evidence pack can show
them. An empty file is still refused, and the general size limit applies. Verdict: ``info``.
"""

import hashlib

from changelogs.parsers._common import MAX_FILE_BYTES, fail
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import DocumentSummary

PARSER_VERSION = "document/1"
FORMAT = "document"


def parse(data: bytes) -> DocumentSummary:
    if not data:
        fail(ParseErrorCode.EMPTY_FILE, "The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        fail(
            ParseErrorCode.TOO_LARGE,
            f"The file is {len(data)} bytes; evidence files are limited to {MAX_FILE_BYTES} bytes.",
        )
    return DocumentSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
