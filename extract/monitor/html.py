"""Pieces of self-contained HTML pages: matplotlib plots as embedded base64 PNGs, tables, and
sections that set each plot beside a table of its numbers. Used by the run report
(extract/monitor/report_page.py) and its quality section (extract/monitor/quality.py)."""
from __future__ import annotations

import base64
import html
import io


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display; PNGs only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(w: float = 5.5, h: float = 3.2):
    """A new (figure, axes) of w x h inches."""
    return pyplot().subplots(figsize=(w, h))


def png(fig) -> str:
    """The figure as an ``<img>`` with the PNG inline (base64); the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    pyplot().close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def html_table(header: list[str], rows: list[list]) -> str:
    """A ``<table>`` of escaped cells (None as an empty cell)."""
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e('' if c is None else str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bar(names: list[str], values: list[float], title: str, color=None, horizontal=False) -> str:
    """A bar plot (horizontal: first name on top) as an ``<img>``; "nothing to show" without names."""
    fig, ax = figure()
    if not names:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
    elif horizontal:
        ax.barh(names[::-1], values[::-1], color=color)
    else:
        ax.bar(names, values, color=color)
    ax.set_title(title)
    return png(fig)


def section(sid: str, title: str, parts: list[tuple[str, str]], intro: str = "") -> str:
    """A ``<section id=sid>``: the title, the intro (HTML), then each (plot, table) pair side by side."""
    rows = "".join(f'<div class="pair"><div class="plot">{img}</div><div class="tab">{tab}</div></div>' for img, tab in parts)
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{intro}{rows}</section>'
