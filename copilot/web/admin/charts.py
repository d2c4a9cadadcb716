"""Plotly figures for the analytics page, built here and drawn by the browser.

Plotly's own JavaScript bundle is served by the app (`/admin/vendor/plotly.min.js`), so
the charts work with no internet. Every chart also has a table beside it on the page.
"""

from __future__ import annotations

import plotly.graph_objects as go

from copilot.review.analytics import Usage

LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 40, "b": 40},
    "height": 280,
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
}


#: Whole days on a date axis; whole numbers on a count axis.
DAYS_AXIS: dict[str, object] = {"type": "date", "tickformat": "%b %d", "dtick": 86_400_000}
COUNT_AXIS: dict[str, object] = {"tickformat": "d", "rangemode": "tozero"}


def _figure(title: str, *traces: go.BaseTraceType, **axes: dict[str, object]) -> str:
    figure = go.Figure(data=list(traces))
    figure.update_layout(title={"text": title, "x": 0}, **LAYOUT, **axes)
    return str(figure.to_json())


def plain(label: str) -> str:
    """A label Plotly shows as written: Plotly reads <b>, <a href=...> and the like in
    labels as markup, and a file name is the uploader's choice. Entities it turns back
    into the characters they stand for, as text."""
    return label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def usage_charts(usage: Usage) -> dict[str, str]:
    """Chart name -> figure JSON."""
    days = [day.day.isoformat() for day in usage.days]
    charts = {
        "per_day": _figure(
            "Questions and active users per day",
            go.Bar(x=days, y=[d.questions for d in usage.days], name="questions"),
            go.Scatter(
                x=days,
                y=[d.active_users for d in usage.days],
                name="active users",
                mode="lines+markers",
            ),
            xaxis=DAYS_AXIS,
            yaxis=COUNT_AXIS,
        ),
        "feedback": _figure(
            "Feedback",
            go.Pie(
                labels=["thumbs up", "thumbs down"],
                values=[usage.thumbs_up, usage.thumbs_down],
                hole=0.5,
                sort=False,
            ),
        ),
    }
    if usage.top_files:
        names, counts = zip(*reversed(usage.top_files), strict=True)
        charts["top_files"] = _figure(
            "Most cited files",
            go.Bar(x=list(counts), y=[plain(name) for name in names], orientation="h"),
            xaxis=COUNT_AXIS,
            yaxis={"automargin": True},
        )
    if usage.busiest_departments:
        codes, counts = zip(*usage.busiest_departments, strict=True)
        charts["departments"] = _figure(
            "Questions per department",
            go.Bar(x=[plain(code) for code in codes], y=list(counts)),
            yaxis=COUNT_AXIS,
        )
    return charts
