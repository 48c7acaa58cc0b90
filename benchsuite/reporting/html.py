"""The document (document.py) as one self-contained page, `index.html`: the tables sort
when their header is clicked (inline script; numeric columns by the leading number of each
cell), the figures are linked relatively (figures/), nothing is fetched from a network."""

from __future__ import annotations

import html
import re

from benchsuite.reporting.document import Document, Notes, Table

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 90em;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[aria-sort=ascending]::after { content: " ▲"; }
th[aria-sort=descending]::after { content: " ▼"; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
.legend { font-size: 13px; color: #444; max-width: 70em; }
"""

SCRIPT = """
function sortKey(cell, numeric) {
  var text = cell.textContent.trim();
  if (!numeric) return text.toLowerCase();
  var match = text.match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);
  return match ? parseFloat(match[0]) : Infinity;
}
function sortTable(th) {
  var table = th.closest("table"), body = table.tBodies[0];
  var column = Array.prototype.indexOf.call(th.parentNode.children, th);
  var numeric = th.dataset.numeric === "1";
  var ascending = th.getAttribute("aria-sort") !== "ascending";
  Array.prototype.forEach.call(th.parentNode.children,
                               function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = sortKey(a.cells[column], numeric), y = sortKey(b.cells[column], numeric);
    return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
  });
  rows.forEach(function (row) { body.appendChild(row); });
}
document.querySelectorAll("th").forEach(function (th) {
  th.addEventListener("click", function () { sortTable(th); });
});
"""


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def table_html(table: Table, number: int) -> list[str]:
    lines = [f"<p>{_inline(table.caption)}</p>"] if table.caption else []
    lines.append(f'<table class="sortable" id="table-{number}"><thead><tr>')
    lines += [f'<th data-numeric="{int(i in table.numeric)}">{html.escape(h)}</th>'
              for i, h in enumerate(table.header)]
    lines.append("</tr></thead><tbody>")
    for row in table.rows:
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
                     + "</tr>")
    lines.append("</tbody></table>")
    return lines + ([f'<p class="legend">{_inline(table.legend)}</p>'] if table.legend else [])


def notes_html(notes: Notes) -> list[str]:
    lines = [f"<p>{_inline(notes.text)}</p>"] if notes.text else []
    if notes.code:
        return lines + ["<pre><code>" + html.escape("\n".join(notes.items)) + "</code></pre>"]
    if notes.items:
        lines += ["<ul>", *(f"<li>{_inline(item)}</li>" for item in notes.items), "</ul>"]
    return lines


def render(document: Document) -> str:
    body, number = [f"<h1>{html.escape(document.title)}</h1>"], 0
    for notes in document.preamble:
        body += notes_html(notes)
    body.append("<nav><ul>" + "".join(
        f'<li><a href="#{html.escape(s.title)}">{html.escape(s.title)}</a></li>'
        for s in document.sections) + "</ul></nav>")
    for section in document.sections:
        body += [f'<h2 id="{html.escape(section.title)}">{html.escape(section.title)}</h2>',
                 f"<p>{_inline(section.intro)}</p>"]
        for table in section.tables:
            number += 1
            body += table_html(table, number)
        for notes in section.notes:
            body += notes_html(notes)
        body += [f'<p><img src="figures/{html.escape(name)}" alt="{html.escape(name)}"></p>'
                 for name in section.figures]
    return "\n".join(["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                      f"<title>{html.escape(document.title)}</title>",
                      f"<style>{STYLE}</style></head><body>", *body,
                      f"<script>{SCRIPT}</script>", "</body></html>", ""])
