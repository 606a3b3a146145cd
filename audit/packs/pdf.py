"""Evidence-pack PDFs, rendered with reportlab's platypus from the plain data of
``audit.packs.data``.

* Fonts: Bitstream Vera, the TrueType fonts that ship inside the reportlab package, embedded
  (subset) in every PDF, so output never depends on the fonts of the machine it runs on, and
  nothing falls back to the 14 standard fonts, which are not embedded.
* Reproducible: the same data gives the same bytes. reportlab runs in invariant mode (fixed
  document id seed, no clock); the PDF's creation date is the data's ``generated_at``.
* "Page N of M" in one pass: each page's footer shows a form XObject that the canvas draws
  once, when the document is saved and the page count is known. (A canvas that replays every
  page at the end would hold a whole 10,000-row population in memory twice.)
* Hashes are set on lines of their own, wide enough never to wrap, so ``pdftotext`` shows
  every SHA-256 as one contiguous word.
* A population streams: rows are pulled from the data's iterables 500 at a time into
  ``LongTable`` chunks, and platypus is fed from a generator, so only the chunk being laid
  out exists as flowables.

reportlab's TrueType fonts keep per-document state in the font objects, so one document is
rendered at a time per process (a lock); Celery's prefork workers are separate processes.
"""

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from io import BytesIO
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    LongTable,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from audit.packs.data import (
    ApprovalItem,
    ChangelogPack,
    ChangeRow,
    DecisionItem,
    DeploymentItem,
    DeploymentRow,
    EvidenceItem,
    PopulationPack,
)
from audit.packs.howto import (
    EVENTS_NAME,
    EVIDENCE_DIR,
    PROOFS_DIR,
    Step,
    changelog_steps,
    population_steps,
)
from audit.packs.sample import SAMPLE_METHOD
from tlog.canonical import canonical_json

CREATOR = "Release Gate"
_Row = TypeVar("_Row")
CHUNK_ROWS = 500
"""Population rows per table: big enough for few tables, small enough to hold as flowables."""

SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC = "RG-Vera", "RG-Vera-Bold", "RG-Vera-Italic", "RG-Vera-BoldItalic"
_FONT_FILES = {SANS: "Vera.ttf", SANS_BOLD: "VeraBd.ttf", SANS_ITALIC: "VeraIt.ttf", SANS_BOLD_ITALIC: "VeraBI.ttf"}
_FONT_DIR = Path(reportlab.__file__).resolve().parent / "fonts"

_PAGE_COUNT_FORM = "pageCount"
_LOCK = threading.Lock()
_fonts_registered = False

_INK = colors.HexColor("#1a1a1a")
_MUTED = colors.HexColor("#5a5a5a")
_RULE = colors.HexColor("#b8b8b8")
_HEAD_BG = colors.HexColor("#e6e9ee")
_ZEBRA = colors.HexColor("#f5f6f8")
_CODE_BG = colors.HexColor("#f1f1f1")
_ALERT_BG = colors.HexColor("#f8d7d3")


