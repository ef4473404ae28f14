"""User text shown in Markdown is text: no HTML elements, no links, no table cells of its own."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from demo.formatting import caption_md, plain_md, trace_md
from pipelines.core.results import MethodOutput
from pipelines.core.trace import TraceStep

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` ~~gone~~",
    "[link](https://evil.example) ![pic](https://evil.example/a.png)",
    "a | b | c",
    "# heading",
    "$$x^2$$",
    "line one\n\n- a list\n> a quote",
    "https://evil.example and www.evil.example",
]


def rendered(md: str) -> str:
    """HTML as CommonMark with GFM tables and strikethrough makes it (markdown-it, a Gradio
    dependency; the browser test covers Gradio's own renderer and its autolinks)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_md_renders_as_the_same_text(text):
    html = rendered(plain_md(text))
    for tag in ("<img", "<a ", "<strong", "<em", "<code", "<del", "<h1", "<table", "<li", "<block"):
        assert tag not in html, (text, html)
    # what the reader sees is what was typed (on one line)
    visible = html_lib.unescape(re.sub(r"<[^>]+>", "", html)).strip()
    assert visible == " ".join(text.split())


def test_plain_md_is_one_line():
    assert "\n" not in plain_md("a\nb\r\nc")


def test_trace_md_escapes_every_cell():
    out = MethodOutput(
        method="raw",
        prompt="<img src=x> | cell",
        trace=(TraceStep(part="<img src=x> | cell", source="base prompt", reason="as typed"),),
    )
    lines = trace_md(out)
    assert "<img" not in lines
    assert lines.count("\n") == 0  # one part, one line: the "|" made no table cell
    html = rendered(lines)
    assert "<img" not in html and html.count("<li>") == 1 and "<td>" not in html


def test_caption_md_escapes_errors():
    out = MethodOutput(method="inversion", error="no reference for <b>style</b>")
    assert "<b>" not in caption_md(out, "inversion")
    assert "<b>" not in trace_md(out)


def test_why_names_the_preference_measures_only_where_they_ran():
    from pipelines.core.measures import Measure, Measures

    off = Measure(reason="turned off on this server (BECOME_PREFERENCE_MEASURES=none)")
    ran = Measures(
        identity=Measure(0.5), style_text=Measure(0.2), prompt=Measure(0.3), pickscore=Measure(21.3)
    )
    step = (TraceStep(part="p", source="base prompt", reason="as typed"),)
    text = trace_md(MethodOutput(method="raw", prompt="p", trace=step, measures=ran))
    assert "- pick: +21.30, how much people would prefer" in text
    assert "hps" not in text and "face (pack)" not in text  # not run here: not listed
    text = trace_md(
        MethodOutput(method="raw", prompt="p", trace=step, measures=Measures(pickscore=off))
    )
    assert "pick" not in text and "BECOME_" not in text
    assert "- not checked for this picture: face, style, refs, prompt" in text  # why: Staff, API


def test_a_method_that_cannot_run_says_so_without_model_ids_or_commands():
    from pipelines.core.results import MethodOutput

    why = (
        "openai/clip-vit-large-patch14 is not in the Hugging Face cache at revision 32bd6428 and "
        "HF_HUB_OFFLINE is set; fill the cache with: python -m pipelines.weights fetch x"
    )
    out = MethodOutput(method="inversion", prompt="", error=why)
    for text in (caption_md(out, "inversion"), trace_md(out)):
        assert "not available on this server right now" in text and "Staff tab" in text
        assert "openai" not in text and "HF_HUB" not in text and "python -m" not in text
