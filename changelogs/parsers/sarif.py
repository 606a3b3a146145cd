"""SARIF 2.1.0 logs from code scanners (bandit, ruff, semgrep, CodeQL, Trivy...).

A log may hold several runs, each from one tool; ``tools`` lists each run's
``tool.driver`` name and version (``version``, else ``semanticVersion``).

Severity, chosen to match what GitHub code scanning shows:

1. ``security-severity`` (a CVSS-like score, string or number, 0-10) from the result's
   ``properties``, else from its rule's ``properties``. The rule is
   ``tool.driver.rules[ruleIndex]`` (or ``tool.extensions[n].rules[...]`` when
   ``result.rule.toolComponent.index`` says so), else the rule whose ``id`` equals ``ruleId``
   in the driver or any extension. Score >= 9.0 critical, >= 7.0 high, >= 4.0 medium,
   > 0 low, 0 note.
2. Without a score, the SARIF ``level``: ``error`` -> high, ``warning`` -> medium,
   ``note`` -> low, ``none`` -> note. A missing level takes the rule's
   ``defaultConfiguration.level``, else ``warning`` (the SARIF default). Results whose ``kind``
   is not ``fail`` (pass, informational, review...) have level ``none``.

``findings_by_severity`` counts only open findings: results that are not suppressed and whose
``baselineState`` is not ``absent`` (``new``, ``unchanged``, ``updated`` or none count;
``absent`` means fixed since the baseline and is reported as ``fixed``). A result is suppressed
when it has suppressions and all of them are accepted (``underReview`` or ``rejected`` ones do
not suppress). Verdict: ``fail`` on any open critical or high finding, or when a run says it
did not complete (``invocations[].executionSuccessful: false``, or no ``results`` at all, which
SARIF reserves for a tool that did not run); else ``pass``. The policy decides for real.

A scan that ran but skipped something still reads as complete in its results, so what the tool
says about itself is read too: ``invocations[].toolExecutionNotifications`` of level ``error``
or ``warning`` (SARIF's default level; a file it could not parse, a rule that crashed) and
``toolConfigurationNotifications`` of level ``error`` (a rule set it could not load) are listed
in ``scan_incomplete`` with a note; readiness turns them into a ``scan_incomplete`` finding, so
the approver and the gate see that something was not scanned. Notes (level ``note``/``none``)
are informational and ignored.

Note: GitHub applies ``security-severity`` only to rules tagged ``security``; this parser
applies it whenever present (all real samples with a score carry the tag).
"""

import math
import re
from typing import Any, get_args

from changelogs.parsers._common import (
    JsonObject,
    as_bool,
    as_int,
    as_list,
    as_object,
    as_str,
    check_count,
    clean_message,
    cvss_rating,
    fail,
    index_path,
    invalid,
    key_path,
    load_json,
    one_of,
    opt_list,
    opt_object,
    opt_str,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import (
    SarifLevel,
    SecurityResult,
    SecuritySummary,
    Severity,
    ToolInfo,
)

PARSER_VERSION = "sarif/2"
FORMAT = "sarif"

_LEVELS: dict[str, SarifLevel] = {level: level for level in get_args(SarifLevel)}
_LEVEL_SEVERITY: dict[SarifLevel, Severity] = {
    "error": "high",
    "warning": "medium",
    "note": "low",
    "none": "note",
}
_BASELINE_STATES = {"new", "unchanged", "updated", "absent"}
# Which of a run's notifications about itself mean that it did not scan everything.
_INCOMPLETE_LEVELS = {"toolExecutionNotifications": {"error", "warning"}, "toolConfigurationNotifications": {"error"}}
MAX_INCOMPLETE_LISTED = 50
_PLACEHOLDER = re.compile(r"\{(\d+)\}")


def severity_for(score: float | None, level: SarifLevel) -> Severity:
    if score is None:
        return _LEVEL_SEVERITY[level]
    return cvss_rating(score) or "note"


def parse(data: bytes) -> SecuritySummary:
    document = load_json(data, what="SARIF")
    if not isinstance(document, dict) or "runs" not in document:
        fail(ParseErrorCode.WRONG_FORMAT, "This is not a SARIF log: it has no top-level 'runs'.", "$")
    version = document.get("version")
    if version != "2.1.0":
        fail(
            ParseErrorCode.UNSUPPORTED_VERSION,
            f"Only SARIF 2.1.0 is supported; this log says version {version!r}.",
            "$.version",
        )
    tools: list[ToolInfo] = []
    results: list[SecurityResult] = []
    notes: list[str] = []
    incomplete: list[str] = []
    execution_successful = True
    for r, raw_run in enumerate(as_list(document["runs"], "$.runs")):
        run_path = index_path("$.runs", r)
        run = as_object(raw_run, run_path)
        tool_path = key_path(run_path, "tool")
        tool = as_object(run.get("tool"), tool_path)
        driver_path = key_path(tool_path, "driver")
        driver = as_object(tool.get("driver"), driver_path)
        tool_name = as_str(driver.get("name"), key_path(driver_path, "name"))
        tools.append(
            ToolInfo(
                name=tool_name,
                version=opt_str(driver, "version", driver_path) or opt_str(driver, "semanticVersion", driver_path),
            )
        )
        rules = _Rules(tool, tool_path, driver, driver_path)
        for i, raw_invocation in enumerate(opt_list(run, "invocations", run_path)):
            invocation_path = index_path(key_path(run_path, "invocations"), i)
            invocation = as_object(raw_invocation, invocation_path)
            succeeded = invocation.get("executionSuccessful")
            if succeeded is not None and not as_bool(succeeded, key_path(invocation_path, "executionSuccessful")):
                execution_successful = False
                notes.append(f"{tool_name} reports that its run did not complete successfully.")
            skipped = _incomplete(invocation, invocation_path, tool_name)
            if skipped:
                notes.append(
                    f"{tool_name} reports that it did not scan everything ({len(skipped)} notification(s)); "
                    f"first: {skipped[0]}"
                )
                incomplete.extend(skipped[: max(0, MAX_INCOMPLETE_LISTED - len(incomplete))])
        if run.get("results") is None:
            execution_successful = False
            notes.append(f"The {tool_name} run has no results array: SARIF uses that for a tool that did not run.")
            continue
        for i, raw_result in enumerate(as_list(run["results"], key_path(run_path, "results"))):
            result_path = index_path(key_path(run_path, "results"), i)
            results.append(_result(raw_result, result_path, rules, tool_name))
            check_count(len(results), "results")
    return SecuritySummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tools=tuple(tools),
        results=tuple(results),
        execution_successful=execution_successful,
        scan_incomplete=tuple(incomplete),
        notes=tuple(notes),
    )