class _Font(TTFont):  # type: ignore[misc]  # reportlab is untyped
    """A TrueType font that maps printable ASCII without a Python loop per character.

    ``splitString`` is the interface dynamic (subsetting) fonts offer canvases: it assigns each
    character a code in a subset. With reportlab's "ASCII readable" subsets, printable ASCII
    is subset 0 at its own code from the start, so a printable-ASCII string is simply itself;
    anything else (or a font without every printable ASCII glyph) takes reportlab's way."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(name, filename, asciiReadable=True)
        self._ascii_ready = all(code in self.face.charToGlyph for code in range(32, 127))

    def splitString(self, text: Any, doc: Any, encoding: str = "utf-8") -> list[tuple[int, bytes]]:  # noqa: N802
        if self._ascii_ready and isinstance(text, str) and text.isascii() and text.isprintable() and doc in self.state:
            return [(0, text.encode("ascii"))] if text else []
        return list(super().splitString(text, doc, encoding))


def _register_fonts() -> None:
    """Register the Vera family once per process (callers hold ``_LOCK``)."""
    global _fonts_registered  # noqa: PLW0603  # one registration per process, like reportlab's own registry
    if _fonts_registered:
        return
    for name, file_name in _FONT_FILES.items():
        pdfmetrics.registerFont(_Font(name, str(_FONT_DIR / file_name)))
    pdfmetrics.registerFontFamily(SANS, normal=SANS, bold=SANS_BOLD, italic=SANS_ITALIC, boldItalic=SANS_BOLD_ITALIC)
    _fonts_registered = True


# --- Styles and small helpers ---------------------------------------------------------------


def _style(name: str, size: float, *, font: str = SANS, leading: float | None = None, **extra: Any) -> ParagraphStyle:
    return ParagraphStyle(
        name,
        fontName=font,
        fontSize=size,
        leading=leading if leading is not None else size * 1.25,
        textColor=extra.pop("textColor", _INK),
        alignment=TA_LEFT,
        **extra,
    )


class _Styles:
    def __init__(self) -> None:
        self.title = _style("title", 18, font=SANS_BOLD, spaceAfter=4)
        self.subtitle = _style("subtitle", 11, textColor=_MUTED, spaceAfter=10)
        self.h1 = _style("h1", 13, font=SANS_BOLD, spaceBefore=10, spaceAfter=5, keepWithNext=1)
        self.h2 = _style("h2", 10, font=SANS_BOLD, spaceBefore=7, spaceAfter=3, keepWithNext=1)
        self.body = _style("body", 8.5)
        self.note = _style("note", 8, textColor=_MUTED, spaceAfter=4)
        self.label = _style("label", 8, font=SANS_BOLD, textColor=_MUTED)
        self.cell = _style("cell", 7.5)
        self.head = _style("head", 7.5, font=SANS_BOLD)
        # Hashes never split: a wrapped hash would reach pdftotext as two words.
        self.hash = _style("hash", 7.5, splitLongWords=0)
        self.small = _style("small", 6.5, leading=8)
        self.code = _style(
            "code",
            7,
            leading=9,
            backColor=_CODE_BG,
            borderPadding=(3, 3, 3, 3),
            spaceBefore=3,
            spaceAfter=5,
            leftIndent=3,
        )
        self.preformatted = _style("pre", 7.5, leading=9.5, splitLongWords=0)


def _text(value: object) -> str:
    """Markup-safe text for a Paragraph: escaped, newlines kept as line breaks."""
    return escape(str(value)).replace("\n", "<br/>")


def _para(value: object, style: ParagraphStyle) -> Paragraph:
    return Paragraph(_text(value), style)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _hash_lines(values: Sequence[str], style: ParagraphStyle) -> Paragraph:
    return Paragraph("<br/>".join(escape(v) for v in values) or "(none)", style)


def _labelled(label: str, value: str, st: _Styles) -> Paragraph:
    """``Label value`` on one line, for a hash under a record: the value stays one word."""
    return Paragraph(f'<font name="{SANS_BOLD}" color="#5a5a5a">{escape(label)}</font>  {escape(value)}', st.hash)


def _pdf_date(generated_at: str) -> str:
    """The PDF date of ``generated_at`` (ISO 8601); the invariant epoch if it does not parse."""
    try:
        moment = datetime.fromisoformat(generated_at)
    except ValueError:
        moment = datetime(2000, 1, 1, tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("D:%Y%m%d%H%M%S+00'00'")


# --- Document machinery ---------------------------------------------------------------------


class _PackCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped
    """Counts pages and, on save, draws the page-count form every footer refers to."""

    def __init__(self, *args: Any, pdf_date: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages = 0
        self.setDateFormatter(lambda *_: pdf_date)

    def showPage(self) -> None:  # noqa: N802  # reportlab's name
        self.pages += 1
        super().showPage()

    def save(self) -> None:
        self.beginForm(_PAGE_COUNT_FORM)
        self.setFont(SANS, 7)
        self.setFillColor(_MUTED)
        self.drawString(0, 0, str(self.pages))
        self.endForm()
        super().save()


class _PackDocument(BaseDocTemplate):  # type: ignore[misc]  # reportlab is untyped
    def __init__(self, out: BinaryIO, *, pagesize: tuple[float, float], footer: str, **meta: Any) -> None:
        margin = 16 * mm
        super().__init__(
            out,
            pagesize=pagesize,
            leftMargin=margin,
            rightMargin=margin,
            topMargin=14 * mm,
            bottomMargin=16 * mm,
            creator=CREATOR,
            invariant=1,
            initialFontName=SANS,
            initialFontSize=8,
            displayDocTitle=1,
            lang="en",
            **meta,
        )
        self.footer = footer
        frame = Frame(self.leftMargin, self.bottomMargin, self.width, self.height, id="body", showBoundary=0)
        self.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=self._decorate)])

    def _decorate(self, canvas: Canvas, doc: Any) -> None:
        canvas.saveState()
        y = self.bottomMargin - 9 * mm
        canvas.setStrokeColor(_RULE)
        canvas.setLineWidth(0.5)
        canvas.line(self.leftMargin, y + 9, self.leftMargin + self.width, y + 9)
        canvas.setFont(SANS, 7)
        canvas.setFillColor(_MUTED)
        canvas.drawString(self.leftMargin, y, self.footer)
        label = f"Page {doc.page} of "
        x = self.leftMargin + self.width - 62
        canvas.drawString(x, y, label)
        canvas.translate(x + pdfmetrics.stringWidth(label, SANS, 7), y)
        canvas.doForm(_PAGE_COUNT_FORM)
        canvas.restoreState()


class _FlowableStream(list[Flowable]):
    """A story that platypus eats from the front while a generator refills it, so a long
    population never exists as flowables all at once: platypus asks ``len()`` before each
    flowable, and this pulls just enough for that, never ending on a keep-with-next heading
    (platypus must see what the heading is kept with)."""

    def __init__(self, source: Iterator[Flowable]) -> None:
        super().__init__()
        self._source = source

    def __len__(self) -> int:
        while not list.__len__(self) or self[-1].getKeepWithNext():
            item = next(self._source, None)
            if item is None:
                break
            self.append(item)
        return list.__len__(self)


def _build(
    out: BinaryIO,
    make_story: Callable[[float], list[Flowable]],
    *,
    pagesize: tuple[float, float],
    generated_at: str,
    footer: str,
    meta: dict[str, Any],
) -> None:
    """Lay out the story ``make_story(frame width)`` into ``out``."""
    with _LOCK:
        _register_fonts()
        doc = _PackDocument(out, pagesize=pagesize, footer=footer, **meta)
        doc.build(make_story(doc.width), canvasmaker=partial(_PackCanvas, pdf_date=_pdf_date(generated_at)))


def _fit(widths: Sequence[float], width: float, stretch: int) -> list[float]:
    """``widths`` with column ``stretch`` taking up (or giving back) the difference to ``width``."""
    fitted = list(widths)
    fitted[stretch] += width - sum(widths)
    return fitted


def _cell(value: Any, width: float, style: ParagraphStyle) -> Any:
    """A table cell: flowables as they are; text that fits ``width`` as a plain string, which
    reportlab's tables lay out and draw far faster than a Paragraph; longer text as a wrapping
    Paragraph in ``style`` (whose font and size the table's FONT command must match)."""
    if isinstance(value, Flowable | list):
        return value
    text = str(value)
    font, size = style.fontName, style.fontSize
    if all(pdfmetrics.stringWidth(line, font, size) <= width for line in text.split("\n")):
        return text
    return _para(text, style)


def _fields_table(rows: Sequence[tuple[str, Any]], width: float, st: _Styles, label_width: float = 118) -> Table:
    """A two-column table of labelled values; a value may be text or flowables."""
    inner = width - label_width - 6
    data = [[label, _cell(value if value != "" else "—", inner, st.body)] for label, value in rows]
    table = Table(data, colWidths=[label_width, width - label_width], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (0, -1), SANS_BOLD, st.label.fontSize, st.label.leading),
                ("TEXTCOLOR", (0, 0), (0, -1), _MUTED),
                ("FONT", (1, 0), (1, -1), SANS, st.body.fontSize, st.body.leading),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
            ]
        )
    )
    return table


