"""The evidence-pack PDFs, read back with poppler's pdftotext, pdfinfo and pdffonts as an auditor's
tools would read them."""

import re
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from io import BytesIO
from pathlib import Path

import pytest

from packs.render.data import ChangelogPack, ChangeRow
from packs.render.pdf import layout as pdf_module
from packs.render.pdf.changelog import render_changelog_pdf
from packs.render.pdf.population import render_population_pdf
from tests.packs.support import (
    CONTENT,
    EXCEPTIONS,
    change_rows,
    deployment_rows,
    make_changelog_pack,
    make_population_pack,
    pdftotext,
    poppler,
    with_findings,
)


@pytest.fixture(scope="module")
def pack() -> ChangelogPack:
    return make_changelog_pack()[0]


@pytest.fixture(scope="module")
def rendered(pack: ChangelogPack) -> bytes:
    return render_changelog_pdf(pack)


@pytest.fixture
def text(rendered: bytes, tmp_path: Path) -> str:
    return pdftotext(rendered, tmp_path)


def _pdfinfo(pdf: bytes, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "info.pdf"
    path.write_bytes(pdf)
    out = subprocess.run([poppler("pdfinfo"), str(path)], capture_output=True, text=True, check=True).stdout
    return {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}


def _words(text: str) -> set[str]:
    return set(text.split())


def _hashes(pack: ChangelogPack) -> list[str]:
    """Every SHA-256 the pack carries, as the hex the PDF must show whole."""
    digests = [CONTENT["artifact"]["digest"], *(c["digest"] for c in CONTENT["data_changes"])]
    return [
        pack.content_hash,
        *digests,
        *(e.sha256 for e in pack.evidence),
        *(a.content_hash for a in pack.approvals),
        *(d.artifact_digest for d in pack.decisions),
        *(d.artifact_digest for d in pack.deployments),
        *(e.leaf_hash for e in pack.audit_events),
        *(h for e in pack.audit_events for h in e.proof),
    ]


# --- The changelog pack ------------------------------------------------------------------


def test_pdftotext_shows_every_field_of_the_cover(pack: ChangelogPack, text: str) -> None:
    for value in [
        pack.organisation,
        pack.service,
        pack.domain,
        pack.kind,
        pack.status,
        pack.changelog_id,
        pack.content_hash,
        "payments-api 2.14.0",
        CONTENT["artifact"]["digest"],
        CONTENT["artifact"]["source_revision"],
        "2026-11-28T06:00:00Z to 2026-11-28T07:00:00Z",
        f"{pack.created_at} by {pack.created_by}",
        f"{pack.submitted_at} by {pack.submitted_by}",
        pack.generated_at,
        "tree size 23",
    ]:
        assert value in text, value


def test_pdftotext_shows_every_field_of_the_content(text: str) -> None:
    flat = " ".join(text.split())
    for value in [
        CONTENT["reason"],
        CONTENT["scope"],
        CONTENT["expected_outcome"],
        CONTENT["rollback_plan"],
        "none declared",
        "alice, erin@bank.example",
        "ticket: https://jira.bank.example/browse/PAY-4711",
        "pull request: https://git.bank.example/payments/api/pull/982",
        *(step["description"] for step in CONTENT["deploy_steps"]),
        *(step["command"] for step in CONTENT["deploy_steps"] if step["command"]),
        *(change[key] for change in CONTENT["data_changes"] for key in ("description", "version", "rollback")),
    ]:
        assert value in flat, value


def test_it_shows_hotfix_details_and_any_content_field_it_does_not_know(pack: ChangelogPack, tmp_path: Path) -> None:
    content = {
        **CONTENT,
        "hotfix": {
            "incident_reference": "INC-4242",
            "emergency_category": "service_outage",
            "emergency_reason": "Card payments failing for 3 % of customers.",
        },
        "security_impact": {"declared": True, "description": "Touches the card tokenisation path."},
        "no_data_changes": True,
        "data_changes": [],
        "future_field": {"b": 2, "a": 1},
    }
    text = " ".join(pdftotext(render_changelog_pdf(replace(pack, kind="hotfix", content=content)), tmp_path).split())
    assert "INC-4242" in text
    assert "Card payments failing for 3 % of customers." in text
    assert "declared: Touches the card tokenisation path." in text
    assert "None: the changelog declares that the change touches no data." in text
    assert 'future_field {"a":1,"b":2}' in text


def test_every_evidence_file_shows_with_its_sha256_summary_and_verdict(pack: ChangelogPack, text: str) -> None:
    words = _words(text)
    for item in pack.evidence:
        assert item.file_name in text
        assert item.sha256 in words
        assert item.archive_name in words
        assert f"{item.kind}, {item.format}" in text
        assert f"{item.size:,} bytes" in text
        assert f"{item.uploaded_at} by {item.uploaded_by}" in text
        for line in item.summary_lines:
            assert line in text


def test_every_sha256_reaches_pdftotext_as_one_word(pack: ChangelogPack, text: str) -> None:
    words = _words(text)
    hex_words = {w.removeprefix("sha256:") for w in words}
    missing = [h for h in _hashes(pack) if h.removeprefix("sha256:") not in hex_words]
    assert missing == []
    # and nothing that looks like a broken hash: every run of 20+ hex digits is a whole hash
    broken = [w for w in re.findall(r"\b[0-9a-f]{20,}\b", text) if len(w) not in {40, 64}]
    assert broken == []


@pytest.mark.requirement("PR-06", "PR-18")
def test_every_approval_shows_who_with_what_authority_when_and_the_hash_they_signed(
    pack: ChangelogPack, text: str
) -> None:
    flat = " ".join(text.split())
    for approval in pack.approvals:
        assert f"Approval {pack.approvals.index(approval) + 1}: {approval.decision} by {approval.approver}" in flat
        assert ", ".join(approval.authorities) in flat
        assert approval.decided_at in flat
        assert approval.expires_at in flat
        assert approval.content_hash in _words(text)
        assert approval.reason in flat
    assert flat.count("Retrospective no") == 2
    assert flat.count("1 (the content hash of this revision)") == 2


def test_an_approval_of_another_content_hash_says_so(pack: ChangelogPack, tmp_path: Path) -> None:
    stale = replace(
        pack.approvals[0], content_hash="0" * 64, retrospective=True, counts=False, not_counted_because="stale"
    )
    text = " ".join(pdftotext(render_changelog_pdf(replace(pack, approvals=[stale])), tmp_path).split())
    assert "NOT the content hash of this revision" in text
    assert "Retrospective yes" in text
    assert "Counts no: stale" in text


def test_every_gate_decision_and_deployment_is_listed(pack: ChangelogPack, text: str) -> None:
    flat = " ".join(text.split())
    for decision in pack.decisions:
        assert decision.id in flat
        assert decision.evaluated_at in flat
        assert f"Reasons: {', '.join(decision.reasons) or 'none'}" in flat
    for deployment in pack.deployments:
        assert deployment.id in flat
        assert deployment.reported_at in flat
        assert deployment.pipeline_run_url in flat
    assert "UNAUTHORISED" in flat
    assert "rolled_back" in flat


def test_readiness_findings_at_submission_are_listed(pack: ChangelogPack, text: str, tmp_path: Path) -> None:
    assert "No findings: the evidence was complete when the changelog was submitted." in " ".join(text.split())
    found = " ".join(pdftotext(render_changelog_pdf(with_findings(pack)), tmp_path).split())
    assert "evidence_missing No security evidence was attached." in found


def test_every_audit_event_shows_with_its_leaf_index_action_leaf_hash_and_proof(
    pack: ChangelogPack, rendered: bytes, tmp_path: Path
) -> None:
    layout = pdftotext(rendered, tmp_path, layout=True)
    words = _words(layout)
    for event in pack.audit_events:
        row = rf"^\s*{event.leaf_index}\s+{event.event_id}\s+{re.escape(event.time)}\s+{re.escape(event.actor)}\s+{re.escape(event.action)}\s*$"
        assert re.search(row, layout, re.MULTILINE), row
        assert event.leaf_hash in words
        assert all(h in words for h in event.proof)
    assert pack.public_key in words
    for line in pack.checkpoint.splitlines()[:4]:
        assert line in layout


def test_the_how_to_verify_section_gives_the_commands(pack: ChangelogPack, text: str) -> None:
    flat = " ".join(text.split())
    assert "How to verify" in flat
    assert "pdfsig pack.pdf" in flat
    assert "python3 -m tlog.verifier checkpoint --key ../public-key.txt ../checkpoint.txt" in flat
    first = min(e.leaf_index for e in pack.audit_events)
    assert (
        f"python3 -m tlog.verifier inclusion --key ../public-key.txt --checkpoint ../checkpoint.txt ../proofs/{first}.json"
        in flat
    )


@pytest.mark.requirement("PR-18")
def test_the_same_pack_renders_to_identical_bytes(pack: ChangelogPack, rendered: bytes) -> None:
    assert render_changelog_pdf(pack) == rendered
    assert render_changelog_pdf(make_changelog_pack()[0]) != rendered  # another log, another key


def test_the_creation_date_is_the_packs_generated_at_and_not_the_clock(pack: ChangelogPack, tmp_path: Path) -> None:
    info = _pdfinfo(render_changelog_pdf(replace(pack, generated_at="2031-02-03T04:05:06Z")), tmp_path)
    assert info["CreationDate"] == "Mon Feb  3 04:05:06 2031 UTC"


def test_the_document_metadata_names_the_change_and_the_organisation(
    pack: ChangelogPack, rendered: bytes, tmp_path: Path
) -> None:
    info = _pdfinfo(rendered, tmp_path)
    assert info["Title"] == f"Change evidence pack: payments-api, changelog {pack.changelog_id}"
    assert info["Author"] == "Example Bank plc"
    assert info["Creator"] == "Release Gate"
    assert info["Subject"] == "train of payments-api (payments), revision 1, deployed"
    assert pack.changelog_id in info["Keywords"]


def test_every_font_is_embedded(rendered: bytes, tmp_path: Path) -> None:
    path = tmp_path / "fonts.pdf"
    path.write_bytes(rendered)
    out = subprocess.run([poppler("pdffonts"), str(path)], capture_output=True, text=True, check=True).stdout
    fonts = out.splitlines()[2:]
    assert fonts
    assert all(line.split()[-5] == "yes" for line in fonts), out  # the "emb" column


def test_every_page_is_numbered_page_n_of_m(rendered: bytes, tmp_path: Path) -> None:
    pages = int(_pdfinfo(rendered, tmp_path)["Pages"])
    text = pdftotext(rendered, tmp_path)
    assert pages > 3
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in text


# --- The population pack -------------------------------------------------------------------


def _population(tmp_path: Path, **kwargs: int) -> tuple[str, str]:
    out = BytesIO()
    render_population_pdf(make_population_pack(**kwargs), out)
    return pdftotext(out.getvalue(), tmp_path), pdftotext(out.getvalue(), tmp_path, layout=True)


def test_pdftotext_of_a_population_pack_shows_totals_exceptions_and_the_seed(tmp_path: Path) -> None:
    pack = make_population_pack()
    text, layout = _population(tmp_path)
    flat = " ".join(text.split())
    assert "Population of production changes" in flat
    assert "2026-11-01 to 2026-11-30" in flat
    for label, value in [("Changes", 40), ("Deployments", 50), ("Unauthorised deployments", 1), ("Exceptions", 3)]:
        assert re.search(rf"^\s*{label}\s+{value}\s*$", layout, re.MULTILINE), label
    for exception in EXCEPTIONS:
        assert exception.reference in flat
        assert exception.detail in flat
    assert "Unauthorised deployment" in flat
    assert "Deployed while denied" in flat
    assert f"Seed {pack.sample_seed}, sample size {pack.sample_size}." in flat
    assert all(changelog_id in flat for changelog_id in pack.sample)
    assert "The period's events in the audit log: leaves 0 to 22;" in flat
    assert pack.checkpoint.splitlines()[2] in flat  # the root hash line of the checkpoint


def test_a_population_pack_lists_every_change_and_deployment_with_its_checks(tmp_path: Path) -> None:
    text, layout = _population(tmp_path)
    words = _words(text)
    assert all(row.changelog_id in words and row.artifact_digest in words for row in change_rows(40))
    assert "40 changes listed." in text
    assert "50 deployments listed." in text
    # change 0 was deployed before approval, by its own approver, with incomplete evidence
    first = re.search(
        r"^\s*1\s+c0000000\S+\s+service-00\s+hotfix, low\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", layout, re.M
    )
    assert first is not None
    assert first.groups() == ("no", "no", "no", "yes")
    # change 9 was never deployed: approval before deployment does not apply
    tenth = re.search(r"^\s*10\s+c0000009\S+\s+service-09\s+train, low\s+\S+\s+(\S+)", layout, re.M)
    assert tenth is not None
    assert tenth.group(1) == "n/a"
    assert "UNAUTHORISED" in text


def test_a_long_population_table_breaks_across_pages_and_repeats_its_header(tmp_path: Path) -> None:
    text, _ = _population(tmp_path, changes=700, deployments=10)
    pages = text.split("\f")
    with_rows = [p for p in pages if re.search(r"c000\d{4}-5d2a", p) and "Separation" in p]
    assert len(with_rows) > 10  # 700 changes are many pages, and each repeats the header
    last = max(int(n) for n in re.findall(r"Page \d+ of (\d+)", text))
    assert f"Page {last} of {last}" in text
    assert "700 changes listed." in text


def test_population_rows_are_pulled_while_pages_are_laid_out_not_all_first(monkeypatch: pytest.MonkeyPatch) -> None:
    trace: list[str] = []
    original = pdf_module._PackCanvas.showPage

    def show_page(self: object) -> None:
        trace.append("page")
        original(self)

    def rows() -> Iterator[ChangeRow]:
        for row in change_rows(2_000):
            trace.append("row")
            yield row

    monkeypatch.setattr(pdf_module._PackCanvas, "showPage", show_page)
    render_population_pdf(replace(make_population_pack(), changes=rows()), BytesIO())
    last_row = len(trace) - 1 - trace[::-1].index("row")
    pages_before_last_row = trace[:last_row].count("page")
    assert trace.count("row") == 2_000
    assert pages_before_last_row > 20  # most pages were out before the last rows were read


@pytest.mark.requirement("PR-18")
def test_a_population_pack_renders_to_identical_bytes() -> None:
    pack = make_population_pack()
    first, second = BytesIO(), BytesIO()
    render_population_pdf(pack, first)
    render_population_pdf(replace(pack, changes=change_rows(40), deployments=deployment_rows(50)), second)
    assert first.getvalue() == second.getvalue()


def test_the_fonts_fast_path_maps_ascii_exactly_as_reportlab_does() -> None:
    from reportlab.pdfbase.pdfmetrics import getFont
    from reportlab.pdfbase.ttfonts import TTFont

    render_changelog_pdf(make_changelog_pack()[0])  # registers the fonts
    font = getFont(pdf_module.SANS)
    reference = TTFont("reference-vera", font.face.filename, asciiReadable=True)
    doc = object.__new__(type("Doc", (), {}))
    for text in ["", "sha256:0af9 ~!@#$%^&*()_+{}|:<>?", "plain ASCII", "naïve — café", "tab\there"]:
        for candidate in (font, reference):
            candidate.splitString("warm up", doc)
        assert font.splitString(text, doc) == list(reference.splitString(text, doc)), text


def test_a_population_without_audit_events_says_so(tmp_path: Path) -> None:
    out = BytesIO()
    render_population_pdf(replace(make_population_pack(), audit_first_leaf=-1, audit_last_leaf=-1), out)
    assert "no audit events in the period" in pdftotext(out.getvalue(), tmp_path)
