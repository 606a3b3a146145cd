"""The traceability table: requirement → feature → the tests that prove it.

Tests declare what they prove with ``@pytest.mark.requirement("PR-03")`` (several ids allowed,
on a test, a test class, or a module's ``pytestmark``). This module reads those markers from
the test files' syntax trees (no test is imported or run) and the requirements from
docs/compliance.toml, and writes docs/compliance.md:

    .venv/bin/python -m tests.compliance          # rewrite docs/compliance.md
    .venv/bin/python -m tests.compliance --check  # exit 1 if it is stale

tests/test_compliance.py fails when the committed table is not what this produces.
"""

import ast
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "docs" / "compliance.toml"
TABLE = REPO / "docs" / "compliance.md"
TESTS = REPO / "tests"
MARKER = "requirement"
REQUIREMENT_ID = re.compile(r"^PR-\d{2}$")


class TraceabilityError(ValueError):
    """A marker or a requirement the table cannot be built from; the message says where."""


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    text: str
    feature: str
    docs: tuple[str, ...]
    not_yet: str = ""
    notes: str = ""
    tests: tuple[str, ...] = field(default=())

    @property
    def status(self) -> str:
        if not self.tests:
            return "not yet"
        return "partly" if self.not_yet else "proven"


def requirements_load(path: Path = REQUIREMENTS) -> dict[str, dict[str, Any]]:
    data = tomllib.loads(path.read_text())
    for key, entry in data.items():
        if not REQUIREMENT_ID.match(key):
            raise TraceabilityError(f"{path.name}: {key!r} is not a requirement id (PR-nn)")
        missing = {"title", "text", "feature", "docs"} - set(entry)
        if missing:
            raise TraceabilityError(f"{path.name}: {key} lacks {', '.join(sorted(missing))}")
        unknown = set(entry) - {"title", "text", "feature", "docs", "not_yet", "notes"}
        if unknown:
            raise TraceabilityError(f"{path.name}: {key} has unknown key(s) {', '.join(sorted(unknown))}")
    return data


def _requirement_ids(decorators: Iterable[ast.expr], where: str) -> list[str]:
    """The ids of every ``pytest.mark.requirement(...)`` among decorators (or list items)."""
    ids: list[str] = []
    for node in decorators:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == MARKER):
            continue
        mark = node.func.value
        if not (isinstance(mark, ast.Attribute) and mark.attr == "mark"):
            continue
        if not node.args:
            raise TraceabilityError(f"{where}: requirement() names no requirement")
        for arg in node.args:
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise TraceabilityError(f"{where}: requirement() takes literal ids such as 'PR-03'")
            ids.append(arg.value)
    return ids


def _module_marks(tree: ast.Module, where: str) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            value = node.value
            items = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            return _requirement_ids(items, where)
    return []