def _records_table(
    header: Sequence[str],
    widths: Sequence[float],
    records: Sequence[tuple[Sequence[Any], Sequence[Flowable]]],
    st: _Styles,
) -> LongTable:
    """One row per record under a repeated header, each followed by full-width detail rows
    (hashes, ids, long text) so that long values get the whole width."""
    data: list[list[Any]] = [[_cell(h, w - 6, st.head) for h, w in zip(header, widths, strict=True)]]
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), SANS, st.cell.fontSize, st.cell.leading),
        ("FONT", (0, 0), (-1, 0), SANS_BOLD, st.head.fontSize, st.head.leading),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), _HEAD_BG),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, _INK),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for n, (cells, details) in enumerate(records):
        first = len(data)
        data.append([_cell(c, w - 6, st.cell) for c, w in zip(cells, widths, strict=True)])
        for detail in details:
            row = len(data)
            data.append([detail] + [""] * (len(header) - 1))
            commands.append(("SPAN", (0, row), (-1, row)))
        last = len(data) - 1
        if last > first:
            commands.append(("NOSPLIT", (0, first), (-1, last)))
        if n:
            commands.append(("LINEABOVE", (0, first), (-1, first), 0.4, _RULE))
        if n % 2:
            commands.append(("BACKGROUND", (0, first), (-1, last), _ZEBRA))
    table = LongTable(data, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle(commands))
    return table


def _steps(steps: Sequence[Step], st: _Styles) -> list[Flowable]:
    story: list[Flowable] = []
    for n, step in enumerate(steps, 1):
        story.append(_para(f"{n}. {step.title}", st.h2))
        story.append(_para(step.text, st.body))
        story.extend(_para(command, st.code) for command in step.commands)
    return story


# --- The changelog pack ---------------------------------------------------------------------

