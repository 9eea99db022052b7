"""Self-contained HTML reports: tables and matplotlib figures embedded as base64 PNG, no network needed."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are written on servers without a display
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["Report", "figure_to_html"]

_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1180px;
       color: #1d2530; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d8dee6; }
.sub { color: #5b6675; margin-top: 0; }
.table-wrap { overflow-x: auto; margin: .8rem 0; }
table { border-collapse: collapse; font-size: .92rem; }
td { overflow-wrap: anywhere; } td:not(.num) { min-width: 6ch; }
th, td { border-bottom: 1px solid #e3e8ee; padding: .3rem .7rem; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #c0392b; font-weight: 600; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #e3e8ee; }
figcaption { color: #5b6675; font-size: .9rem; }
.kpis { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.kpi { background: #f3f5f8; border-radius: 8px; padding: .6rem 1rem; min-width: 150px; }
.kpi b { display: block; font-size: 1.4rem; }
code, pre { background: #f3f5f8; border-radius: 4px; padding: .1rem .3rem; }
pre { padding: .6rem; overflow-x: auto; }
"""


def figure_to_html(fig: Figure, caption: str = "", *, alt: str = "") -> str:
    """Render a matplotlib figure as an inline PNG ``<figure>`` and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt or caption)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _cell(value: Any) -> str:
    if isinstance(value, _Raw):
        return f"<td>{value.html}</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


@dataclass(frozen=True)
class _Raw:
    html: str


@dataclass
class Report:
    """An HTML report built section by section.

    Examples
    --------
    >>> r = Report("Demo", subtitle="a test")
    >>> r.section("Numbers")
    >>> r.table(["name", "value"], [["a", 1.5]])
    >>> "<td class=\\"num\\">1.500</td>" in r.render()
    True
    """

    title: str
    subtitle: str = ""
    _parts: list[str] = field(default_factory=list)

    @staticmethod
    def raw(markup: str) -> _Raw:
        """Mark trusted markup (for example a status badge) to be placed in a table cell unescaped."""
        return _Raw(markup)

    def section(self, heading: str, text: str = "") -> None:
        self._parts.append(f"<h2>{html.escape(heading)}</h2>")
        if text:
            self.paragraph(text)

    def paragraph(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def kpis(self, items: Sequence[tuple[str, str]]) -> None:
        cells = "".join(f'<div class="kpi"><b>{html.escape(v)}</b>{html.escape(k)}</div>' for k, v in items)
        self._parts.append(f'<div class="kpis">{cells}</div>')

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
        # Wide tables wrap their text within the page and scroll sideways past it, never cut a column off.
        self._parts.append(
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
        )

    def figure(self, fig: Figure, caption: str = "") -> None:
        self._parts.append(figure_to_html(fig, caption))

    def render(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}{''.join(self._parts)}</body></html>\n"
        )

    def write(self, path: str | os.PathLike[str]) -> Path:
        destination = Path(path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(self.render(), encoding="utf-8")
        return destination
