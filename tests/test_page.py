"""One renderer: any page reads the same in HTML and Markdown, escaped once for each."""

from __future__ import annotations

import re
from pathlib import Path

from analysis.page import Heading, Image, Items, Page, Table, Text, render_html, render_markdown

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da6300010000050001a5f645400000000049454e44ae426082"
)


def test_a_page_says_the_same_in_both_formats_and_escapes_each_once(tmp_path: Path) -> None:
    """Bugs caught: compare's Markdown left a '|' in a header unescaped (the table gained a
    column), and each page had its own hand-written HTML and Markdown to keep in step."""
    png = tmp_path / "figures" / "chart.png"
    png.parent.mkdir()
    png.write_bytes(PNG)
    page = Page("A <run> | B", [
        Heading("Verdict", anchor="v", badge="SUPPORTED", tone="supported"),
        Items(["a < b", "c | d"], anchor="list"),
        Table(["scheme | store", "p99"], [["jwt-HS256", "1 | 2 <ms>"]], "t"),
        Text("small print", "note"),
        Image("Chart", "what it shows", png),
    ])  # fmt: skip
    markdown = render_markdown(page, tmp_path)
    assert "| scheme \\| store | p99 |\n|---|---|\n| jwt-HS256 | 1 \\| 2 <ms> |\n" in markdown
    assert "## Verdict: **SUPPORTED**\n\n- a < b\n- c | d\n" in markdown
    assert "![Chart](figures/chart.png)\n\n*Chart.* what it shows\n" in markdown
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")
    html = render_html(page)
    assert "<title>A &lt;run&gt; | B</title>" in html
    assert "<th>scheme | store</th><th>p99</th>" in html
    assert "<td>1 | 2 &lt;ms&gt;</td>" in html
    assert "<h2 id='v'>Verdict <span class='verdict supported'>SUPPORTED</span></h2>" in html
    assert "<ul id='list'><li>a &lt; b</li><li>c | d</li></ul>" in html
    assert re.search(r"<img alt='Chart' src='data:image/png;base64,[A-Za-z0-9+/=]+'>", html)
    assert "<p class='sub'>small print</p>" in html