_KNOWN_CONTENT = {
    "artifact",
    "deploy_steps",
    "data_changes",
    "no_data_changes",
    "rollback_plan",
    "reason",
    "scope",
    "expected_outcome",
    "planned_window",
    "risk_tier",
    "security_impact",
    "hotfix",
    "commit_authors",
    "bundles",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _cover(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    content = pack.content
    artifact = _dict(content.get("artifact"))
    window = _dict(content.get("planned_window"))
    rows: list[tuple[str, Any]] = [
        ("Organisation", pack.organisation),
        ("Service", pack.service),
        ("Domain", pack.domain),
        ("Kind", pack.kind),
        ("Status", pack.status),
        ("Changelog", _para(pack.changelog_id, st.hash)),
        ("Revision", f"{pack.revision} ({pack.revision_status})" if pack.revision_status else str(pack.revision)),
        ("Content hash (SHA-256)", _para(pack.content_hash, st.hash)),
        ("Artifact", f"{artifact.get('name', '')} {artifact.get('version', '')}".strip()),
        ("Artifact digest", _para(artifact.get("digest", ""), st.hash)),
        ("Source revision", _para(artifact.get("source_revision", ""), st.hash)),
        ("Risk tier", content.get("risk_tier", "")),
        ("Planned window", f"{window.get('start', '')} to {window.get('end', '')}" if window else ""),
        ("Created", f"{pack.created_at} by {pack.created_by}"),
        ("Submitted", f"{pack.submitted_at} by {pack.submitted_by}" if pack.submitted_at else "not submitted"),
        ("Pack generated", pack.generated_at),
        ("Audit checkpoint", f"tree size {pack.checkpoint_size}"),
    ]
    if pack.manifest_sha256:
        rows.append(("ZIP manifest (SHA-256)", _para(pack.manifest_sha256, st.hash)))
    counts = (
        f"{len(pack.evidence)} evidence files, {len(pack.approvals)} approvals, {len(pack.decisions)} gate decisions, "
        f"{len(pack.deployments)} deployments, {len(pack.audit_events)} audit events with inclusion proofs."
    )
    return [
        _para("Change evidence pack", st.title),
        _para(f"{pack.service} · {pack.kind} · {pack.status}", st.subtitle),
        _fields_table(rows, width, st, label_width=130),
        Spacer(1, 8),
        _para(counts, st.body),
        Spacer(1, 4),
        _para(
            "This PDF is signed by the organisation. It comes with a ZIP holding the raw evidence files, the "
            "canonical audit events, their inclusion proofs, the signed checkpoint they are proved against, the "
            "log's public key, a standalone verifier and a manifest of hashes. The last section says how to check "
            "all of it.",
            st.note,
        ),
        PageBreak(),
    ]


def _change_section(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    content = pack.content
    security = _dict(content.get("security_impact"))
    hotfix = _dict(content.get("hotfix"))
    artifact = _dict(content.get("artifact"))
    rows: list[tuple[str, Any]] = [
        ("Reason", content.get("reason", "")),
        ("Scope", content.get("scope", "")),
        *(
            ("Train carries", f"{item.get('changelog', '')} at {item.get('content_hash', '')}")
            for item in content.get("bundles") or []
            if isinstance(item, dict)
        ),
        ("Expected outcome", content.get("expected_outcome", "")),
        ("Rollback plan", content.get("rollback_plan", "")),
        (
            "Security impact",
            ("declared: " + str(security.get("description", ""))) if security.get("declared") else "none declared",
        ),
    ]
    if hotfix:
        rows += [
            ("Incident", hotfix.get("incident_reference", "")),
            ("Emergency category", hotfix.get("emergency_category", "")),
            ("Emergency reason", hotfix.get("emergency_reason", "")),
        ]
    authors = [str(a) for a in _list(content.get("commit_authors"))]
    rows.append(("Commit authors", ", ".join(authors) if authors else "none listed"))
    links = [_dict(link) for link in _list(artifact.get("links"))]
    rows.append(("Links", "\n".join(f"{link.get('title', '')}: {link.get('url', '')}" for link in links) or "none"))
    for key in sorted(set(content) - _KNOWN_CONTENT):
        rows.append((key, canonical_json(content[key]).decode("utf-8")))
    return [_para("The change", st.h1), _fields_table(rows, width, st)]


def _steps_section(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [_para("Deploy steps", st.h1)]
    deploy = [_dict(s) for s in _list(pack.content.get("deploy_steps"))]
    if deploy:
        story.append(
            _records_table(
                ["#", "Step", "Command"],
                [22, (width - 22) * 0.5, (width - 22) * 0.5],
                [
                    ([str(n), s.get("description", ""), s.get("command", "") or "—"], [])
                    for n, s in enumerate(deploy, 1)
                ],
                st,
            )
        )
    else:
        story.append(_para("No deploy steps.", st.body))
    story.append(_para("Data changes", st.h1))
    changes = [_dict(c) for c in _list(pack.content.get("data_changes"))]
    if changes:
        story.append(
            _records_table(
                ["#", "Version", "Change", "Rollback"],
                [22, 150, (width - 172) / 2, (width - 172) / 2],
                [
                    (
                        [str(n), c.get("version", ""), c.get("description", ""), c.get("rollback", "")],
                        [_labelled("Digest", str(c.get("digest", "")), st)],
                    )
                    for n, c in enumerate(changes, 1)
                ],
                st,
            )
        )
    elif pack.content.get("no_data_changes"):
        story.append(_para("None: the changelog declares that the change touches no data.", st.body))
    else:
        story.append(_para("None listed.", st.body))
    return story


def _evidence_item(n: int, total: int, item: EvidenceItem, width: float, st: _Styles) -> list[Flowable]:
    summary = _hash_lines(item.summary_lines, st.body) if item.summary_lines else _para("(no summary)", st.body)
    rows: list[tuple[str, Any]] = [
        ("SHA-256", _para(item.sha256, st.hash)),
        ("Kind, format", f"{item.kind}, {item.format}"),
        ("Size", f"{item.size:,} bytes"),
        ("Verdict", item.verdict),
        ("Parsed summary", summary),
        ("Parser", item.parser_version),
        ("Uploaded", f"{item.uploaded_at} by {item.uploaded_by}"),
        ("Evidence id", _para(item.id, st.hash)),
        ("In the ZIP", _para(item.archive_name, st.small)),
    ]
    return [_para(f"{n} of {total}. {item.file_name}", st.h2), _fields_table(rows, width, st)]


def _evidence_section(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [
        _para("Evidence", st.h1),
        _para(
            f"Every file is kept byte for byte and is in the ZIP under {EVIDENCE_DIR}/. The verdict is the "
            "parser's reading of the file; the gate applies its policy on top.",
            st.note,
        ),
    ]
    if not pack.evidence:
        story.append(_para("No evidence files.", st.body))
    for n, item in enumerate(pack.evidence, 1):
        story += _evidence_item(n, len(pack.evidence), item, width, st)
    story.append(_para("Readiness at submission", st.h1))
    story.append(_para(f"Policy: {pack.readiness_policy or '—'}", st.body))
    if pack.readiness_findings:
        story.append(
            _records_table(
                ["Finding", "What was missing or wrong"],
                [150, width - 150],
                [([code, message], []) for code, message in pack.readiness_findings],
                st,
            )
        )
    else:
        story.append(_para("No findings: the evidence was complete when the changelog was submitted.", st.body))
    return story


def _approval(n: int, item: ApprovalItem, pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    same = item.content_hash == pack.content_hash
    counts = "yes" if item.counts else f"no: {item.not_counted_because or 'not counted'}"
    rows: list[tuple[str, Any]] = [
        ("Decision", item.decision),
        ("Approver", item.approver),
        ("Authority", ", ".join(item.authorities) or "none"),
        ("Decided at", item.decided_at),
        ("Expires at", item.expires_at or "—"),
        ("Content hash signed", _para(item.content_hash, st.hash)),
        ("Revision", f"{item.revision} ({'' if same else 'NOT '}the content hash of this revision)"),
        ("Retrospective", _yes_no(item.retrospective)),
        ("Counts", counts),
        ("Reason", item.reason or "—"),
        (
            "Signed",
            _para(
                f"with passkey {item.signature['credential_id']} (assertion and public key in "
                "approval-signatures.json; verify with python3 -m tlog.verifier approvals)",
                st.hash,
            )
            if item.signature
            else "no passkey signature",
        ),
    ]
    return [_para(f"Approval {n}: {item.decision} by {item.approver}", st.h2), _fields_table(rows, width, st)]


def _decision_record(d: DecisionItem, st: _Styles) -> tuple[list[str], list[Flowable]]:
    details = [
        _labelled("Artifact digest", d.artifact_digest, st),
        _labelled("Decision id", d.id, st),
        _para(f"Reasons: {', '.join(d.reasons) if d.reasons else 'none'}", st.cell),
    ]
    return [d.evaluated_at, d.environment, d.outcome, d.requested_by, d.policy], details


def _deployment_record(d: DeploymentItem, st: _Styles) -> tuple[list[str], list[Flowable]]:
    details = [
        _labelled("Artifact digest", d.artifact_digest, st),
        _labelled("Deployment id", d.id, st),
        _para(f"Pipeline run: {d.pipeline_run_url or '—'}", st.cell),
    ]
    unauthorised = "UNAUTHORISED" if d.unauthorised else "authorised"
    return [d.reported_at, d.environment, d.status, unauthorised, d.reported_by], details


def _gate_section(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [_para("Approvals", st.h1)]
    if not pack.approvals:
        story.append(_para("No approvals.", st.body))
    for n, approval in enumerate(pack.approvals, 1):
        story += _approval(n, approval, pack, width, st)
    story.append(_para("Gate decisions", st.h1))
    if pack.decisions:
        widths = _fit([125, 65, 50, 135, 0], width, 4)
        header = ["Evaluated at", "Environment", "Outcome", "Requested by", "Policy"]
        story.append(_records_table(header, widths, [_decision_record(d, st) for d in pack.decisions], st))
    else:
        story.append(_para("No gate decisions.", st.body))
    story.append(_para("Deployments", st.h1))
    if pack.deployments:
        widths = _fit([125, 65, 65, 75, 0], width, 4)
        header = ["Reported at", "Environment", "Status", "Authorisation", "Reported by"]
        story.append(_records_table(header, widths, [_deployment_record(d, st) for d in pack.deployments], st))
    else:
        story.append(_para("No deployments.", st.body))
    story.append(_para("Incidents", st.h1))
    if pack.incidents:
        linked = {"caused": "caused by this change (confirmed)", "answered": "answered by this hotfix"}
        for reference, relation, severity, title in pack.incidents:
            story.append(_para(f"{reference} ({severity}): {title}: {linked.get(relation, relation)}", st.body))
    else:
        story.append(_para("No incident is linked to this change.", st.body))
    return story


def _event_for_reading(event: str) -> str:
    """The canonical event with a space after each comma, so that lines break between fields and
    never inside a hash (the exact bytes are in the ZIP's events.jsonl and proofs)."""
    try:
        return json.dumps(json.loads(event), sort_keys=True, separators=(", ", ":"), ensure_ascii=False)
    except ValueError:
        return event


def _audit_section(pack: ChangelogPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [
        _para("Audit trail", st.h1),
        _para(
            "Every audit event of this change, with its leaf index in the tamper-evident log and its inclusion "
            f"proof (RFC 9162) against the signed checkpoint below, of tree size {pack.checkpoint_size}. A leaf hash "
            "is SHA-256(0x00 || the canonical event bytes); proof hashes go from the leaf upwards. Each event is "
            "shown as its canonical JSON with a space after each comma for reading; the ZIP holds the exact bytes "
            f"(one per line in {EVENTS_NAME}) and each proof as {PROOFS_DIR}/<leaf index>.json.",
            st.note,
        ),
        _para("Signed checkpoint", st.h2),
        _hash_lines(pack.checkpoint.rstrip("\n").split("\n"), st.preformatted),
        _para("Public key of the log", st.h2),
        _para(pack.public_key, st.hash),
        _para("Events", st.h2),
    ]
    records = []
    for item in sorted(pack.audit_events, key=lambda e: e.leaf_index):
        details = [
            _labelled("Leaf hash", item.leaf_hash, st),
            Paragraph(
                f'<font name="{SANS_BOLD}" color="#5a5a5a">Inclusion proof</font> '
                f"({len(item.proof)} hashes)<br/>" + "<br/>".join(escape(h) for h in item.proof),
                st.hash,
            ),
            _para(_event_for_reading(item.event), st.small),
        ]
        records.append(([str(item.leaf_index), str(item.event_id), item.time, item.actor, item.action], details))
    if records:
        widths = _fit([42, 42, 125, 135, 0], width, 4)
        story.append(_records_table(["Leaf index", "Event id", "Time", "Actor", "Action"], widths, records, st))
    else:
        story.append(_para("No audit events.", st.body))
    return story


def _changelog_story(pack: ChangelogPack, width: float) -> list[Flowable]:
    st = _Styles()
    steps = changelog_steps(
        leaf_indexes=[e.leaf_index for e in pack.audit_events],
        certificate_sha256=pack.signing_certificate_sha256,
        organisation=pack.organisation,
    )
    return [
        *_cover(pack, width, st),
        *_change_section(pack, width, st),
        *_steps_section(pack, width, st),
        *_evidence_section(pack, width, st),
        *_gate_section(pack, width, st),
        *_audit_section(pack, width, st),
        _para("How to verify", st.h1),
        _para("Everything below runs offline on the unpacked ZIP; nothing needs access to the service.", st.note),
        *_steps(steps, st),
    ]


MANIFEST_KEYWORD = "manifest-sha256:"
"""In the PDF's keywords (its document information, plain text in the signed bytes) before the
ZIP manifest's SHA-256, for the verifier to find without rendering the page."""


def render_changelog_pdf(pack: ChangelogPack) -> bytes:
    """The changelog pack's PDF (unsigned): the same pack always gives the same bytes."""
    out = BytesIO()
    _build(
        out,
        partial(_changelog_story, pack),
        pagesize=A4,
        generated_at=pack.generated_at,
        footer=f"{pack.organisation} · evidence pack · {pack.service} · changelog {pack.changelog_id}",
        meta={
            "title": f"Change evidence pack: {pack.service}, changelog {pack.changelog_id}",
            "author": pack.organisation,
            "subject": f"{pack.kind} of {pack.service} ({pack.domain}), revision {pack.revision}, {pack.status}",
            "keywords": [
                "evidence pack",
                "changelog",
                pack.changelog_id,
                pack.service,
                pack.domain,
                *([f"{MANIFEST_KEYWORD}{pack.manifest_sha256}"] if pack.manifest_sha256 else []),
            ],
        },
    )
    return out.getvalue()


# --- The population pack --------------------------------------------------------------------

_EXCEPTION_LABELS = {
    "unauthorised_deployment": "Unauthorised deployment",
    "retrospective_overdue": "Retrospective approval overdue",
    "retrospective_missing": "Retrospective approval missing",
    "retrospective_late": "Retrospective approval completed late",
    "deployed_while_denied": "Deployed while denied",
}

_CHANGE_HEADER = [
    "#",
    "Changelog\nartifact digest",
    "Service\ndomain",
    "Kind, risk\nstatus\ndeployments",
    "Submitted\napproved\nfirst deployed",
    "Approval\nbefore\ndeploy",
    "Separation\nof duties",
    "Evidence\ncomplete",
    "Rollback\nplan",
]
# Widths in points for landscape A4 less margins (751 pt), for 6 pt Vera: a digest is 262 pt,
# a changelog id 127 pt, a time to the second (2026-11-27T09:15:02Z) 80 pt.
_CHANGE_WIDTHS = [26, 270, 117, 70, 100, 42, 42, 42, 42]
_DEPLOYMENT_HEADER = [
    "#",
    "Deployment\nartifact digest",
    "Reported at",
    "Service\ndomain",
    "Environment\nstatus",
    "Changelog",
    "Authorisation",
]
_DEPLOYMENT_WIDTHS = [26, 270, 100, 92, 70, 135, 58]


def _check(value: bool | None) -> str:
    return "n/a" if value is None else _yes_no(value)


def _change_cells(n: int, row: ChangeRow) -> list[str]:
    return [
        str(n),
        f"{row.changelog_id}\n{row.artifact_digest}",
        f"{row.service}\n{row.domain}",
        f"{row.kind}, {row.risk_tier}\n{row.status}\n{row.deployments} deployment{'' if row.deployments == 1 else 's'}",
        f"{row.submitted_at}\n{row.approved_at or 'not approved'}\n{row.first_deployed_at or 'not deployed'}",
        _check(row.approval_before_deploy),
        _check(row.separation_of_duties),
        _check(row.evidence_complete),
        _check(row.rollback_plan),
    ]


def _change_alerts(row: ChangeRow) -> list[int]:
    checks = (row.approval_before_deploy, row.separation_of_duties, row.evidence_complete, row.rollback_plan)
    return [5 + i for i, ok in enumerate(checks) if ok is False]


def _deployment_cells(n: int, row: DeploymentRow) -> list[str]:
    return [
        str(n),
        f"{row.deployment_id}\n{row.artifact_digest}",
        row.reported_at,
        f"{row.service}\n{row.domain}",
        f"{row.environment}\n{row.status}",
        row.changelog_id or "none",
        "UNAUTHORISED" if row.unauthorised else "authorised",
    ]


def _deployment_alerts(row: DeploymentRow) -> list[int]:
    return [6] if row.unauthorised else []


class _RowBlock(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """Rows of plain text lines under a header, drawn like a table but with one text object per
    page: a population has hundreds of thousands of cell lines, and reportlab's Table spends
    most of its time per cell (styles, one text object per string). Splits between rows, and
    every part repeats the header."""

    FONT_SIZE = 6.0
    LEADING = 7.4
    PAD_X = 2.5
    PAD_Y = 1.5

    def __init__(
        self,
        header: Sequence[str],
        widths: Sequence[float],
        rows: list[list[str]],
        alerts: set[tuple[int, int]],
        *,
        first: int = 0,
        heights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.header, self.widths, self.rows, self.alerts, self.first = header, widths, rows, alerts, first
        self.header_height = self._height(header)
        self.heights = heights if heights is not None else [self._height(row) for row in rows]

    def _height(self, cells: Sequence[str]) -> float:
        return max(cell.count("\n") for cell in cells) * self.LEADING + self.LEADING + 2 * self.PAD_Y

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        self.width, self.height = sum(self.widths), self.header_height + sum(self.heights)
        return self.width, self.height

    def split(self, available_width: float, available_height: float) -> list[Flowable]:
        room, fit = available_height - self.header_height, 0
        while fit < len(self.rows) and room >= self.heights[fit]:
            room -= self.heights[fit]
            fit += 1
        if fit == 0:
            return []  # not even one row: platypus moves it to the next page
        if fit == len(self.rows):
            return [self]

        def part(a: int, b: int) -> _RowBlock:
            alerts = {(r - a, c) for r, c in self.alerts if a <= r < b}
            return _RowBlock(
                self.header, self.widths, self.rows[a:b], alerts, first=self.first + a, heights=self.heights[a:b]
            )

        return [part(0, fit), part(fit, len(self.rows))]

    def draw(self) -> None:
        canvas, x = self.canv, [sum(self.widths[:i]) for i in range(len(self.widths))]
        tops, y = [], self.height - self.header_height
        for h in self.heights:
            tops.append(y)
            y -= h
        canvas.saveState()
        # Backgrounds: the header, every other row, failed checks; one path each.
        canvas.setFillColor(_HEAD_BG)
        canvas.rect(0, self.height - self.header_height, self.width, self.header_height, stroke=0, fill=1)
        zebra = canvas.beginPath()
        for i, top in enumerate(tops):
            if (self.first + i) % 2:
                zebra.rect(0, top - self.heights[i], self.width, self.heights[i])
        canvas.setFillColor(_ZEBRA)
        canvas.drawPath(zebra, stroke=0, fill=1)
        if self.alerts:
            shade = canvas.beginPath()
            for row, col in self.alerts:
                shade.rect(x[col], tops[row] - self.heights[row], self.widths[col], self.heights[row])
            canvas.setFillColor(_ALERT_BG)
            canvas.drawPath(shade, stroke=0, fill=1)
        canvas.setStrokeColor(_INK)
        canvas.setLineWidth(0.6)
        canvas.line(0, self.height - self.header_height, self.width, self.height - self.header_height)
        # Text: each cell's lines from its top-left corner, moving down by the leading.
        canvas.setFillColor(_INK)
        text = canvas.beginText()
        text.setFont(SANS_BOLD, self.FONT_SIZE, self.LEADING)
        self._cells(text, self.header, self.height, x)
        text.setFont(SANS, self.FONT_SIZE, self.LEADING)
        for cells, top in zip(self.rows, tops, strict=True):
            self._cells(text, cells, top, x)
        canvas.drawText(text)
        canvas.restoreState()

    def _cells(self, text: Any, cells: Sequence[str], top: float, x: Sequence[float]) -> None:
        baseline = top - self.PAD_Y - self.FONT_SIZE
        for left, cell in zip(x, cells, strict=True):
            text.setTextOrigin(left + self.PAD_X, baseline)
            for line in cell.split("\n"):
                text.textLine(line)


def _streamed_rows(
    rows: Iterable[_Row],
    *,
    header: Sequence[str],
    widths: Sequence[float],
    cells: Callable[[int, _Row], list[str]],
    alerts: Callable[[_Row], list[int]],
    counter: list[int],
) -> Iterator[Flowable]:
    """Blocks of ``CHUNK_ROWS`` rows each, built only when platypus reaches them."""
    iterator = iter(rows)
    n = 0
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        data: list[list[str]] = []
        marks: set[tuple[int, int]] = set()
        for i, row in enumerate(chunk):
            data.append(cells(n + i + 1, row))
            marks.update((i, col) for col in alerts(row))
        n += len(chunk)
        counter[0] = n
        yield _RowBlock(header, widths, data, marks, first=n - len(chunk))


def _leaf_range(pack: PopulationPack) -> str:
    if pack.audit_first_leaf < 0 or pack.audit_last_leaf < pack.audit_first_leaf:
        return "no audit events in the period"
    return f"leaves {pack.audit_first_leaf} to {pack.audit_last_leaf}"


def _population_cover(pack: PopulationPack, width: float, st: _Styles) -> list[Flowable]:
    scope = pack.domain or "all domains"
    rows: list[tuple[str, Any]] = [
        ("Organisation", pack.organisation),
        ("Period", f"{pack.period_start} to {pack.period_end}"),
        ("Domain", scope),
        ("Generated", pack.generated_at),
        ("Audit log range", _leaf_range(pack)),
        *pack.extra.items(),
    ]
    if pack.csv_sha256:
        rows.append(("population.csv (SHA-256)", _para(pack.csv_sha256, st.hash)))
    totals = [(key.replace("_", " ").capitalize(), f"{value:,}") for key, value in pack.totals.items()]
    return [
        _para("Population of production changes", st.title),
        _para(f"{pack.period_start} to {pack.period_end} · {scope}", st.subtitle),
        _fields_table(rows, width / 2, st),
        _para("Totals", st.h1),
        _fields_table(totals or [("Changes", "0")], width / 2, st, label_width=200),
        _para(
            "Every production change and every production deployment in the period. For each change: whether "
            "the approvals that count were complete before the first deployment, separation of duties (no "
            "counted approval by the requester, an evidence uploader or a commit author), evidence completeness at "
            "submission (no readiness findings) and a rollback plan. Failed checks are shaded.",
            st.note,
        ),
    ]


def _exceptions_section(pack: PopulationPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [_para("Exceptions", st.h1)]
    if not pack.exceptions:
        story.append(_para("No exceptions in the period.", st.body))
        return story
    # The detail (often with a digest in it) gets a full-width line of its own under its row.
    widths = _fit([180, 180, 0, 130], width, 2)
    records: list[tuple[list[Any], list[Flowable]]] = [
        (
            [_EXCEPTION_LABELS.get(e.kind, e.kind), _para(e.reference, st.hash), e.service, e.at],
            [_para(e.detail, st.hash)] if e.detail else [],
        )
        for e in pack.exceptions
    ]
    story.append(_records_table(["Exception", "Reference", "Service", "At"], widths, records, st))
    return story


def _sample_section(pack: PopulationPack, width: float, st: _Styles) -> list[Flowable]:
    story: list[Flowable] = [
        _para("Sample for testing", st.h1),
        _para(
            f"Seed {pack.sample_seed}, sample size {pack.sample_size}. " + SAMPLE_METHOD.format(size=pack.sample_size),
            st.body,
        ),
    ]
    if pack.sample:
        records: list[tuple[list[Any], list[Flowable]]] = [
            ([str(n), _para(changelog_id, st.hash)], []) for n, changelog_id in enumerate(pack.sample, 1)
        ]
        story.append(_records_table(["#", "Changelog"], [30, 260], records, st))
    else:
        story.append(_para("The sample is empty.", st.body))
    return story


def _population_story(pack: PopulationPack, width: float) -> Iterator[Flowable]:
    st = _Styles()
    yield from _population_cover(pack, width, st)
    yield from _exceptions_section(pack, width, st)
    yield from _sample_section(pack, width, st)
    yield _para("Audit log", st.h1)
    yield _para(
        f"The period's events in the audit log: {_leaf_range(pack)}; the log is covered by this signed checkpoint:",
        st.body,
    )
    yield _hash_lines(pack.checkpoint.rstrip("\n").split("\n"), st.preformatted)
    if pack.public_key:
        yield _para("Public key of the log", st.h2)
        yield _para(pack.public_key, st.hash)
    yield PageBreak()

    counted = [0]
    change_widths = _fit(_CHANGE_WIDTHS, width, 2)
    yield _para("Changes", st.h1)
    yield from _streamed_rows(
        pack.changes,
        header=_CHANGE_HEADER,
        widths=change_widths,
        cells=_change_cells,
        alerts=_change_alerts,
        counter=counted,
    )
    yield _para(f"{counted[0]:,} changes listed.", st.note)

    counted = [0]
    deployment_widths = _fit(_DEPLOYMENT_WIDTHS, width, 3)
    yield _para("Deployments", st.h1)
    yield from _streamed_rows(
        pack.deployments,
        header=_DEPLOYMENT_HEADER,
        widths=deployment_widths,
        cells=_deployment_cells,
        alerts=_deployment_alerts,
        counter=counted,
    )
    yield _para(f"{counted[0]:,} deployments listed.", st.note)

    yield _para("How to verify", st.h1)
    yield from _steps(
        population_steps(
            seed=pack.sample_seed,
            size=pack.sample_size,
            certificate_sha256=pack.signing_certificate_sha256,
            organisation=pack.organisation,
        ),
        st,
    )


def render_population_pdf(pack: PopulationPack, out: BinaryIO) -> None:
    """Write the population pack's PDF (unsigned) to ``out``, pulling the rows from the pack's
    iterables once, as the pages are laid out."""
    scope = pack.domain or "all domains"
    _build(
        out,
        lambda width: _FlowableStream(_population_story(pack, width)),
        pagesize=landscape(A4),
        generated_at=pack.generated_at,
        footer=f"{pack.organisation} · population {pack.period_start} to {pack.period_end} · {scope}",
        meta={
            "title": f"Population of production changes, {pack.period_start} to {pack.period_end}, {scope}",
            "author": pack.organisation,
            "subject": "Production changes and deployments in the period, with approval and evidence checks",
            "keywords": ["evidence pack", "population", pack.period_start, pack.period_end, scope],
        },
    )
