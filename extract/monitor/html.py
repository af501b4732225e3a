"""Pieces of self-contained HTML pages: matplotlib plots as embedded base64 PNGs, tables, and
sections that set each plot beside a table of its numbers. Used by the run report
(extract/monitor/report_page.py) and its quality section (extract/monitor/quality.py).

Every string from data (ids, sources, paths, entity texts, labels, error messages) goes into a
page through ``esc`` (or ``html_table``, which escapes each cell); only markup the project writes
itself is put in as it is."""
from __future__ import annotations

import base64
import html
import io


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display; PNGs only), with mathtext off: labels and
    tick names are data (entity texts, error reasons), and ``$...$`` in one must show as typed, not
    be parsed as TeX (which fails on e.g. ``$\\frac{$``)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
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


def esc(x) -> str:
    """``x`` as text safe in HTML content and in quoted attribute values (None as empty)."""
    return html.escape("" if x is None else str(x), quote=True)


def html_table(header: list[str], rows: list[list]) -> str:
    """A ``<table>`` of escaped cells (None as an empty cell)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
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
    """A ``<section id=sid>``: the title (text), the intro (HTML the caller escaped), then each (plot,
    table) pair (HTML) side by side."""
    rows = "".join(f'<div class="pair"><div class="plot">{img}</div><div class="tab">{tab}</div></div>'
                   for img, tab in parts)
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{intro}{rows}</section>'
