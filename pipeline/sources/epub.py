"""EPUB -> chapters of blocks, read safely.

Chapters. The spine gives the reading order. Each spine document is one
chapter, titled by the first entry of the table of contents (EPUB 3 nav,
else EPUB 2 NCX; nested entries included) that points into it, else by its
first heading. A document the TOC reaches only through anchors
(`ch.xhtml#poem-3`, never `ch.xhtml` alone) holds several chapters and is
cut at those anchors; a document the TOC names as a whole stays one chapter,
and its nested entries are sections inside it. A piece with no TOC entry and
no heading continues the chapter before it (split files); documents with
nothing to read (an image-only cover) give no chapter.

Front and back matter is left out unless `include_matter: true`. It is
recognised, in this order, by the document's own `epub:type` or `role`
(on <html>, <body> or a single wrapper inside it), by the EPUB 3 landmarks,
by the EPUB 2 guide, by its TOC title, and otherwise by the heuristic in
`matter_by_heuristic`. Matter means: cover, title and half-title pages,
series page, imprint, copyright page, colophon, dedication, a whole-page
epigraph, table of contents, lists of illustrations or tables, index,
endnotes and footnotes, acknowledgements, bibliography, glossary, credits,
"about the author" and "also by" pages. Prefaces, forewords, introductions,
prologues, epilogues and afterwords are read.

What is read, and how: the rule of markdown.py, applied to XHTML.
- h1-h6 are headings; p, div, blockquote, li, dt and dd are paragraphs; a
  list item without closing punctuation gets a full stop;
- <br> is a verse line break ("\\n" inside the paragraph); inside a poem
  (epub:type z3998:poem/verse/song/hymn, or class poem/verse/stanza) a
  line-level element (class line, l, i0-i9, or a child of a stanza) also ends
  a line rather than the paragraph;
- <hr>, an element classed as a scene or section break, a paragraph with no
  letters or digits such as "* * *", and a <section> that starts without a
  heading after text are scene breaks;
- link text is read, URLs never are;
- skipped, by the tables of rules.py that Markdown shares, plus note-mark
  links: noterefs (epub:type noteref, role doc-noteref, and links whose
  text is only a note mark such as 1, [2], * or a dagger), footnote and
  endnote asides, page-break markers (epub:type pagebreak, role
  doc-pagebreak, class pagenum), hidden text (hidden, aria-hidden,
  display:none or visibility:hidden), images, SVG, MathML, tables, <pre>,
  scripts, styles, forms, ruby annotations (rt, rp), navigation lists, and
  Project Gutenberg's boilerplate (class pg-boilerplate: header and licence).
Every text goes through `normalize`, so invisible characters never reach the
service.

Safety (see docs/epub.md). The zip is opened here, not by ebooklib, whose
reader reads every manifest member whole with no size cap. Members are read
in chunks against a per-member and a total cap; declared sizes are checked
first. XML is parsed by lxml with entity resolution, DTD loading and network
off, and a member that declares entities is refused. Every failure is an
InputError naming the file.
"""

from __future__ import annotations

import html.entities
import logging
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lxml import etree

from pipeline.book import Block, Chapter
from pipeline.errors import InputError, Problem
from pipeline.sources.guard import check_regular
from pipeline.sources.rules import image_kind, is_not_prose, title_from_file_name, type_tokens
from pipeline.sources.select import describe_choices, select_positions
from pipeline.sources.text import (
    NOTE_MARK,
    SCENE_BREAK_TEXT,
    as_sentence,
    is_speakable,
    normalize,
)

# Caps: a real EPUB's largest member is a cover image or a long chapter, a
# few MiB; the whole book rarely passes 100 MiB. Memory stays near the caps.
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20
MAX_MEMBERS = 20_000
_CHUNK = 2**16

_XHTML_TYPES = ("application/xhtml+xml", "text/html", "application/html+xml")
# Font obfuscation is not DRM: the text is still readable.
log = logging.getLogger("pipeline")

_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}