def _incomplete(invocation: JsonObject, path: str, tool_name: str) -> list[str]:
    """The invocation's notifications that say something was not scanned, as sentences."""
    found: list[str] = []
    for key, levels in _INCOMPLETE_LEVELS.items():
        for i, raw in enumerate(opt_list(invocation, key, path)):
            notification_path = index_path(key_path(path, key), i)
            notification = as_object(raw, notification_path)
            level = opt_str(notification, "level", notification_path) or "warning"
            if level not in levels:
                continue
            message_path = key_path(notification_path, "message")
            message = opt_object(notification, "message", notification_path)
            text = clean_message(opt_str(message, "text", message_path) or opt_str(message, "markdown", message_path))
            text = " ".join(text.split()) if text else None  # one line each: they are listed
            descriptor_path = key_path(notification_path, "descriptor")
            descriptor = opt_str(opt_object(notification, "descriptor", notification_path), "id", descriptor_path)
            where = _location(notification, notification_path)
            found.append(
                f"{tool_name} {level}"
                + (f" {descriptor}" if descriptor else "")
                + (f" in {where}" if where else "")
                + f": {text or 'no message'}"
            )
    return found


_Rule = tuple[JsonObject, str]  # a reportingDescriptor and its JSON path


class _Rules:
    """The rules of one run: the driver's and each extension's, by index and by id."""

    def __init__(self, tool: JsonObject, tool_path: str, driver: JsonObject, driver_path: str) -> None:
        self.components: list[tuple[list[_Rule], str]] = [self._rules_of(driver, driver_path)]
        self.extensions: list[tuple[list[_Rule], str]] = []
        for i, raw_extension in enumerate(opt_list(tool, "extensions", tool_path)):
            extension_path = index_path(key_path(tool_path, "extensions"), i)
            self.extensions.append(self._rules_of(as_object(raw_extension, extension_path), extension_path))
        self.by_id: dict[str, _Rule] = {}
        for component_rules, _ in self.components + self.extensions:
            for rule in component_rules:
                rule_id = rule[0].get("id")
                if isinstance(rule_id, str):
                    self.by_id.setdefault(rule_id, rule)

    @staticmethod
    def _rules_of(component: JsonObject, path: str) -> tuple[list[_Rule], str]:
        rules_path = key_path(path, "rules")
        rules = [
            (as_object(rule, index_path(rules_path, i)), index_path(rules_path, i))
            for i, rule in enumerate(opt_list(component, "rules", path))
        ]
        return rules, rules_path

    def find(self, result: JsonObject, path: str, rule_id: str | None) -> _Rule | None:
        reference = opt_object(result, "rule", path)
        reference_path = key_path(path, "rule")
        index_at = key_path(path, "ruleIndex")
        raw_index = result.get("ruleIndex")
        if raw_index is None and reference.get("index") is not None:
            raw_index, index_at = reference.get("index"), key_path(reference_path, "index")
        if raw_index is not None and raw_index != -1:
            index = as_int(raw_index, index_at)
            rules, rules_path = self.components[0]
            component = opt_object(reference, "toolComponent", reference_path)
            if component.get("index") is not None:
                component_at = key_path(key_path(reference_path, "toolComponent"), "index")
                component_index = as_int(component.get("index"), component_at)
                if component_index >= len(self.extensions):
                    invalid(
                        component_at,
                        f"{component_at} points past the {len(self.extensions)} tool extensions.",
                    )
                rules, rules_path = self.extensions[component_index]
            if index >= len(rules):
                invalid(index_at, f"{index_at} is {index} but {rules_path} has {len(rules)} rules.")
            return rules[index]
        if rule_id is None:
            return None
        # Hierarchical rule ids ("CA2101/1") name a rule and a sub-case of it.
        return self.by_id.get(rule_id) or self.by_id.get(rule_id.split("/", 1)[0])


