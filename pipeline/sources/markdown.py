"""Markdown -> a chapter of blocks, with markdown-it-py.

What is read, and how (the rule is the same for EPUB):
- headings, paragraphs, block quotes and list items are read; a list item
  without closing punctuation gets a full stop so it is read as a sentence;
- emphasis, strong and strike-through are read as plain text; inline code is
  read as its words; link text is read, the URL never is; bare URLs are
  dropped;
- code blocks, tables, images, raw HTML and footnote definitions are skipped;
  footnote markers ([^1]) are dropped;
- a thematic break (---, * * *) is a scene break;
- an HTML comment alone on its line is a voice switch when it reads
  `<!-- voice: NAME -->`, `<!-- emotion: sad, speed: 0.9 -->` or
  `<!-- narrator -->`; any other comment is skipped;
- a hard line break (two spaces or a backslash at a line end) is kept as a
  line break, read as a short pause (verse).
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from pipeline.book import Block, Chapter
from pipeline.errors import InputError, Problem
from pipeline.sources.text import normalize

_SWITCH = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$", re.DOTALL)
_SWITCH_KEYS = ("voice", "emotion", "speed", "language")
_FOOTNOTE_DEF = re.compile(r"^\[\^[^\]]+\]:")
_FRONT_MATTER = re.compile(r"\A---\r?\n.*?\r?\n(?:---|\.\.\.)\r?\n", re.DOTALL)
_SENTENCE_END = re.compile(r"[.!?…:;。！？」』\"'”’)]$")

_md = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def read_source_text(path: Path, display: str) -> str:
    """The file's text, or an InputError naming what is wrong with it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(Problem(display, None, None, "file not found")) from None
    except OSError as exc:
        raise InputError(Problem(display, None, None, f"cannot read: {exc.strerror}")) from None
    if b"\x00" in raw[:8192]:
        raise InputError(Problem(display, None, None, "is a binary file, not Markdown text"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            Problem(display, line, None, "is not UTF-8 text; save it as UTF-8")
        ) from None
    if not text.strip():
        raise InputError(Problem(display, None, None, "is empty; write some text or remove it"))
    return text


def parse_switch(comment: str) -> tuple[tuple[str, str], ...] | None:
    """Settings of a voice-switch comment; () for narrator; None if not a switch."""
    match = _SWITCH.match(comment)
    if not match:
        return None
    body = match.group(1).strip()
    if body.lower() == "narrator":
        return ()
    settings = []
    for part in body.split(","):
        key, sep, value = part.partition(":")
        key = key.strip().lower()
        if not sep or key not in _SWITCH_KEYS or not value.strip():
            return None
        settings.append((key, value.strip()))
    return tuple(settings)


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    skip_depth = 0
    for child in token.children or []:
        if child.type == "html_inline":
            continue
        if child.type == "image":
            continue
        if child.type in ("text", "code_inline"):
            if not skip_depth:
                parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif child.type == "link_open":
            href = child.attrGet("href") or ""
            # An autolink's text is its URL: nothing to read.
            if child.markup == "autolink" or child.info == "auto":
                skip_depth += 1
            elif href and _link_text_is_url(token, child):
                skip_depth += 1
        elif child.type == "link_close" and skip_depth:
            skip_depth -= 1
    return "".join(parts)


def _link_text_is_url(parent: Token, link_open: Token) -> bool:
    children = parent.children or []
    i = children.index(link_open)
    nxt = children[i + 1] if i + 1 < len(children) else None
    return bool(nxt and nxt.type == "text" and nxt.content == link_open.attrGet("href"))


def blocks_from_markdown(text: str, line_offset: int = 0) -> list[Block]:
    tokens = _md.parse(text)
    blocks: list[Block] = []
    skip_until: str | None = None
    list_depth = 0
    for i, tok in enumerate(tokens):
        if skip_until:
            if tok.type == skip_until:
                skip_until = None
            continue
        line = tok.map[0] + 1 + line_offset if tok.map else None
        if tok.type == "table_open":
            skip_until = "table_close"
        elif tok.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif tok.type == "hr":
            blocks.append(Block("scene", line=line))
        elif tok.type == "html_block":
            settings = parse_switch(tok.content)
            if settings is not None:
                blocks.append(Block("switch", line=line, settings=settings))
        elif tok.type == "inline":
            opener = tokens[i - 1]
            content = normalize(_inline_text(tok))
            if not content:
                continue
            if opener.type == "heading_open":
                level = int(opener.tag[1])
                blocks.append(Block("heading", content, line=line, level=level))
            elif opener.type == "paragraph_open":
                if _FOOTNOTE_DEF.match(tok.content):
                    continue
                if list_depth and not _SENTENCE_END.search(content):
                    content += "."
                blocks.append(Block("paragraph", content, line=line))
    return blocks


def strip_front_matter(text: str) -> tuple[str, int]:
    """Drop a YAML front-matter block; return the rest and its line offset."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, 0
    return text[match.end():], match.group(0).count("\n")


def load_markdown(path: Path, display: str, title: str | None = None, entry: int = 0,
                  line: int | None = None) -> Chapter:
    text, offset = strip_front_matter(read_source_text(path, display))
    blocks = blocks_from_markdown(text, offset)
    if not any(b.text for b in blocks):
        raise InputError(Problem(display, None, None, "has no text to read (only code, tables or markup)"))
    if title is None:
        title = next((b.text for b in blocks if b.kind == "heading"), None)
    if title is None:
        title = path.stem.replace("-", " ").replace("_", " ").strip().title()
    return Chapter(title=title, source=display, blocks=tuple(blocks), entry=entry, line=line)