MATTER_TYPES = frozenset({
    "cover", "titlepage", "halftitlepage", "halftitle", "fulltitle", "seriespage",
    "series-page", "imprint", "imprimatur", "copyright-page", "copyright", "colophon",
    "dedication", "epigraph", "toc", "toc-brief", "landmarks", "page-list", "loa", "loi",
    "lot", "lov", "index", "endnotes", "footnotes", "rearnotes", "footnote", "endnote",
    "rearnote", "acknowledgments", "acknowledgements", "contributors", "other-credits",
    "credits", "credit", "errata", "bibliography", "glossary", "pagelist", "notes",
})
READ_TYPES = frozenset({
    "bodymatter", "chapter", "part", "volume", "division", "subchapter", "preface",
    "foreword", "introduction", "preamble", "prologue", "epilogue", "afterword",
    "conclusion", "appendix", "text", "fiction", "poem", "verse", "story",
})
_GUIDE_ALIASES = {"title-page": "titlepage", "text": "bodymatter", "start": "bodymatter"}
_MATTER_TITLE = re.compile(
    r"^(cover|(full |half[- ]?)?title( page)?|titlepage|copyright( page)?|uncopyright|imprint"
    r"|colophon|dedication|epigraph|(table of )?contents|index|(end|foot)?notes"
    r"|acknowledge?ments?|about the (author|authors|publisher|translator|editor)s?"
    r"|(also|other (books|titles|works)|books) by\b.*|praise for\b.*|bibliography|glossary"
    r"|list of (illustrations|figures|tables|maps)|illustrations|credits"
    r"|(the full )?project gutenberg\b.*licen[cs]e.*|licen[cs]e)$",
    re.IGNORECASE,
)
_MATTER_STEM = re.compile(
    r"(^|[-_.])(cover|titlepage|title|halftitle|copyright|imprint|colophon|dedication|toc"
    r"|contents|index|notes|endnotes|footnotes|acknowledg\w*|about|alsoby|also-by|license)"
    r"([-_.]|\d|$)",
    re.IGNORECASE,
)
_COPYRIGHT_MARKS = ("©", "copyright", "all rights reserved", "isbn", "published by",
                    "printed in", "first published", "library of congress", "first edition")

