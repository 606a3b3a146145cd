"""CycloneDX JSON: SBOMs and VEX documents (spec versions 1.2 to 1.7).

Recognised by ``bomFormat: "CycloneDX"``. The summary records the spec version, serial number
and BOM version, the number of components (nested components included; the
``metadata.component`` that the BOM describes is not counted), that component's name and
version, and for VEX/VDR content each vulnerability with its severity and analysis state.

A vulnerability's severity is the most severe of its ``ratings``: a rating's ``severity`` when
given, else one derived from its ``score`` (CVSS bands: >= 9.0 critical, >= 7.0 high, >= 4.0
medium, > 0 low, 0 none); no usable rating gives ``unknown``. Counts are given for all
vulnerabilities and for the open ones, i.e. without those whose ``analysis.state`` is
``not_affected``, ``false_positive``, ``resolved`` or ``resolved_with_pedigree``. CycloneDX XML
is refused (upload the JSON form). Verdict: ``info``.
"""

from changelogs.parsers._common import (
    JsonObject,
    as_list,
    as_number,
    as_object,
    as_str,
    check_count,
    cvss_rating,
    decode_text,
    fail,
    first_char,
    index_path,
    key_path,
    load_json_text,
    one_of,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import CYCLONEDX_SEVERITIES, CycloneDxSummary, VexVulnerability

PARSER_VERSION = "cyclonedx/1"
FORMAT = "cyclonedx"

SPEC_VERSIONS = ("1.2", "1.3", "1.4", "1.5", "1.6", "1.7")
_STATES = {
    "resolved",
    "resolved_with_pedigree",
    "exploitable",
    "in_triage",
    "false_positive",
    "not_affected",
}


def parse(data: bytes) -> CycloneDxSummary:
    text = decode_text(data)
    if first_char(text) == "<":
        fail(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            "CycloneDX XML is not supported; upload the JSON form (e.g. cyclonedx-py --of JSON).",
        )
    document = load_json_text(text, what="CycloneDX")
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "This is not a CycloneDX document: bomFormat is not 'CycloneDX'.",
            "$.bomFormat",
        )
    spec_version = as_str(document.get("specVersion"), "$.specVersion")
    if spec_version not in SPEC_VERSIONS:
        fail(
            ParseErrorCode.UNSUPPORTED_VERSION,
            f"CycloneDX {spec_version} is not supported; supported: {', '.join(SPEC_VERSIONS)}.",
            "$.specVersion",
        )
    metadata = opt_object(document, "metadata", "$")
    component = opt_object(metadata, "component", "$.metadata")
    vulnerabilities = tuple(
        _vulnerability(raw, index_path("$.vulnerabilities", i))
        for i, raw in enumerate(opt_list(document, "vulnerabilities", "$"))
    )
    return CycloneDxSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        spec_version=spec_version,
        serial_number=opt_str(document, "serialNumber", "$"),
        bom_version=opt_int(document, "version", "$"),
        component_count=_count_components(document),
        metadata_component_name=opt_str(component, "name", "$.metadata.component"),
        metadata_component_version=opt_str(component, "version", "$.metadata.component"),
        vulnerabilities=vulnerabilities,
    )


def _count_components(document: JsonObject) -> int:
    count = 0
    stack = [(document, "$")]
    while stack:
        holder, path = stack.pop()
        components_path = key_path(path, "components")
        for i, raw in enumerate(opt_list(holder, "components", path)):
            component_path = index_path(components_path, i)
            stack.append((as_object(raw, component_path), component_path))
            count += 1
            check_count(count, "components")
    return count


def _vulnerability(raw: object, path: str) -> VexVulnerability:
    vulnerability = as_object(raw, path)
    identifier = opt_str(vulnerability, "id", path) or opt_str(vulnerability, "bom-ref", path) or "(no id)"
    severities: list[str] = []
    ratings_path = key_path(path, "ratings")
    for i, raw_rating in enumerate(opt_list(vulnerability, "ratings", path)):
        rating_path = index_path(ratings_path, i)
        rating = as_object(raw_rating, rating_path)
        severity = opt_str(rating, "severity", rating_path)
        if severity is not None:
            severities.append(one_of(severity, CYCLONEDX_SEVERITIES, key_path(rating_path, "severity")))
        elif rating.get("score") is not None:
            severities.append(cvss_rating(as_number(rating["score"], key_path(rating_path, "score"))) or "none")
    severity = min(severities, key=CYCLONEDX_SEVERITIES.index) if severities else "unknown"
    analysis = opt_object(vulnerability, "analysis", path)
    state = opt_str(analysis, "state", key_path(path, "analysis"))
    if state is not None:
        one_of(state, sorted(_STATES), key_path(key_path(path, "analysis"), "state"))
    affects_path = key_path(path, "affects")
    affects = tuple(
        as_str(
            as_object(item, index_path(affects_path, i)).get("ref"),
            key_path(index_path(affects_path, i), "ref"),
        )
        for i, item in enumerate(as_list(vulnerability.get("affects", []), affects_path))
    )
    return VexVulnerability(id=identifier, severity=severity, state=state, affects=affects)
