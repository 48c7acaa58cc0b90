"""The document (document.py) as Markdown: LEADERBOARD.md."""

from __future__ import annotations

from tabulate import tabulate

from benchsuite.reporting.document import Document, Notes, Table


def table_lines(table: Table) -> list[str]:
    lines = [table.caption, ""] if table.caption else []
    lines += [tabulate(table.rows, table.header, tablefmt="github", disable_numparse=True), ""]
    return lines + ([table.legend, ""] if table.legend else [])


def notes_lines(notes: Notes) -> list[str]:
    if notes.code:
        return [notes.text, "", "```", *notes.items, "```", ""] if notes.text else \
            ["```", *notes.items, "```", ""]
    lines = [notes.text, ""] if notes.text else []
    return lines + ([*(f"- {item}" for item in notes.items), ""] if notes.items else [])


def render(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    for notes in document.preamble:
        lines += notes_lines(notes)
    for section in document.sections:
        lines += [f"## {section.title}", "", section.intro, ""]
        for table in section.tables:
            lines += table_lines(table)
        for notes in section.notes:
            lines += notes_lines(notes)
        lines += [line for name in section.figures for line in (f"![{name}](figures/{name})",
                                                                  "")]
    return "\n".join(lines)