_BLOCK_TAGS = frozenset({
    "html", "body", "p", "div", "section", "article", "main", "header", "footer", "aside",
    "blockquote", "li", "ul", "ol", "dl", "dt", "dd", "figcaption", "address", "hgroup",
    "center", "details", "summary", "caption",
})
_LIST_ITEMS = frozenset({"li", "dt", "dd"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SCENE_CLASSES = re.compile(r"^(scene|section|space|text|thought)-?break$|^(ornament|dinkus)s?$")
_VERSE_TYPES = frozenset({"poem", "verse", "song", "hymn", "lyrics", "stanza"})
_VERSE_CLASSES = frozenset({"poem", "poetry", "verse", "stanza", "lines", "poem-stanza"})
_LINE_CLASS = re.compile(r"^(line|l|verse-line|poem-line|i\d+|indent\d*)$")
# Same closing punctuation as markdown.py's list rule.
_NAMED_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")
_XML_ENTITIES = {b"amp", b"lt", b"gt", b"quot", b"apos"}
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"


def _fail(display: str, message: str) -> InputError:
    return InputError(Problem(display, None, None, message))


class _TooBig(InputError):
    """A member over the caps: fatal for the text, skippable for a cover."""

    def __init__(self, display: str, message: str):
        super().__init__(Problem(display, None, None, message))


# ------------------------------------------------------------------ the zip


class _Archive:
    """The EPUB's zip, read member by member under the size caps."""

    def __init__(self, zf: zipfile.ZipFile, display: str):
        self.zf = zf
        self.display = display
        self.read_total = 0
        self.infos = {info.filename: info for info in zf.infolist()}
        self.folded = {name.casefold(): info for name, info in self.infos.items()}

    def has(self, name: str) -> bool:
        return name in self.infos or name.casefold() in self.folded

    def read(self, name: str) -> bytes:
        info = self.infos.get(name) or self.folded.get(name.casefold())
        if info is None:
            raise _fail(self.display, f"{name} is missing from the EPUB; the file is damaged")
        if info.file_size > MAX_MEMBER_BYTES:
            raise self._too_big(name)
        try:
            return self._read_capped(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise _fail(self.display, f"cannot unpack {name} ({exc}); the file is damaged or "
                                      "truncated") from None
        except RuntimeError:
            raise _fail(self.display, f"{name} is encrypted; a DRM-protected EPUB cannot be "
                                      "read") from None

    def _read_capped(self, info: zipfile.ZipInfo) -> bytes:
        # Declared sizes can lie, so the caps are checked on what is unpacked.
        chunks: list[bytes] = []
        size = 0
        with self.zf.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                self.read_total += len(chunk)
                if size > MAX_MEMBER_BYTES or self.read_total > MAX_TOTAL_BYTES:
                    raise self._too_big(info.filename)
                chunks.append(chunk)
        return b"".join(chunks)

    def _too_big(self, name: str) -> InputError:
        return _TooBig(self.display, f"{name} unpacks to more than {MAX_MEMBER_BYTES >> 20} MiB "
                                   f"(or the book to more than {MAX_TOTAL_BYTES >> 20} MiB); "
                                   "refusing a possible zip bomb")


def open_archive(path: Path, display: str) -> _Archive:
    """The EPUB's zip, after the checks that need no unpacking."""
    # A FIFO or a device would hang or never end: only a regular file is opened.
    check_regular(path, display, MAX_TOTAL_BYTES, "an EPUB file")
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise _fail(display, "file not found") from None
    except IsADirectoryError:
        raise _fail(display, "is a folder, not an EPUB file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
        raise _fail(display, "is not an EPUB: not a zip archive, or truncated") from None
    except OSError as exc:
        raise _fail(display, f"cannot read: {exc.strerror}") from None
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        zf.close()
        raise _fail(display, f"has {len(infos)} files inside; more than {MAX_MEMBERS} is not a book")
    if sum(info.file_size for info in infos) > MAX_TOTAL_BYTES:
        zf.close()
        raise _fail(display, f"unpacks to more than {MAX_TOTAL_BYTES >> 20} MiB; refusing a "
                             "possible zip bomb")
    return _Archive(zf, display)


# ------------------------------------------------------------------ XML


def _local(el) -> str:
    tag = el.tag
    return tag.rpartition("}")[2].lower() if isinstance(tag, str) else ""


def _children(el, name: str) -> list:
    return [c for c in el if _local(c) == name]


def _descendants(el, name: str) -> Iterator:
    return (e for e in el.iter() if _local(e) == name)


def _with_numeric_entities(data: bytes) -> bytes:
    # EPUB 2 XHTML leans on the XHTML DTD for &nbsp; and friends; we never
    # load DTDs, so the HTML names become character references instead.
    def replace(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        code = html.entities.name2codepoint.get(name.decode())
        if name in _XML_ENTITIES or code is None:
            return match.group(0)
        return b"&#%d;" % code

    return _NAMED_ENTITY.sub(replace, data)


def parse_xml(data: bytes, display: str, member: str):
    """The root element of an untrusted XML member, parsed without entities or network."""
    if b"<!ENTITY" in data:
        raise _fail(display, f"{member} declares XML entities (an entity bomb?); refusing it")
    data = _with_numeric_entities(data)
    options = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                   remove_comments=True, remove_pis=True)
    try:
        return etree.fromstring(data, etree.XMLParser(**options))
    except etree.XMLSyntaxError:
        pass
    # Real books carry small XHTML errors; lxml's recovery reads what it can.
    try:
        root = etree.fromstring(data, etree.XMLParser(recover=True, **options))
    except etree.XMLSyntaxError:
        root = None
    if root is None:
        raise _fail(display, f"{member} is not readable XML; the file is damaged")
    return root


def _types(el) -> set[str]:
    """epub:type and DPUB-ARIA role tokens, without prefixes: 'z3998:poem' -> 'poem'."""
    return type_tokens(el.get(_EPUB_TYPE) or el.get("epub:type") or "", el.get("role") or "")


def _attributes(el) -> dict[str, str]:
    """Attributes by lower-case local name, the EPUB type as "epub:type" (see rules.py)."""
    attrs = {str(k).rpartition("}")[2].lower(): v for k, v in el.attrib.items()}
    attrs["epub:type"] = el.get(_EPUB_TYPE) or el.get("epub:type") or ""
    return attrs


def _classes(el) -> set[str]:
    return set((el.get("class") or "").lower().split())


def _plain_text(el) -> str:
    return normalize(" ".join(el.xpath(".//text()")))


def _resolve(base: str, href: str) -> tuple[str, str] | None:
    """(member path, fragment) of an href relative to the member `base`; None if external."""
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc:
        return None
    path = unquote(parts.path)
    target = posixpath.normpath(posixpath.join(posixpath.dirname(base), path)) if path else base
    return target.lstrip("/"), unquote(parts.fragment)


# ------------------------------------------------------------------ package


@dataclass(frozen=True)
class _Item:
    id: str
    path: str
    media_type: str
    properties: frozenset[str]


@dataclass(frozen=True)
class _Package:
    opf: str
    title: str
    items: dict[str, _Item]
    spine: tuple[tuple[_Item, bool], ...]  # (item, linear)
    ncx: _Item | None
    nav: _Item | None
    guide: dict[str, set[str]]  # member path -> guide types
    cover_id: str | None


def read_package(archive: _Archive) -> _Package:
    display = archive.display
    if not archive.has("META-INF/container.xml"):
        raise _fail(display, "is not an EPUB: it has no META-INF/container.xml")
    container = parse_xml(archive.read("META-INF/container.xml"), display, "META-INF/container.xml")
    rootfiles = list(_descendants(container, "rootfile"))
    preferred = [r for r in rootfiles if r.get("media-type") == "application/oebps-package+xml"]
    opf_path = next((r.get("full-path") for r in preferred + rootfiles if r.get("full-path")), None)
    if not opf_path:
        raise _fail(display, "is not an EPUB: its container names no package (.opf) file")
    opf_path = unquote(opf_path).lstrip("/")
    if not archive.has(opf_path):
        raise _fail(display, f"is damaged: its package file {opf_path} is missing")
    opf = parse_xml(archive.read(opf_path), display, opf_path)
    items = _manifest(opf, opf_path)
    spine_el = next(_descendants(opf, "spine"), None)
    spine = _spine(spine_el, items)
    if not spine:
        raise _fail(display, "is damaged: it has no spine (reading order) of XHTML documents")
    ncx_id = spine_el.get("toc") if spine_el is not None else None
    ncx = items.get(ncx_id or "") or next(
        (i for i in items.values() if i.media_type == "application/x-dtbncx+xml"), None)
    nav = next((i for i in items.values() if "nav" in i.properties), None)
    _refuse_drm(archive, {item.path for item, _ in spine})
    return _Package(opf_path, _dc_title(opf), items, spine, ncx, nav, _guide(opf, opf_path),
                    _cover_id(opf))


def _refuse_drm(archive: _Archive, spine_paths: set[str]) -> None:
    """Encrypted spine documents read as noise: say so instead of failing to parse."""
    name = "META-INF/encryption.xml"
    if not archive.has(name):
        return
    root = parse_xml(archive.read(name), archive.display, name)
    for data in _descendants(root, "encrypteddata"):
        method = next(_descendants(data, "encryptionmethod"), None)
        algorithm = method.get("Algorithm") if method is not None else None
        if algorithm in _FONT_OBFUSCATION:
            continue
        for ref in _descendants(data, "cipherreference"):
            if unquote(ref.get("URI") or "").lstrip("/") in spine_paths:
                raise _fail(archive.display, "is DRM-protected (its text is encrypted); "
                                             "only DRM-free EPUBs can be read")


def _manifest(opf, opf_path: str) -> dict[str, _Item]:
    items = {}
    for el in _descendants(opf, "item"):
        href, item_id = el.get("href"), el.get("id")
        target = _resolve(opf_path, href) if href and item_id else None
        if target is None:
            continue
        media = (el.get("media-type") or "").strip().lower()
        props = frozenset((el.get("properties") or "").split())
        items[item_id] = _Item(item_id, target[0], media, props)
    return items


def _spine(spine_el, items: dict[str, _Item]) -> tuple[tuple[_Item, bool], ...]:
    if spine_el is None:
        return ()
    out = []
    for ref in _children(spine_el, "itemref"):
        item = items.get(ref.get("idref") or "")
        if item is not None and item.media_type in _XHTML_TYPES:
            out.append((item, (ref.get("linear") or "yes").strip().lower() != "no"))
    return tuple(out)


def _dc_title(opf) -> str:
    return next((_plain_text(t) for t in _descendants(opf, "title") if _plain_text(t)), "")


def _guide(opf, opf_path: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for ref in _descendants(opf, "reference"):
        target = _resolve(opf_path, ref.get("href") or "")
        kind = (ref.get("type") or "").strip().lower().removeprefix("other.")
        if target and kind:
            out.setdefault(target[0], set()).add(_GUIDE_ALIASES.get(kind, kind))
    return out


def _cover_id(opf) -> str | None:
    for meta in _descendants(opf, "meta"):
        if (meta.get("name") or "").lower() == "cover" and meta.get("content"):
            return meta.get("content")
    return None


# ------------------------------------------------------------------ TOC


@dataclass(frozen=True)
class _TocEntry:
    title: str
    path: str
    fragment: str
    depth: int


@dataclass(frozen=True)
class _Navigation:
    toc: tuple[_TocEntry, ...]
    landmarks: dict[str, set[str]]  # member path -> landmark types


def read_navigation(archive: _Archive, pkg: _Package) -> _Navigation:
    """TOC entries in reading order (nav first, NCX if the nav gives none) and landmarks."""
    toc: list[_TocEntry] = []
    landmarks: dict[str, set[str]] = {}
    if pkg.nav is not None and archive.has(pkg.nav.path):
        root = parse_xml(archive.read(pkg.nav.path), archive.display, pkg.nav.path)
        for nav in _descendants(root, "nav"):
            kinds = _types(nav)
            top = next((c for c in nav if _local(c) in ("ol", "ul")), None)
            if top is None:
                continue
            if "toc" in kinds and not toc:
                toc = list(_nav_entries(top, pkg.nav.path, 1))
            elif "landmarks" in kinds:
                for a in _descendants(top, "a"):
                    target = _resolve(pkg.nav.path, a.get("href") or "")
                    if target:
                        landmarks.setdefault(target[0], set()).update(_types(a))
    if not toc and pkg.ncx is not None and archive.has(pkg.ncx.path):
        root = parse_xml(archive.read(pkg.ncx.path), archive.display, pkg.ncx.path)
        nav_map = next(_descendants(root, "navmap"), None)
        if nav_map is not None:
            toc = list(_ncx_entries(nav_map, pkg.ncx.path, 1))
    return _Navigation(tuple(toc), landmarks)


def _nav_entries(ol, base: str, depth: int) -> Iterator[_TocEntry]:
    for li in _children(ol, "li"):
        label = next((c for c in li if _local(c) not in ("ol", "ul", "")), None)
        if label is not None:
            link = label if _local(label) == "a" else next(_descendants(label, "a"), None)
            target = _resolve(base, link.get("href") or "") if link is not None else None
            title = _plain_text(label)
            if target and title:
                yield _TocEntry(title, target[0], target[1], depth)
        for sub in li:
            if _local(sub) in ("ol", "ul"):
                yield from _nav_entries(sub, base, depth + 1)


def _ncx_entries(parent, base: str, depth: int) -> Iterator[_TocEntry]:
    for point in _children(parent, "navpoint"):
        label = next(_descendants(point, "navlabel"), None)
        content = next((c for c in point if _local(c) == "content"), None)
        target = _resolve(base, content.get("src") or "") if content is not None else None
        title = _plain_text(label) if label is not None else ""
        if target and title:
            yield _TocEntry(title, target[0], target[1], depth)
        yield from _ncx_entries(point, base, depth + 1)


def split_anchors(toc: Iterable[_TocEntry], path: str) -> dict[str, str]:
    """Anchor id -> title where a document holds several TOC chapters.

    A document the TOC names as a whole is one chapter: its anchors are
    sections. Only a document reached solely through anchors is cut.
    """
    into = [e for e in toc if e.path == path]
    if not into or any(not e.fragment for e in into):
        return {}
    anchors: dict[str, str] = {}
    for entry in into:
        anchors.setdefault(entry.fragment, entry.title)
    return anchors


# ------------------------------------------------------------------ XHTML -> blocks


@dataclass
class _Piece:
    """Blocks of one document between two chapter anchors."""

    title: str | None
    anchor: str | None
    blocks: list[Block] = field(default_factory=list)


class _BlockReader:
    """Walks an XHTML body, emitting blocks and cutting pieces at chapter anchors."""

    def __init__(self, anchors: dict[str, str]):
        self.anchors = anchors
        self.pieces = [_Piece(None, None)]
        self.buffer: list[str] = []
        self.buffer_line: int | None = None
        self.list_depth = 0
        self.verse_depth = 0

    def read(self, body) -> list[_Piece]:
        self._visit(body)
        self._flush()
        return self.pieces

    # -- structure

    def _visit(self, el) -> None:
        name = _local(el)
        if not name or _is_skipped(el, name):
            return
        self._cut_if_anchor(el, name)
        if name in _HEADINGS:
            self._heading(el, _HEADINGS[name])
        elif name == "hr" or any(_SCENE_CLASSES.match(c) for c in _classes(el)):
            self._flush()
            self._scene()
        elif name == "br":
            self.buffer.append("\n")
        elif name in _BLOCK_TAGS:
            self._block(el, name)
        else:
            self._inline(el)

    def _block(self, el, name: str) -> None:
        line_level = self.verse_depth and _is_verse_line(el)
        if not line_level:
            self._flush()
            if name == "section" and _starts_without_heading(el) and self._ends_with_text():
                self._scene()
        verse = bool(_types(el) & _VERSE_TYPES or _classes(el) & _VERSE_CLASSES)
        self.verse_depth += verse
        self.list_depth += name in ("ul", "ol", "dl")
        self._inline(el)
        self.list_depth -= name in ("ul", "ol", "dl")
        self.verse_depth -= verse
        if line_level:
            self.buffer.append("\n")
        else:
            self._flush(list_item=name in _LIST_ITEMS)

    def _inline(self, el) -> None:
        self._text(el.text, el)
        for child in el:
            self._visit(child)
            self._text(child.tail, child)

    def _heading(self, el, level: int) -> None:
        self._flush()
        text = normalize(" ".join(_readable_text(el)))
        if is_speakable(text):
            self.pieces[-1].blocks.append(Block("heading", text, line=el.sourceline, level=level))

    def _cut_if_anchor(self, el, name: str) -> None:
        if not self.anchors:
            return
        ids = [el.get("id"), el.get("name") if name == "a" else None]
        if name in _HEADINGS:  # an anchor inside a heading cuts before the heading
            ids += [d.get("id") or d.get("name") for d in el.iterdescendants()]
        anchor = next((i for i in ids if i and i in self.anchors), None)
        if anchor is None:
            return
        self._flush()
        self.pieces.append(_Piece(self.anchors.pop(anchor), anchor))

    # -- emitting

    def _text(self, text: str | None, el) -> None:
        if text:
            if self.buffer_line is None and text.strip():
                self.buffer_line = el.sourceline
            self.buffer.append(text)

    def _flush(self, list_item: bool = False) -> None:
        text = normalize("".join(self.buffer))
        line = self.buffer_line
        self.buffer, self.buffer_line = [], None
        if not text:
            return
        if SCENE_BREAK_TEXT.match(text):
            self._scene()
            return
        if not is_speakable(text):
            return  # emoji or punctuation only: nothing to say, nothing to pay for
        if list_item or self.list_depth:
            text = as_sentence(text)
        self.pieces[-1].blocks.append(Block("paragraph", text, line=line))

    def _scene(self) -> None:
        blocks = self.pieces[-1].blocks
        if blocks and blocks[-1].kind != "scene":
            blocks.append(Block("scene"))

    def _ends_with_text(self) -> bool:
        blocks = self.pieces[-1].blocks
        return bool(blocks) and blocks[-1].kind == "paragraph"


def _is_skipped(el, name: str) -> bool:
    if is_not_prose(name, _attributes(el)):
        return True
    return name in ("a", "sup") and _is_note_mark(el)


def _is_note_mark(el) -> bool:
    """A link (or superscript link) whose text is only a note mark: '1', '[2]', '*', '†'."""
    links = [el] if _local(el) == "a" else list(_descendants(el, "a"))
    if not links or not any("#" in (a.get("href") or "") for a in links):
        return False
    return bool(NOTE_MARK.match(normalize("".join(el.xpath(".//text()")))))


def _is_verse_line(el) -> bool:
    parent = el.getparent()
    in_stanza = parent is not None and "stanza" in (_classes(parent) | _types(parent))
    has_blocks = any(_local(c) in _BLOCK_TAGS for c in el)
    return not has_blocks and (in_stanza or any(_LINE_CLASS.match(c) for c in _classes(el)))


def _starts_without_heading(section) -> bool:
    first = next((c for c in section if _local(c)), None)
    return first is None or _local(first) not in (*_HEADINGS, "header", "hgroup")


def _readable_text(el) -> Iterator[str]:
    """Text of an element by the reading rule (headings hold noterefs and <br>s too)."""
    if el.text:
        yield el.text
    for child in el:
        name = _local(child)
        if name == "br":
            yield " "
        elif name and not _is_skipped(child, name):
            yield from _readable_text(child)
        if child.tail:
            yield child.tail


# ------------------------------------------------------------------ matter


@dataclass(frozen=True)
class _Document:
    item: _Item
    linear: bool
    toc_title: str | None
    heading: str | None
    head_title: str
    doc_types: frozenset[str]
    text: str
    text_chars: int
    link_chars: int
    links: int
    backlink_paragraphs: int
    paragraphs: int
    copyright_marks: int


def _doc_types(root) -> frozenset[str]:
    """Types on <html>, <body> and the single wrappers inside it (not on inner sections)."""
    tokens = set(_types(root))
    el = next(_descendants(root, "body"), None)
    for _ in range(4):
        if el is None:
            break
        tokens |= _types(el)
        kids = [c for c in el if _local(c)]
        el = kids[0] if len(kids) == 1 else None
    return frozenset(tokens)


def _describe(root, body, item: _Item, linear: bool, toc_title: str | None,
              blocks: list[Block], spine_paths: set[str]) -> _Document:
    text = " ".join(b.text for b in blocks)
    links = [a for a in _descendants(body, "a") if a.get("href")]
    paragraphs = [p for p in body.iter() if _local(p) in ("p", "li", "div", "aside")
                  and not any(_local(c) in ("p", "li", "div") for c in p)]
    backlinks = sum(1 for p in paragraphs if any(
        (_resolve(item.path, a.get("href") or "") or ("", ""))[0] in spine_paths - {item.path}
        for a in _descendants(p, "a")))
    lowered = text.lower()
    head = next(_descendants(root, "title"), None)
    return _Document(
        item=item, linear=linear, toc_title=toc_title,
        heading=next((b.text for b in blocks if b.kind == "heading"), None),
        head_title=_plain_text(head) if head is not None else "",
        doc_types=_doc_types(root), text=text[:500], text_chars=len(text),
        link_chars=sum(len(_plain_text(a)) for a in links), links=len(links),
        backlink_paragraphs=backlinks, paragraphs=len(paragraphs),
        copyright_marks=sum(mark in lowered for mark in _COPYRIGHT_MARKS),
    )


def matter_kind(doc: _Document, nav: _Navigation, pkg: _Package, before_content: bool) -> str | None:
    """Why a document is front or back matter, or None if it is read."""
    for types in (doc.doc_types, nav.landmarks.get(doc.item.path, set()),
                  pkg.guide.get(doc.item.path, set())):
        specific = types & MATTER_TYPES
        if specific:
            return sorted(specific)[0]
        if types & READ_TYPES:
            return None
    if doc.toc_title and _MATTER_TITLE.match(doc.toc_title):
        return doc.toc_title.lower()
    return matter_by_heuristic(doc, pkg, before_content)


def matter_by_heuristic(doc: _Document, pkg: _Package, before_content: bool) -> str | None:
    """The fallback when nothing in the book says what a document is.

    - the navigation document, or a spine item marked linear="no";
    - a first heading that names matter ("Contents", "Copyright", "Notes"...);
    - a page of links (3 or more, and half its text or more is link text);
    - a notes page (3 or more paragraphs, half or more linking back into the book);
    - a short page (< 3000 characters) with two or more copyright marks
      (©, "All rights reserved", ISBN, "Published by", ...);
    - before the first chapter read: a page under 400 characters that holds
      the book's title, a page under 200 characters with no TOC entry
      (a dedication), or a short page whose file name says matter.
    """
    if "nav" in doc.item.properties or not doc.linear:
        return "toc" if "nav" in doc.item.properties else "non-linear"
    title = doc.toc_title or doc.heading or doc.head_title
    if title and _MATTER_TITLE.match(title) and not doc.toc_title:
        return title.lower()
    if doc.links >= 3 and doc.link_chars * 2 >= doc.text_chars:
        return "toc"
    if doc.backlink_paragraphs >= 3 and doc.backlink_paragraphs * 2 >= doc.paragraphs:
        return "endnotes"
    if doc.text_chars < 3000 and doc.copyright_marks >= 2:
        return "copyright-page"
    if before_content and _looks_like_front_page(doc, pkg):
        return "titlepage"
    return None


def _looks_like_front_page(doc: _Document, pkg: _Package) -> bool:
    if doc.text_chars < 200 and not doc.toc_title:
        return True
    book_title = normalize(pkg.title).casefold()
    if doc.text_chars < 400 and book_title and book_title in doc.text.casefold():
        return True
    stem = posixpath.splitext(posixpath.basename(doc.item.path))[0]
    return doc.text_chars < 1500 and not doc.toc_title and bool(_MATTER_STEM.search(stem))


# ------------------------------------------------------------------ chapters


@dataclass
class _Draft:
    title: str
    source: str
    blocks: list[Block]


def load_epub(path: Path, display: str, entry) -> list[Chapter]:
    """The EPUB's chapters in reading order, matter left out unless the entry keeps it."""
    archive = open_archive(path, display)
    try:
        pkg = read_package(archive)
        nav = read_navigation(archive, pkg)
        drafts = _book_drafts(archive, pkg, nav, bool(entry.include_matter), display)
    finally:
        archive.zf.close()
    if not drafts:
        raise _fail(display, "has no chapters with text to read"
                    + ("" if entry.include_matter else " (try include_matter: true)"))
    drafts = select_drafts(drafts, tuple(entry.select), display, entry)
    if entry.title and len(drafts) == 1:
        drafts[0].title = entry.title
    return [Chapter(title=d.title, source=d.source, blocks=tuple(d.blocks), entry=entry.index,
                    line=entry.line) for d in drafts]


def _book_drafts(archive: _Archive, pkg: _Package, nav: _Navigation, keep_matter: bool,
                 display: str) -> list[_Draft]:
    drafts: list[_Draft] = []
    spine_paths = {item.path for item, _ in pkg.spine}
    first_titles: dict[str, str] = {}
    read_any = False
    for entry in nav.toc:
        first_titles.setdefault(entry.path, entry.title)
    for item, linear in pkg.spine:
        root = parse_xml(archive.read(item.path), display, item.path)
        body = next(_descendants(root, "body"), root)
        pieces = _BlockReader(split_anchors(nav.toc, item.path)).read(body)
        blocks = [b for p in pieces for b in p.blocks]
        doc = _describe(root, body, item, linear, first_titles.get(item.path), blocks, spine_paths)
        kind = matter_kind(doc, nav, pkg, before_content=not read_any)
        if kind is not None and not keep_matter:
            continue
        read_any = read_any or (kind is None and bool(blocks))
        _add_pieces(drafts, pieces, doc, f"{display}#{item.path}", continues=kind is None)
    return [d for d in drafts if any(b.text for b in d.blocks)]


def _add_pieces(drafts: list[_Draft], pieces: list[_Piece], doc: _Document, source: str,
                continues: bool) -> None:
    pieces = _fold_heading_only(pieces)
    for n, piece in enumerate(pieces):
        blocks = _trim_scenes(piece.blocks)
        if not any(b.text for b in blocks):
            continue
        first_heading = next((b.text for b in blocks if b.kind == "heading"), None)
        title = piece.title or (doc.toc_title if n == 0 else None) or first_heading
        # A split file continues the chapter before; kept matter stands alone.
        if title is None and drafts and continues:
            drafts[-1].blocks += blocks
            continue
        title = title or doc.head_title or title_from_file_name(doc.item.path)
        where = f"{source}#{piece.anchor}" if piece.anchor else source
        drafts.append(_Draft(title, where, blocks))


def _fold_heading_only(pieces: list[_Piece]) -> list[_Piece]:
    """A piece holding only headings (a part title) is read at the start of the next one."""
    out: list[_Piece] = []
    carry: list[Block] = []
    for piece in pieces:
        blocks = carry + piece.blocks
        carry = []
        if any(b.kind == "paragraph" for b in blocks) or piece is pieces[-1]:
            out.append(_Piece(piece.title, piece.anchor, blocks))
        else:
            carry = [b for b in blocks if b.kind == "heading"]
    return out


def _trim_scenes(blocks: list[Block]) -> list[Block]:
    start, end = 0, len(blocks)
    while start < end and blocks[start].kind == "scene":
        start += 1
    while end > start and blocks[end - 1].kind == "scene":
        end -= 1
    return blocks[start:end]


# ------------------------------------------------------------------ select


def select_drafts(drafts: list[_Draft], select: tuple[str, ...], display: str,
                  entry) -> list[_Draft]:
    """The chapters `select` names, by the grammar of sources/select.py."""
    if not select:
        return drafts
    titles = [d.title for d in drafts]
    chosen = select_positions(titles, select)
    if chosen.unmatched:
        raise InputError([Problem(entry.config_display, entry.line, f"chapters[{entry.index}].select",
                                  f"{word!r} matches no chapter of {display}; "
                                  + describe_choices(titles))
                          for word in chosen.unmatched])
    return [drafts[i] for i in chosen.positions]


# ------------------------------------------------------------------ cover


def read_cover(path: Path) -> tuple[bytes, str] | None:
    """The EPUB's cover image and its kind (see `rules.image_kind`: 'jpg', 'png', 'gif',
    'webp' or 'svg'), or None if it names none.

    A cover too big to unpack safely is skipped with a warning rather than
    failing the build: the book's text is still readable, and `cover:` in
    audiobook.yml can name a smaller image instead.
    """
    display = path.name
    archive = open_archive(path, display)
    try:
        pkg = read_package(archive)
        tried: set[str] = set()
        for item in _cover_candidates(archive, pkg):
            if item.path in tried or not archive.has(item.path):
                continue
            tried.add(item.path)
            try:
                data = archive.read(item.path)
            except _TooBig:
                log.warning("%s: its cover %s unpacks to more than %d MiB; building without it "
                            "(set cover: in audiobook.yml to a smaller image to have one)",
                            display, item.path, MAX_MEMBER_BYTES >> 20)
                continue
            kind = image_kind(data)
            if kind:
                return data, kind
    finally:
        archive.zf.close()
    return None


def _cover_candidates(archive: _Archive, pkg: _Package) -> Iterator[_Item]:
    """Cover images, most explicit first: EPUB 3 property, EPUB 2 meta, cover page, names."""
    images = [i for i in pkg.items.values() if i.media_type.startswith("image/")]
    yield from (i for i in images if "cover-image" in i.properties)
    if pkg.cover_id in pkg.items:
        yield pkg.items[pkg.cover_id]
    by_path = {i.path: i for i in images}
    for page, kinds in pkg.guide.items():
        if "cover" in kinds and archive.has(page):
            root = parse_xml(archive.read(page), archive.display, page)
            for el in root.iter():
                href = el.get("src") or el.get("{http://www.w3.org/1999/xlink}href") or ""
                target = _resolve(page, href) if _local(el) in ("img", "image") else None
                if target and target[0] in by_path:
                    yield by_path[target[0]]
    yield from (i for i in images if "cover" in i.id.lower() or "cover" in i.path.lower())
