"""The learning report: delivery figures and incidents of a period, with reportlab's own charts.

``report_drawings`` makes the charts (reportlab.graphics Drawings); the PDF embeds them, and
the admin's figures page shows the same drawings as SVG. The PDF is signed by the caller
(releasegate/incident_report.py signs it like evidence packs)."""

from collections.abc import Mapping
from io import BytesIO
from typing import Any

from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

BAR = colors.HexColor("#2f5d8a")


def bar_chart(title: str, counts: Mapping[str, int], *, width: float = 440, height: float = 170) -> Drawing:
    """A bar chart of counts by label (reportlab's VerticalBarChart)."""
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 12, title, fontName="Helvetica-Bold", fontSize=10))
    labels = list(counts) or ["none"]
    values = [counts[label] for label in counts] or [0]
    chart = VerticalBarChart()
    chart.x, chart.y = 30, 30
    chart.width, chart.height = width - 50, height - 60
    chart.data = [values]
    chart.categoryAxis.categoryNames = labels
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.angle = 20 if len(labels) > 6 else 0
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = max([*values, 1])
    chart.valueAxis.valueStep = max(1, (max([*values, 1]) + 4) // 5)
    chart.bars[0].fillColor = BAR
    drawing.add(chart)
    return drawing


def report_drawings(figures: Mapping[str, Any]) -> list[Drawing]:
    incidents = figures["incidents"]
    return [
        bar_chart("Incidents by month", incidents["by_month"]),
        bar_chart("Incidents by severity", incidents["by_severity"]),
        bar_chart("Incidents by root-cause tag", incidents["by_tag"]),
        bar_chart("Incidents by domain", incidents["by_domain"]),
    ]


def _value(value: Any) -> str:
    return "n/a" if value is None else str(value)


FIGURE_ROWS = (
    ("Deployments to production", "deployments"),
    ("Deployment frequency (per day)", "deployment_frequency_per_day"),
    ("Lead time, submission to production (median hours)", "lead_time_hours_median"),
    ("Lead time, commit to production (median hours)", "commit_lead_time_hours_median"),
    ("Failed changes (confirmed causes)", "failed_changes"),
    ("Change failure rate", "change_failure_rate"),
    ("Incidents restored", "incidents_restored"),
    ("Time to restore (median hours)", "time_to_restore_hours_median"),
)


def render_learning_report(*, figures: Mapping[str, Any], organisation: str, generated_at: str) -> bytes:
    styles = getSampleStyleSheet()
    scope = figures.get("service") or figures.get("domain") or "all services"
    story: list[Any] = [
        Paragraph("Learning report: delivery and incidents", styles["Title"]),
        Paragraph(
            f"{organisation} &middot; {scope} &middot; {figures['start']:%Y-%m-%d %H:%M} to "
            f"{figures['end']:%Y-%m-%d %H:%M} UTC &middot; generated {generated_at}",
            styles["Normal"],
        ),
        Spacer(1, 6 * mm),
        Paragraph("Delivery figures", styles["Heading2"]),
    ]
    table = Table([[label, _value(figures[key])] for label, key in FIGURE_ROWS], colWidths=[110 * mm, 50 * mm])
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b8b8b8")),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm), Paragraph("Incidents", styles["Heading2"])]
    for drawing in report_drawings(figures):
        story += [drawing, Spacer(1, 4 * mm)]
    out = BytesIO()
    document = SimpleDocTemplate(
        out, pagesize=A4, title="Learning report", author=organisation, leftMargin=18 * mm, rightMargin=18 * mm
    )
    document.build(story)
    return out.getvalue()


def drawings_svg(figures: Mapping[str, Any]) -> list[str]:
    """The report's charts as SVG, for the admin's figures page."""
    from reportlab.graphics import renderSVG

    return [renderSVG.drawToString(drawing) for drawing in report_drawings(figures)]
