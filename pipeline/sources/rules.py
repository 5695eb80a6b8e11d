"""The reading rule's tables, shared by every source: what is not prose.

Markdown's inline HTML and EPUB's XHTML are read by this one rule, so the
same markup reads the same from either source. An element is skipped (its
text is never read) when:
- its tag is not prose: script, style, images, SVG, MathML, tables, <pre>,
  forms, navigation, figures, ruby annotations (rt, rp), templates;
- its epub:type or role (prefixes such as `z3998:` or `doc-` ignored) is a
  note reference, a footnote or endnote, a page-break marker, a page list,
  a table of contents or landmarks, or a back link;
- its class names a page number, a page break, a note or note anchor, a
  hidden element, or Project Gutenberg's boilerplate (`pg-boilerplate`);
- it is hidden: the `hidden` attribute, aria-hidden="true", or a style with
  display:none or visibility:hidden.

Also here: a chapter title from a file name, and an image's kind from its
bytes, each written once for every caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

SKIP_TAGS = frozenset({
    "head", "script", "style", "img", "svg", "math", "picture", "video", "audio", "object",
    "embed", "iframe", "canvas", "map", "table", "pre", "form", "button", "input", "select",
    "textarea", "nav", "figure", "rt", "rp", "template", "noscript", "meta", "link",
})
SKIP_TYPES = frozenset({
    "noteref", "footnote", "endnote", "rearnote", "note", "footnotes", "endnotes", "rearnotes",
    "pagebreak", "page-list", "annoref", "biblioref", "glossref", "toc", "landmarks", "backlink",
})
SKIP_CLASSES = frozenset({
    "pagenum", "page-number", "pagenumber", "pageno", "page-num", "pagebreak", "page-break",
    "footnote", "footnotes", "endnote", "endnotes", "fnanchor", "noteref", "footnote-ref",
    "hidden", "pg-boilerplate",  # Project Gutenberg's header and licence
})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def type_tokens(epub_type: str, role: str) -> set[str]:
    """epub:type and DPUB-ARIA role tokens, without prefixes: 'z3998:poem' -> 'poem'."""
    tokens = set()
    for token in f"{epub_type} {role}".lower().split():
        token = token.rpartition(":")[2]
        tokens.add(token.removeprefix("doc-"))
    return tokens


def is_not_prose(tag: str, attrs: Mapping[str, str]) -> bool:
    """True if an element is skipped by the reading rule (see the module).

    `tag` is the lower-case local name; `attrs` maps lower-case attribute
    names to values, with the EPUB type under "epub:type" (present even when
    empty for a valueless attribute such as `hidden`).
    """
    if tag in SKIP_TAGS:
        return True
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").lower() == "true":
        return True
    if _HIDDEN_STYLE.search(attrs.get("style") or ""):
        return True
    if type_tokens(attrs.get("epub:type") or "", attrs.get("role") or "") & SKIP_TYPES:
        return True
    return bool(set((attrs.get("class") or "").lower().split()) & SKIP_CLASSES)


# ------------------------------------------------------------------ titles from names

_LEADING_NUMBER = re.compile(r"^\d+[\s._-]+(?=\S)")


def title_from_file_name(path: str | PurePath, fallback: str = "Chapter") -> str:
    """'03-the-storm.md' -> 'The Storm'; '1984.md' -> '1984'; 'ch_02.xhtml' -> 'Ch 02'.

    A leading number is a position, not part of the title, unless it is all
    the name has. Words keep their own capitals past the first letter.
    """
    stem = PurePath(path).stem
    words = _LEADING_NUMBER.sub("", stem).replace("-", " ").replace("_", " ").split()
    return " ".join(w[:1].upper() + w[1:] for w in words) or stem or fallback


# ------------------------------------------------------------------ images

_IMAGE_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"),
                (b"GIF89a", "gif"))
_SVG_ROOT = re.compile(rb"<svg[\s>/]")


def image_kind(data: bytes) -> str | None:
    """'jpg', 'png', 'gif', 'webp' or 'svg' by the bytes themselves, else None.

    A name or a declared media type can lie; the first bytes do not. SVG is
    XML: it is recognised by an `<svg` root element near the start (after an
    XML declaration, comments or a doctype), never by the extension.
    """
    for magic, kind in _IMAGE_MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<?xml", b"<svg", b"<!--", b"<!DOCTYPE svg", b"<!doctype svg")):
        if _SVG_ROOT.search(head):
            return "svg"
    return None
