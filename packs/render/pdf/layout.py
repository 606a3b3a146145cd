"""The layout every evidence-pack PDF shares (fonts, styles, page furniture, tables), rendered
with reportlab's platypus from the plain data of ``packs.render.data``; the documents are
``packs.render.pdf.changelog`` and ``packs.render.pdf.population``.

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

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
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
    PageTemplate,
    Paragraph,
    Table,
    TableStyle,
)

from packs.render.howto import (
    Step,
)

CREATOR = "Release Gate"
Row = TypeVar("Row")
CHUNK_ROWS = 500
"""Population rows per table: big enough for few tables, small enough to hold as flowables."""

SANS, SANS_BOLD, SANS_ITALIC, SANS_BOLD_ITALIC = "RG-Vera", "RG-Vera-Bold", "RG-Vera-Italic", "RG-Vera-BoldItalic"
_FONT_FILES = {SANS: "Vera.ttf", SANS_BOLD: "VeraBd.ttf", SANS_ITALIC: "VeraIt.ttf", SANS_BOLD_ITALIC: "VeraBI.ttf"}
_FONT_DIR = Path(reportlab.__file__).resolve().parent / "fonts"

_PAGE_COUNT_FORM = "pageCount"
_LOCK = threading.Lock()
_fonts_registered = False

INK = colors.HexColor("#1a1a1a")
_MUTED = colors.HexColor("#5a5a5a")
_RULE = colors.HexColor("#b8b8b8")
HEAD_BG = colors.HexColor("#e6e9ee")
ZEBRA = colors.HexColor("#f5f6f8")
_CODE_BG = colors.HexColor("#f1f1f1")
ALERT_BG = colors.HexColor("#f8d7d3")


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
        textColor=extra.pop("textColor", INK),
        alignment=TA_LEFT,
        **extra,
    )


class Styles:
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


def para(value: object, style: ParagraphStyle) -> Paragraph:
    return Paragraph(_text(value), style)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def hash_lines(values: Sequence[str], style: ParagraphStyle) -> Paragraph:
    return Paragraph("<br/>".join(escape(v) for v in values) or "(none)", style)


def labelled(label: str, value: str, st: Styles) -> Paragraph:
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


class FlowableStream(list[Flowable]):
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


def build_document(
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


def fit(widths: Sequence[float], width: float, stretch: int) -> list[float]:
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
    return para(text, style)


def fields_table(rows: Sequence[tuple[str, Any]], width: float, st: Styles, label_width: float = 118) -> Table:
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


def records_table(
    header: Sequence[str],
    widths: Sequence[float],
    records: Sequence[tuple[Sequence[Any], Sequence[Flowable]]],
    st: Styles,
) -> LongTable:
    """One row per record under a repeated header, each followed by full-width detail rows
    (hashes, ids, long text) so that long values get the whole width."""
    data: list[list[Any]] = [[_cell(h, w - 6, st.head) for h, w in zip(header, widths, strict=True)]]
    commands: list[tuple[Any, ...]] = [
        ("FONT", (0, 0), (-1, -1), SANS, st.cell.fontSize, st.cell.leading),
        ("FONT", (0, 0), (-1, 0), SANS_BOLD, st.head.fontSize, st.head.leading),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, INK),
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
            commands.append(("BACKGROUND", (0, first), (-1, last), ZEBRA))
    table = LongTable(data, colWidths=list(widths), repeatRows=1, hAlign="LEFT")
    table.setStyle(TableStyle(commands))
    return table


def how_to_steps(steps: Sequence[Step], st: Styles) -> list[Flowable]:
    story: list[Flowable] = []
    for n, step in enumerate(steps, 1):
        story.append(para(f"{n}. {step.title}", st.h2))
        story.append(para(step.text, st.body))
        story.extend(para(command, st.code) for command in step.commands)
    return story
