"""The population pack's PDF: every change and deployment of a period, streamed 500 rows at a time,
with the exceptions and the sample (laid out by packs.render.pdf.layout)."""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO

from reportlab.lib.pagesizes import A4, landscape
from reportlab.platypus import (
    Flowable,
    PageBreak,
)

from packs.render.data import (
    ChangeRow,
    DeploymentRow,
    PopulationPack,
)
from packs.render.howto import (
    population_steps,
)
from packs.render.pdf.layout import (
    ALERT_BG,
    CHUNK_ROWS,
    HEAD_BG,
    INK,
    SANS,
    SANS_BOLD,
    ZEBRA,
    FlowableStream,
    Styles,
    build_document,
    fields_table,
    fit,
    hash_lines,
    how_to_steps,
    para,
    records_table,
    yes_no,
)
from packs.render.sample import SAMPLE_METHOD

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
    return "n/a" if value is None else yes_no(value)


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
        canvas.setFillColor(HEAD_BG)
        canvas.rect(0, self.height - self.header_height, self.width, self.header_height, stroke=0, fill=1)
        zebra = canvas.beginPath()
        for i, top in enumerate(tops):
            if (self.first + i) % 2:
                zebra.rect(0, top - self.heights[i], self.width, self.heights[i])
        canvas.setFillColor(ZEBRA)
        canvas.drawPath(zebra, stroke=0, fill=1)
        if self.alerts:
            shade = canvas.beginPath()
            for row, col in self.alerts:
                shade.rect(x[col], tops[row] - self.heights[row], self.widths[col], self.heights[row])
            canvas.setFillColor(ALERT_BG)
            canvas.drawPath(shade, stroke=0, fill=1)
        canvas.setStrokeColor(INK)
        canvas.setLineWidth(0.6)
        canvas.line(0, self.height - self.header_height, self.width, self.height - self.header_height)
        # Text: each cell's lines from its top-left corner, moving down by the leading.
        canvas.setFillColor(INK)
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


@dataclass(frozen=True)
class _Listing:
    """One table of the population: its heading, what its rows are called, its columns (widths
    before fitting, and which column stretches) and how a row becomes cells and alerts."""

    title: str
    noun: str
    header: Sequence[str]
    widths: Sequence[float]
    stretch: int
    cells: Callable[[int, Any], list[str]]
    alerts: Callable[[Any], list[int]]


_CHANGES = _Listing("Changes", "changes", _CHANGE_HEADER, _CHANGE_WIDTHS, 2, _change_cells, _change_alerts)
_DEPLOYMENTS = _Listing(
    "Deployments", "deployments", _DEPLOYMENT_HEADER, _DEPLOYMENT_WIDTHS, 3, _deployment_cells, _deployment_alerts
)


def _streamed_rows(listing: _Listing, rows: Iterable[Any], width: float, st: Styles) -> Iterator[Flowable]:
    """The heading, the rows in blocks of ``CHUNK_ROWS`` each, built only when platypus reaches
    them, and how many rows there were."""
    widths = fit(listing.widths, width, listing.stretch)
    yield para(listing.title, st.h1)
    iterator = iter(rows)
    n = 0
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        data: list[list[str]] = []
        marks: set[tuple[int, int]] = set()
        for i, row in enumerate(chunk):
            data.append(listing.cells(n + i + 1, row))
            marks.update((i, col) for col in listing.alerts(row))
        n += len(chunk)
        yield _RowBlock(listing.header, widths, data, marks, first=n - len(chunk))
    yield para(f"{n:,} {listing.noun} listed.", st.note)


def _leaf_range(pack: PopulationPack) -> str:
    if pack.audit_first_leaf < 0 or pack.audit_last_leaf < pack.audit_first_leaf:
        return "no audit events in the period"
    return f"leaves {pack.audit_first_leaf} to {pack.audit_last_leaf}"


def _population_cover(pack: PopulationPack, width: float, st: Styles) -> list[Flowable]:
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
        rows.append(("population.csv (SHA-256)", para(pack.csv_sha256, st.hash)))
    totals = [(key.replace("_", " ").capitalize(), f"{value:,}") for key, value in pack.totals.items()]
    return [
        para("Population of production changes", st.title),
        para(f"{pack.period_start} to {pack.period_end} · {scope}", st.subtitle),
        fields_table(rows, width / 2, st),
        para("Totals", st.h1),
        fields_table(totals or [("Changes", "0")], width / 2, st, label_width=200),
        para(
            "Every production change and every production deployment in the period. For each change: whether "
            "the approvals that count were complete before the first deployment, separation of duties (no "
            "counted approval by the requester, an evidence uploader or a commit author), evidence completeness at "
            "submission (no readiness findings) and a rollback plan. Failed checks are shaded.",
            st.note,
        ),
    ]


def _exceptions_section(pack: PopulationPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [para("Exceptions", st.h1)]
    if not pack.exceptions:
        story.append(para("No exceptions in the period.", st.body))
        return story
    # The detail (often with a digest in it) gets a full-width line of its own under its row.
    widths = fit([180, 180, 0, 130], width, 2)
    records: list[tuple[list[Any], list[Flowable]]] = [
        (
            [_EXCEPTION_LABELS.get(e.kind, e.kind), para(e.reference, st.hash), e.service, e.at],
            [para(e.detail, st.hash)] if e.detail else [],
        )
        for e in pack.exceptions
    ]
    story.append(records_table(["Exception", "Reference", "Service", "At"], widths, records, st))
    return story


def _sample_section(pack: PopulationPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [
        para("Sample for testing", st.h1),
        para(
            f"Seed {pack.sample_seed}, sample size {pack.sample_size}. " + SAMPLE_METHOD.format(size=pack.sample_size),
            st.body,
        ),
    ]
    if pack.sample:
        records: list[tuple[list[Any], list[Flowable]]] = [
            ([str(n), para(changelog_id, st.hash)], []) for n, changelog_id in enumerate(pack.sample, 1)
        ]
        story.append(records_table(["#", "Changelog"], [30, 260], records, st))
    else:
        story.append(para("The sample is empty.", st.body))
    return story


def _population_story(pack: PopulationPack, width: float) -> Iterator[Flowable]:
    st = Styles()
    yield from _population_cover(pack, width, st)
    yield from _exceptions_section(pack, width, st)
    yield from _sample_section(pack, width, st)
    yield para("Audit log", st.h1)
    yield para(
        f"The period's events in the audit log: {_leaf_range(pack)}; the log is covered by this signed checkpoint:",
        st.body,
    )
    yield hash_lines(pack.checkpoint.rstrip("\n").split("\n"), st.preformatted)
    if pack.public_key:
        yield para("Public key of the log", st.h2)
        yield para(pack.public_key, st.hash)
    yield PageBreak()

    yield from _streamed_rows(_CHANGES, pack.changes, width, st)
    yield from _streamed_rows(_DEPLOYMENTS, pack.deployments, width, st)

    yield para("How to verify", st.h1)
    yield from how_to_steps(
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
    build_document(
        out,
        lambda width: FlowableStream(_population_story(pack, width)),
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
