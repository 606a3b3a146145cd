"""Guessing an evidence file's format: by content first, by file name only as a fallback.

The file name is the uploader's claim and is used only when the content says nothing (for
instance a truncated SARIF named ``scan.sarif``: guessing ``sarif`` lets ``parse`` report the
exact JSON error instead of "unknown format"). Sniffing never expands XML: it reads the root
element's name with a plain scanner, so a hostile DTD is only ever seen by ``parse``, which
refuses it.
"""

import csv
import json
import re
from typing import Any

from changelogs.parsers._common import MAX_FILE_BYTES
from changelogs.parsers.locust import locust_side_file

_XML_SNIFF_CHARS = 64 * 1024
_ATTESTATION_YAML = re.compile(r"^schema:\s*[\"']?release-gate/security-attestation/", re.MULTILINE)
_K6_METRICS = ("http_reqs", "http_req_duration", "iterations", "checks", "vus", "data_sent")


def detect_format(data: bytes, filename: str = "") -> str | None:
    """The evidence format of ``data`` (a key of ``FORMATS``), or None when unrecognised."""
    if not data.strip():
        return None
    if len(data) > MAX_FILE_BYTES:
        return _from_filename(filename)
    try:
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        return _from_filename(filename)
    stripped = text.lstrip()
    if stripped.startswith("<"):
        found = _from_xml_root(stripped[:_XML_SNIFF_CHARS])
    elif stripped[:1] in ("{", "["):
        found = _from_json(stripped)
    else:
        found = _from_text(stripped)
    return found or _from_filename(filename)


def _xml_root_name(text: str) -> str | None:
    """The root element's local name, skipping the prolog (declaration, comments, DOCTYPE)."""
    position = 0
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if text.startswith("<?", position):
            end = text.find("?>", position)
            position = -1 if end < 0 else end + 2
        elif text.startswith("<!--", position):
            end = text.find("-->", position)
            position = -1 if end < 0 else end + 3
        elif text.startswith("<!DOCTYPE", position):
            bracket = text.find("[", position)
            close = text.find(">", position)
            if 0 <= bracket < close:
                end = text.find("]", bracket)
                close = -1 if end < 0 else text.find(">", end)
            position = -1 if close < 0 else close + 1
        elif text.startswith("<", position):
            match = re.match(r"<([A-Za-z_][\w.:-]*)", text[position : position + 256])
            return match.group(1).rsplit(":", 1)[-1] if match else None
        else:
            return None
        if position < 0:
            return None
    return None


def _from_xml_root(text: str) -> str | None:
    root = _xml_root_name(text)
    if root in ("testsuites", "testsuite"):
        return "junit"
    if root == "testResults":
        return "jmeter_jtl"  # XML JTL: parse() explains that only CSV JTL is supported
    if root == "bom" and "cyclonedx" in text[:4096].lower():
        return "cyclonedx"  # CycloneDX XML: parse() asks for the JSON form
    return None


def _from_json(text: str) -> str | None:
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(document, list):
        first = document[0] if document else None
        if isinstance(first, dict) and "num_requests" in first and "response_times" in first:
            return "locust_json"
        return None
    if not isinstance(document, dict):
        return None
    return _from_json_object(document)


def _starts_with(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _from_json_object(document: dict[str, Any]) -> str | None:
    schema = document.get("$schema")
    results = document.get("results")
    metrics = document.get("metrics")
    # Most specific markers first; the first rule that matches decides.
    rules: tuple[tuple[bool, str], ...] = (
        (
            isinstance(document.get("runs"), list)
            and ("version" in document or (isinstance(schema, str) and "sarif" in schema.lower())),
            "sarif",
        ),
        (document.get("bomFormat") == "CycloneDX", "cyclonedx"),
        (_starts_with(document.get("_type"), "https://in-toto.io/Statement"), "intoto"),
        ("payloadType" in document and "payload" in document, "intoto"),
        (_starts_with(document.get("mediaType"), "application/vnd.dev.sigstore.bundle"), "intoto"),
        (_starts_with(document.get("schema"), "release-gate/security-attestation/"), "security_attestation"),
        (isinstance(document.get("suites"), list) and isinstance(document.get("config"), dict), "playwright_json"),
        (
            document.get("reportFormat") == "CTRF"
            or (isinstance(results, dict) and isinstance(results.get("tool"), dict) and "tests" in results),
            "ctrf_json",
        ),
        (
            isinstance(metrics, dict)
            and ("root_group" in document or any(name.split("{", 1)[0] in _K6_METRICS for name in metrics)),
            "k6_summary",
        ),
        (isinstance(document.get("dependencies"), list) and isinstance(document.get("fixes"), list), "pip_audit"),
    )
    return next((fmt for matches, fmt in rules if matches), None)


def _from_text(text: str) -> str | None:
    if _ATTESTATION_YAML.search(text[:4096]):
        return "security_attestation"
    first_line = text.split("\n", 1)[0][:4096].rstrip("\r")
    try:
        header = [column.strip() for column in next(csv.reader([first_line]))]
    except (csv.Error, StopIteration):
        return None
    if "Name" in header and ("Request Count" in header or "# requests" in header):
        return "locust_csv"
    if locust_side_file(header):
        return "locust_csv"  # one of Locust's other CSV files: the parser says to upload *_stats.csv
    if "elapsed" in header and "success" in header:
        return "jmeter_jtl"
    return None


def _from_filename(filename: str) -> str | None:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if not name:
        return None
    rules: tuple[tuple[bool, str], ...] = (
        (name.endswith((".sarif", ".sarif.json")), "sarif"),
        (name.endswith((".cdx.json", ".cdx")) or name in ("bom.json", "sbom.json"), "cyclonedx"),
        (name.endswith((".intoto.json", ".intoto.jsonl", ".dsse.json", ".dsse")), "intoto"),
        (name.endswith(("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")), "locust_csv"),
        (name.endswith(".jtl"), "jmeter_jtl"),
        (
            name.endswith(".xml") and (name.startswith(("junit", "test-")) or "junit" in name),
            "junit",
        ),
        (name.endswith(".json") and "ctrf" in name, "ctrf_json"),
        (name.endswith(".json") and "playwright" in name, "playwright_json"),
        (name.endswith(".json") and "k6" in name, "k6_summary"),
        (name.endswith(".json") and "locust" in name, "locust_json"),
        (name.endswith(".json") and ("pip-audit" in name or "pip_audit" in name), "pip_audit"),
        (
            name.endswith((".json", ".yaml", ".yml")) and "attestation" in name,
            "security_attestation",
        ),
    )
    return next((fmt for matches, fmt in rules if matches), None)
