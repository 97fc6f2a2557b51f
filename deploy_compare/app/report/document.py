"""A small document model (sections of paragraphs, tables, figures, notes) and its two renderers.

The section builders produce one `Document`; `to_markdown` and `to_html` render the same content, so
report.md and report.html can never disagree. Text uses a tiny inline markup that both renderers
understand: `**bold**`, `` `code` ``, `[text](#anchor)` (links only to anchors inside the report).
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Para:
    text: str


@dataclass
class Note:
    """A highlighted remark: kind = info | warn | missing."""

    text: str
    kind: str = "info"


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    footnotes: list[str] = field(default_factory=list)
    # rows whose index is listed here are shown as invalid (struck through / red in HTML)
    invalid_rows: set[int] = field(default_factory=set)


@dataclass
class Figure:
    path: str  # relative to the run folder, e.g. plots/latency_throughput.png
    caption: str


Block = Para | Note | Bullets | Table | Figure


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section] = field(default_factory=list)


# ---------------------------------------------------------------- markdown

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", "", doc.subtitle, "", "Contents: " + " · ".join(
        f"[{s.title}](#{s.anchor})" for s in doc.sections), ""]
    for section in doc.sections:
        out += [f'<a id="{section.anchor}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            out += _md_block(block) + [""]
    return "\n".join(out).rstrip() + "\n"


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Para):
        return [block.text]
    if isinstance(block, Note):
        label = {"info": "Note", "warn": "Warning", "missing": "Missing"}[block.kind]
        return [f"> **{label}:** {block.text}"]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(_md_cell(h) for h in block.headers) + " |",
                 "|" + "|".join(" --- " for _ in block.headers) + "|"]
        for i, row in enumerate(block.rows):
            cells = [_md_cell(c) for c in row]
            if i in block.invalid_rows:
                cells[0] = f"~~{cells[0]}~~ INVALID"
            lines.append("| " + " | ".join(cells) + " |")
        if block.footnotes:
            lines += [""] + [f"{note}  " for note in block.footnotes]
        return lines
    if isinstance(block, Figure):
        return [f"![{block.caption}]({block.path})", "", f"*{block.caption}*"]
    raise TypeError(f"unknown block type {type(block).__name__}")


# ---------------------------------------------------------------- html

_LINK = re.compile(r"\[([^\]]+)\]\((#[A-Za-z0-9_-]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")
_STRIKE = re.compile(r"~~(.+?)~~")
_ITALIC = re.compile(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])")  # *text*, never the star after a number


def inline_html(text: str) -> str:
    """Escape, then turn the inline markup into HTML. Links can only point at anchors (#...)."""
    out = html.escape(text, quote=True)
    out = _CODE.sub(r"<code>\1</code>", out)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    out = _STRIKE.sub(r"<s>\1</s>", out)
    out = _ITALIC.sub(r"<em>\1</em>", out)
    out = _LINK.sub(r'<a href="\2">\1</a>', out)
    return out.replace("\n", "<br>").replace("&lt;br&gt;", "<br>")


def embed_image(path: Path) -> str:
    """A data: URI for a PNG or SVG file, so the HTML stays one self-contained file."""
    mime = {".png": "image/png", ".svg": "image/svg+xml"}[path.suffix.lower()]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def to_html(doc: Document, run_dir: Path) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("deploy_compare.app.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["inline"] = lambda text: jinja2.utils.markupsafe.Markup(inline_html(text))
    env.globals["kind"] = lambda block: type(block).__name__.lower()
    env.globals["embed"] = lambda rel: embed_image(Path(run_dir) / rel)
    return env.get_template("report.html.j2").render(doc=doc)
