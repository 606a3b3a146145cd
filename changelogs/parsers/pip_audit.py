"""pip-audit's JSON report (``pip-audit -f json``).

Shape: ``{"dependencies": [{"name", "version", "vulns": [{"id", "fix_versions", "aliases",
"description"}]} | {"name", "skip_reason"}], "fixes": [...]}``. A dependency with a
``skip_reason`` was not audited at all (not found on the index, service unreachable, local
package...). pip-audit still exits 0 and prints "No known vulnerabilities found" when every
dependency was skipped, as in the real sample; so the verdict is ``fail`` when any
vulnerability is reported **or any dependency was skipped**, ``pass`` otherwise.
"""

from changelogs.parsers._common import (
    as_list,
    as_object,
    as_str,
    index_path,
    key_path,
    load_json_report,
    opt_list,
    opt_str,
    str_list,
)
from changelogs.parsers.summaries import (
    AuditedDependency,
    DependencyAuditSummary,
    DependencyVulnerability,
)

PARSER_VERSION = "pip_audit/1"
FORMAT = "pip_audit"


def parse(data: bytes) -> DependencyAuditSummary:
    document = load_json_report(data, what="pip-audit JSON report", member="dependencies", member_type=list)
    dependencies = []
    for i, raw in enumerate(as_list(document["dependencies"], "$.dependencies")):
        path = index_path("$.dependencies", i)
        dependency = as_object(raw, path)
        vulnerabilities = []
        for j, raw_vulnerability in enumerate(opt_list(dependency, "vulns", path)):
            vulnerability_path = index_path(key_path(path, "vulns"), j)
            vulnerability = as_object(raw_vulnerability, vulnerability_path)
            vulnerabilities.append(
                DependencyVulnerability(
                    id=as_str(vulnerability.get("id"), key_path(vulnerability_path, "id")),
                    aliases=str_list(vulnerability.get("aliases", []), key_path(vulnerability_path, "aliases")),
                    fix_versions=str_list(
                        vulnerability.get("fix_versions", []),
                        key_path(vulnerability_path, "fix_versions"),
                    ),
                )
            )
        dependencies.append(
            AuditedDependency(
                name=as_str(dependency.get("name"), key_path(path, "name")),
                version=opt_str(dependency, "version", path),
                skip_reason=opt_str(dependency, "skip_reason", path),
                vulnerabilities=tuple(vulnerabilities),
            )
        )
    notes = []
    skipped = sum(1 for dependency in dependencies if dependency.skip_reason is not None)
    if skipped:
        notes.append(f"{skipped} of {len(dependencies)} dependencies were not audited (skip_reason).")
    if not dependencies:
        notes.append("The report lists no dependencies.")
    return DependencyAuditSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool="pip-audit",
        dependencies=tuple(dependencies),
        notes=tuple(notes),
    )
