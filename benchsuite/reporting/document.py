"""The leaderboard as data: a document of task sections, each with its tables, notes and
figures, that markdown.py and html.py render alike."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]
    legend: str = ""
    numeric: tuple[int, ...] = ()
    """Columns that sort as numbers (the leading number of each cell) in the HTML view."""


@dataclass
class Notes:
    """A paragraph, then a bullet list (either may be empty), or a code block."""

    text: str
    items: list[str] = field(default_factory=list)
    code: bool = False


@dataclass
class Section:
    title: str
    intro: str
    tables: list[Table] = field(default_factory=list)
    notes: list[Notes] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    """File names under the report's figures/ folder."""


@dataclass
class Document:
    title: str
    preamble: list[Notes]
    sections: list[Section]
