"""Markdown -> a chapter of blocks, with markdown-it-py (CommonMark).

What is read, and how (the same rule as EPUB's, see epub.py):
- headings, paragraphs, block quotes and list items are read; a list item
  without closing punctuation gets a full stop so it is read as a sentence;
- emphasis, strong and strike-through are read as plain text; inline code is
  read as its words; link text is read, the URL never is; a link whose text
  is its URL, an autolink (<https://...>) and a bare URL are dropped;
- skipped: code blocks, tables, images (alt text too), raw HTML blocks,
  footnote definitions ([^1]: ...) and footnote markers ([^1]);
- inline HTML: the tags are dropped and the text inside them is read, except
  inside elements that are not prose by the tables of rules.py, which EPUB
  uses too (page-break markers, note references, footnotes, hidden
  elements, Gutenberg boilerplate, script, style, svg, math and similar),
  and a <sup>/<a> linking to "#..." whose text is only a mark like 1, [2],
  *; <br> is a line break;
- a heading or paragraph with no letter or digit (emoji or punctuation
  only) is not read;
- a thematic break (---, * * *), an <hr> block, or a paragraph made only of
  ornaments such as "⁂" or "~ ~ ~" is a scene break;
- an HTML comment alone on its line is a voice switch when it reads
  `<!-- voice: NAME -->`, `<!-- emotion: sad, speed: 0.9 -->` (settings
  voice, emotion, speed, language) or `<!-- narrator -->` (back to the
  chapter's voice); a comment that starts like a switch but has an unknown
  setting is an error; any other comment is skipped;
- a hard line break (two spaces or a backslash at a line end) is kept as a
  line break, read as a short pause (verse);
- YAML front matter (between --- lines at the top) is skipped; its `title`
  names the chapter.

A chapter's title is, in order: `title:` in audiobook.yml, the front matter's
title, the first heading, the file name without a leading number
("03-the-storm.md" -> "The Storm").

The file must be a regular file of at most 20 MiB, UTF-8, without NUL bytes
(see guard.py and read_source_text).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from pipeline.book import Block, Chapter
from pipeline.errors import InputError, Problem
from pipeline.sources.guard import MAX_MARKDOWN_BYTES, read_capped
from pipeline.sources.rules import is_not_prose, title_from_file_name
from pipeline.sources.text import (
    DROPPED,
    NOTE_MARK,
    SCENE_BREAK_TEXT,
    as_sentence,
    is_blank,
    is_speakable,
    normalize,
)

_SWITCH = re.compile(r"^\s*<!--\s*(.*?)\s*-->\s*$", re.DOTALL)
_SWITCH_KEYS = ("voice", "emotion", "speed", "language")
_SWITCH_START = re.compile(r"^(voice|emotion|speed|language)\s*:", re.IGNORECASE)
_FOOTNOTE_DEF = re.compile(r"^ {0,3}\[\^[^\]\s]+\]:")
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(?:(.*?)\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HR_BLOCK = re.compile(r"^\s*<hr\b[^>]*>\s*$", re.IGNORECASE)

# Inline HTML.
_TAG = re.compile(r"^<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>$",
                  re.DOTALL)
_ATTR = re.compile(r"([A-Za-z_:][-\w:.]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "source", "track", "wbr"})

_md = MarkdownIt("commonmark").enable(["table", "strikethrough"])


# ------------------------------------------------------------------ reading the file


def read_source_text(path: Path, display: str) -> str:
    """The file's text, or an InputError naming what is wrong with it.

    The file must be a regular file of at most MAX_MARKDOWN_BYTES (see
    guard.py). A NUL byte anywhere means it is not text: near the start it
    is called binary, further on the message names the line, so a damaged
    file is never half read.
    """
    raw = read_capped(path, display, MAX_MARKDOWN_BYTES, "a Markdown file")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
        raise _fail(display, "is UTF-16 or UTF-32 text; save it as UTF-8")
    if b"\x00" in raw[:8192]:
        raise _fail(display, "is a binary file, not Markdown text")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError(Problem(display, raw.count(b"\n", 0, nul) + 1, None,
                                 "holds a NUL byte, which text never does (a damaged or "
                                 "binary file?); remove it"))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if _looks_binary(raw[:8192]):
            raise _fail(display, "is a binary file, not Markdown text") from None
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(Problem(display, line, None,
                                 f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                                 "save it as UTF-8")) from None
    if is_blank(text):
        raise _fail(display, "is empty; write some text or remove it from the chapters")
    return text


def _looks_binary(head: bytes) -> bool:
    controls = sum(1 for b in head if b < 0x20 and b not in b"\t\n\r\f")
    return controls > len(head) // 20


def _fail(display: str, message: str) -> InputError:
    return InputError(Problem(display, None, None, message))


# ------------------------------------------------------------------ voice switches


def parse_switch(comment: str) -> tuple[tuple[str, str], ...] | None:
    """Settings of a voice-switch comment; () for narrator; None if not a switch."""
    settings, error = _switch(comment)
    return None if error else settings


def _switch(comment: str) -> tuple[tuple[tuple[str, str], ...] | None, str | None]:
    """(settings, None) for a switch; (None, None) for another comment; (None, why) if broken."""
    match = _SWITCH.match(comment)
    if not match:
        return None, None
    body = match.group(1).strip()
    if body.lower() == "narrator":
        return (), None
    if not _SWITCH_START.match(body):
        return None, None
    settings = []
    for part in body.split(","):
        key, sep, value = part.partition(":")
        key = key.strip().lower()
        if not sep or key not in _SWITCH_KEYS:
            return None, (f"{part.strip()!r} is not a voice setting; a switch reads "
                          "<!-- voice: NAME, emotion: E, speed: S, language: L --> "
                          "or <!-- narrator -->")
        if not value.strip():
            return None, f"{key} has no value; write {key}: VALUE"
        settings.append((key, value.strip()))
    return tuple(settings), None


# ------------------------------------------------------------------ inline text


@dataclass
class _Element:
    """An open inline HTML element and the text read inside it so far."""

    name: str
    skip: bool = False
    in_page_link: bool = False  # <a href="#...">: a note reference if its text is a mark
    held_note: bool = False  # a note reference was dropped from inside it
    parts: list[str] = field(default_factory=list)


def _attributes(raw: str) -> dict[str, str]:
    return {m.group(1).lower(): (m.group(2) or "").strip("\"'") for m in _ATTR.finditer(raw)}


class _InlineReader:
    """Collects the readable text of one inline token (see the module's rule)."""

    def __init__(self) -> None:
        self.stack = [_Element("")]

    def text(self, text: str) -> None:
        self.stack[-1].parts.append(text)

    def html(self, raw: str) -> None:
        match = _TAG.match(raw.strip())
        if not match:
            return  # a comment, a declaration or a processing instruction
        closing, name, attrs, self_closing = match.groups()
        name = name.lower()
        if closing:
            self.close(name)
        elif name == "br":
            self.text("\n")
        elif name not in _VOID and not self_closing:
            parsed = _attributes(attrs)
            in_page = name == "a" and parsed.get("href", "").startswith("#")
            self.stack.append(_Element(name, is_not_prose(name, parsed), in_page))

    def close(self, name: str) -> None:
        if not any(e.name == name for e in self.stack[1:]):
            return  # a stray closing tag
        while True:
            element = self.stack.pop()
            self._fold(element)
            if element.name == name:
                return

    def _fold(self, element: _Element) -> None:
        """Hand a closed element's text to its parent, unless it is not prose."""
        text = "".join(element.parts)
        parent = self.stack[-1]
        if element.skip:
            text = DROPPED
        elif element.in_page_link and NOTE_MARK.match(normalize(text)):
            parent.held_note = True
            text = DROPPED
        elif element.name == "sup" and element.held_note:
            text = DROPPED  # <sup>[<a href="#n1">1</a>]</sup>: the brackets go too
        parent.parts.append(text)

    def result(self) -> str:
        while len(self.stack) > 1:  # elements left open end with the paragraph
            self._fold(self.stack.pop())
        return "".join(self.stack[0].parts)


def _inline_text(token: Token) -> str:
    reader = _InlineReader()
    children = token.children or []
    url_link = 0  # inside a link whose text is its URL
    for i, child in enumerate(children):
        kind = child.type
        if kind == "html_inline":
            reader.html(child.content)
        elif kind in ("text", "code_inline") and not url_link:
            reader.text(child.content)
        elif kind == "image":
            reader.text(DROPPED)
        elif kind == "softbreak":
            reader.text(" ")
        elif kind == "hardbreak":
            reader.text("\n")
        elif kind == "link_open":
            nxt = children[i + 1] if i + 1 < len(children) else None
            if child.markup == "autolink" or (
                    nxt is not None and nxt.type == "text"
                    and nxt.content.strip() == (child.attrGet("href") or "")):
                url_link += 1
                reader.text(DROPPED)
        elif kind == "link_close" and url_link:
            url_link -= 1
        # image: skipped, alt text too (its children are not walked)
    return reader.result()


# ------------------------------------------------------------------ blocks


def blank_footnote_definitions(text: str) -> str:
    """Empty the lines of footnote definitions, keeping the line count.

    A definition starts with `[^label]:` and runs on through its lazy and
    indented continuation lines, and through blank lines followed by a line
    indented by four spaces or a tab (a further paragraph of the note).
    """
    lines = text.split("\n")
    inside = False
    for i, line in enumerate(lines):
        if _FOOTNOTE_DEF.match(line):
            inside = True
        elif inside and not line.strip():
            nxt = next((n for n in itertools.islice(lines, i + 1, None) if n.strip()), "")
            inside = nxt.startswith(("    ", "\t")) and not _FOOTNOTE_DEF.match(nxt)
            continue
        elif inside and _starts_block(line):
            inside = False
        if inside:
            lines[i] = ""
    return "\n".join(lines)


def _starts_block(line: str) -> bool:
    """A line that ends a footnote's lazy continuation: a heading, a break, a fence."""
    return bool(re.match(r" {0,3}(#{1,6}(\s|$)|([-*_])(\s*\3){2,}\s*$|```|~~~|<!--)", line))


def blocks_from_markdown(text: str, line_offset: int = 0, display: str = "") -> list[Block]:
    """The blocks of a Markdown text; raise InputError for broken voice switches."""
    tokens = _md.parse(blank_footnote_definitions(text))
    blocks: list[Block] = []
    problems: list[Problem] = []
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
        elif tok.type == "hr" or (tok.type == "html_block" and _HR_BLOCK.match(tok.content)):
            blocks.append(Block("scene", line=line))
        elif tok.type == "html_block":
            settings, error = _switch(tok.content)
            if error:
                problems.append(Problem(display, line, None, f"voice switch: {error}"))
            elif settings is not None:
                blocks.append(Block("switch", line=line, settings=settings))
        elif tok.type == "inline":
            block = _text_block(tokens[i - 1], tok, line, list_depth)
            if block is not None:
                blocks.append(block)
    if problems:
        raise InputError(problems)
    return blocks


def _text_block(opener: Token, tok: Token, line: int | None, list_depth: int) -> Block | None:
    content = normalize(_inline_text(tok))
    if not content:
        return None
    if SCENE_BREAK_TEXT.match(content):
        return Block("scene", line=line)
    if not is_speakable(content):
        return None  # emoji or punctuation only: nothing to say, nothing to pay for
    if opener.type == "heading_open":
        return Block("heading", content, line=line, level=int(opener.tag[1]))
    if opener.type != "paragraph_open" or _FOOTNOTE_DEF.match(tok.content):
        return None
    if list_depth:
        content = as_sentence(content)
    return Block("paragraph", content, line=line)


def strip_front_matter(text: str) -> tuple[str, int]:
    """Drop a YAML front-matter block; return the rest and its line offset."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, 0
    return text[match.end():], match.group(0).count("\n")


def front_matter_title(text: str) -> str | None:
    """`title:` of the front matter, if it has one."""
    match = _FRONT_MATTER.match(text)
    if not match or not match.group(1):
        return None
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return None
    title = data.get("title") if isinstance(data, dict) else None
    if isinstance(title, (str, int, float)) and not isinstance(title, bool):
        return normalize(str(title)) or None
    return None


def load_markdown(path: Path, display: str, title: str | None = None, entry: int = 0,
                  line: int | None = None) -> Chapter:
    source = read_source_text(path, display)
    text, offset = strip_front_matter(source)
    blocks = blocks_from_markdown(text, offset, display)
    if not any(b.text for b in blocks):
        raise _fail(display, "has no text to read (only code, tables, images or markup)")
    title = (title or front_matter_title(source)
             or next((b.text for b in blocks if b.kind == "heading"), None)
             or title_from_file_name(path))
    return Chapter(title=title, source=display, blocks=tuple(blocks), entry=entry, line=line)