def _score(properties: JsonObject, path: str) -> float | None:
    raw = properties.get("security-severity")
    if raw is None:
        return None
    score_path = key_path(path, "security-severity")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        invalid(score_path, f"{score_path} must be a number or a numeric string.")
    try:
        score = float(raw)
    except ValueError:
        invalid(score_path, f"{score_path} is {raw!r}, not a number.")
    if not math.isfinite(score) or not 0 <= score <= 10:
        invalid(score_path, f"{score_path} must be between 0 and 10, not {raw!r}.")
    return score


def _level(value: Any, path: str) -> SarifLevel:
    return _LEVELS[one_of(as_str(value, path), _LEVELS, path)]


def _message(result: JsonObject, path: str, rule: JsonObject) -> str:
    message_path = key_path(path, "message")
    message = opt_object(result, "message", path)
    text = opt_str(message, "text", message_path) or opt_str(message, "markdown", message_path)
    if text is None and isinstance(message.get("id"), str):
        strings = rule.get("messageStrings")
        entry = strings.get(message["id"]) if isinstance(strings, dict) else None
        text = entry.get("text") if isinstance(entry, dict) and isinstance(entry.get("text"), str) else None
    if text is None:
        return ""
    arguments = message.get("arguments")
    if isinstance(arguments, list):
        values = [str(argument) for argument in arguments]
        text = _PLACEHOLDER.sub(
            lambda m: values[int(m.group(1))] if int(m.group(1)) < len(values) else m.group(0), text
        )
    return clean_message(text) or ""


def _location(result: JsonObject, path: str) -> str | None:
    locations = opt_list(result, "locations", path)
    if not locations:
        return None
    first_path = index_path(key_path(path, "locations"), 0)
    first = as_object(locations[0], first_path)
    physical = opt_object(first, "physicalLocation", first_path)
    physical_path = key_path(first_path, "physicalLocation")
    uri = opt_str(
        opt_object(physical, "artifactLocation", physical_path),
        "uri",
        key_path(physical_path, "artifactLocation"),
    )
    region = opt_object(physical, "region", physical_path)
    line = region.get("startLine")
    if uri is not None:
        if isinstance(line, int) and not isinstance(line, bool):
            return f"{uri}:{line}"
        return uri
    for raw_logical in opt_list(first, "logicalLocations", first_path):
        if isinstance(raw_logical, dict):
            name = raw_logical.get("fullyQualifiedName") or raw_logical.get("name")
            if isinstance(name, str):
                return name
    return None


def _suppressed(result: JsonObject, path: str) -> bool:
    suppressions_path = key_path(path, "suppressions")
    suppressions = opt_list(result, "suppressions", path)
    if not suppressions:
        return False
    for i, raw in enumerate(suppressions):
        suppression_path = index_path(suppressions_path, i)
        status = opt_str(as_object(raw, suppression_path), "status", suppression_path)
        if status not in (None, "accepted"):
            return False
    return True


def _result(raw: Any, path: str, rules: _Rules, tool_name: str) -> SecurityResult:
    result = as_object(raw, path)
    rule_id = opt_str(result, "ruleId", path)
    if rule_id is None:
        rule_id = opt_str(opt_object(result, "rule", path), "id", key_path(path, "rule"))
    found = rules.find(result, path, rule_id)
    rule, rule_path = found if found is not None else ({}, "")
    if rule_id is None and isinstance(rule.get("id"), str):
        rule_id = rule["id"]

    kind = opt_str(result, "kind", path) or "fail"
    level: SarifLevel
    if result.get("level") is not None:
        level = _level(result["level"], key_path(path, "level"))
    elif kind != "fail":
        level = "none"
    else:
        default = opt_object(rule, "defaultConfiguration", rule_path)
        default_path = key_path(key_path(rule_path, "defaultConfiguration"), "level")
        level = _level(default["level"], default_path) if default.get("level") is not None else "warning"
    if kind != "fail":
        level = "none"

    score = _score(opt_object(result, "properties", path), key_path(path, "properties"))
    if score is None and found is not None:
        score = _score(opt_object(rule, "properties", rule_path), key_path(rule_path, "properties"))
    if kind != "fail":
        score = None  # a pass, review or informational result is not a finding, whatever its rule

    baseline_state = opt_str(result, "baselineState", path)
    if baseline_state is not None:
        one_of(baseline_state, sorted(_BASELINE_STATES), key_path(path, "baselineState"))
    return SecurityResult(
        tool=tool_name,
        rule_id=rule_id,
        level=level,
        severity=severity_for(score, level),
        security_severity=score,
        message=_message(result, path, rule),
        location=_location(result, path),
        baseline_state=baseline_state,
        suppressed=_suppressed(result, path),
    )