def _tests_of(tree: ast.Module) -> Iterator[tuple[str, list[ast.expr], list[ast.expr]]]:
    """(node id suffix, the test's decorators, its class's decorators) of every test."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            yield node.name, node.decorator_list, []
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test_"):
                    yield f"{node.name}::{item.name}", item.decorator_list, node.decorator_list


def marked_tests(root: Path = TESTS) -> dict[str, list[str]]:
    """Requirement id → the node ids of the tests marked as proving it, sorted."""
    proofs: dict[str, set[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        relative = path.relative_to(root.parent).as_posix()
        if relative.startswith("tests/data/") or path.name.startswith("test_probe_"):
            continue  # data, and the throwaway probes tests/test_self_contained.py writes
        try:
            source = path.read_text()
        except FileNotFoundError:
            continue  # removed while we listed the folder
        tree = ast.parse(source, filename=relative)
        module_ids = _module_marks(tree, relative)
        for name, decorators, class_decorators in _tests_of(tree):
            node_id = f"{relative}::{name}"
            ids = module_ids + _requirement_ids(class_decorators, node_id) + _requirement_ids(decorators, node_id)
            for requirement in ids:
                if not REQUIREMENT_ID.match(requirement):
                    raise TraceabilityError(f"{node_id}: {requirement!r} is not a requirement id (PR-nn)")
                proofs.setdefault(requirement, set()).add(node_id)
    return {requirement: sorted(tests) for requirement, tests in sorted(proofs.items())}


def table_build(requirements: Mapping[str, Mapping[str, Any]], proofs: Mapping[str, list[str]]) -> list[Requirement]:
    unknown = sorted(set(proofs) - set(requirements))
    if unknown:
        where = "; ".join(f"{requirement}: {proofs[requirement][0]}" for requirement in unknown)
        raise TraceabilityError(f"tests name requirements docs/compliance.toml does not list: {where}")
    rows = []
    for key in sorted(requirements):
        entry = requirements[key]
        row = Requirement(
            id=key,
            title=entry["title"],
            text=entry["text"],
            feature=entry["feature"],
            docs=tuple(entry["docs"]),
            not_yet=entry.get("not_yet", ""),
            notes=entry.get("notes", ""),
            tests=tuple(proofs.get(key, ())),
        )
        if not row.tests and not row.not_yet:
            raise TraceabilityError(f"{key} has no test and no 'not_yet' reason in docs/compliance.toml")
        rows.append(row)
    return rows


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(rows: list[Requirement]) -> str:
    proven = sum(row.status == "proven" for row in rows)
    partly = sum(row.status == "partly" for row in rows)
    lines = [
        "# Compliance: requirement → feature → test",
        "",
        "<!-- Generated by `python -m tests.compliance` from the tests' `requirement` markers and",
        "docs/compliance.toml. Do not edit: tests/test_compliance.py fails when this file is stale. -->",
        "",
        "Each requirement a bank's regulators ask Release Gate to meet (DORA and its RTS on ICT risk",
        "management, PCI DSS 4, NIST SP 800-53, FFIEC, MAS TRM, IIA GTAG), how the product meets it, the",
        "documentation of that feature, and the tests that prove it. A test names what it proves with",
        '`@pytest.mark.requirement("PR-nn")`; every test named here runs in both CI passes, and a',
        "requirement-marked test that is skipped on PostgreSQL fails the run instead (tests/requirement_skips.py).",
        "Where the tests do not prove all of a requirement yet, the row says what is missing and why.",
        "",
        f"Of {len(rows)} requirements: {proven} proven, {partly} partly proven, {len(rows) - proven - partly} not yet.",
        "",
        "| requirement | status | tests | not yet |",
        "|---|---|---|---|",
    ]
    for row in rows:
        anchor = row.id.lower()
        lines.append(
            f"| [{row.id}](#{anchor}) {row.title} | {row.status} | {len(row.tests)} | "
            f"{_one_line(row.not_yet) if row.not_yet else ''} |"
        )
    for row in rows:
        lines += ["", f"## {row.id}", "", f"**{row.title}.** {_one_line(row.text)}", ""]
        lines += [f"*How Release Gate meets it:* {_one_line(row.feature)}", ""]
        docs = ", ".join(f"[{doc}]({doc.removeprefix('docs/')})" for doc in row.docs)
        lines += [f"*Documented in:* {docs}", ""]
        if row.tests:
            lines += ["*Proven by:*", ""]
            lines += [f"- `{test}`" for test in row.tests]
            lines.append("")
        if row.not_yet:
            lines += [f"*Not yet:* {_one_line(row.not_yet)}", ""]
        if row.notes:
            lines += [_one_line(row.notes), ""]
        lines.pop()
    return "\n".join(lines) + "\n"


def generate() -> str:
    return render(table_build(requirements_load(), marked_tests()))


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if TABLE.read_text() != text:
            print("docs/compliance.md is stale: run python -m tests.compliance", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    TABLE.write_text(text)
    print(f"wrote {TABLE.relative_to(REPO)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
