"""One renderer for every page the analysis writes: a page is data, two templates draw it.

The report, ``compare`` and ``history`` each build a :class:`Page`, a title and a list of
blocks (headings, text, bullet lists, tables, images); ``templates/page.html.j2`` and
``templates/page.md.j2`` turn any page into HTML and Markdown, so the two formats cannot drift
apart and escaping is done once (HTML by Jinja2's autoescape, a Markdown table cell's ``|`` and
line breaks by the ``md_cell`` filter).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#555;margin-top:.2em}
table{border-collapse:collapse;margin:1em 0;font-size:12.5px}
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f2f2f2}figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{color:#444;font-size:13px}.verdict{font-weight:bold;padding:1px 6px;border-radius:3px}
.supported{background:#d9f2d9}.not-supported{background:#f7d4d4}
.undecided{background:#eee}.equivalent{background:#dde8f7}.not-measured{background:#fff3cd}
.warn{background:#fff3cd;padding:.6em 1em;border-left:4px solid #e0a800}
"""


@dataclass(frozen=True)
class Heading:
    """A section heading; ``badge`` is a verdict shown beside it (its CSS class in ``tone``)."""

    text: str
    level: int = 2
    anchor: str = ""
    badge: str = ""
    tone: str = ""
    kind: str = "heading"


@dataclass(frozen=True)
class Text:
    """A paragraph: ``style`` is "" (plain), "note" (small print), "strong" or "em"."""

    text: str
    style: str = ""
    kind: str = "text"


@dataclass(frozen=True)
class Items:
    """A bullet list; ``warning`` draws it in a warning box; ``anchor`` names it in HTML."""

    lines: list[str]
    warning: bool = False
    anchor: str = ""
    kind: str = "items"


@dataclass(frozen=True)
class Table:
    """A table of strings; ``anchor`` is its HTML id."""

    headers: list[str]
    rows: list[list[Any]]
    anchor: str = ""
    kind: str = "table"


@dataclass(frozen=True)
class Image:
    """A PNG chart: embedded as a data URI in HTML when ``embed``, else linked beside the page."""

    title: str
    caption: str
    png: Path
    embed: bool = True
    kind: str = "image"


Block = Heading | Text | Items | Table | Image


@dataclass
class Page:
    """What a page says, independent of its format."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    subtitle: str = ""
    css: str = STYLE


def md_cell(value: Any) -> str:
    """A Markdown table cell: ``|`` escaped, line breaks folded into spaces."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def data_uri(png: Path) -> str:
    """The PNG as a data URI, so the HTML page stands alone."""
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("analysis", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(md_cell=md_cell, data_uri=data_uri)
    return environment


def render_html(page: Page) -> str:
    """The page as one HTML document."""
    return _environment().get_template("page.html.j2").render(page=page)


def render_markdown(page: Page, page_dir: Path) -> str:
    """The page as Markdown, figures linked relative to ``page_dir`` (where it is written)."""
    text = _environment().get_template("page.md.j2").render(page=page, page_dir=page_dir)
    return text.rstrip("\n") + "\n"
