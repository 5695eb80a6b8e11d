"""Real EPUB zips for the tests: well-formed books (EPUB 2 and 3) and hostile files.

A book is a list of `Doc`s in spine order. The TOC is built from each doc's
`toc` title and `sections` (nested entries pointing at anchors), unless a
whole `toc` tree is passed to `write_epub`.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

XHTML_NS = "http://www.w3.org/1999/xhtml"
OPS_NS = "http://www.idpf.org/2007/ops"
CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
# A 1x1 PNG, enough for a cover.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Doc:
    name: str  # file name under OEBPS/text/
    body: str  # the inner markup of <body>
    toc: str | None = None  # its TOC title; None: not in the TOC
    sections: list[tuple[str, str]] = field(default_factory=list)  # nested (title, anchor)
    body_type: str = ""  # epub:type on <body>
    title: str = "The Test Book"  # <title> in <head>
    linear: bool = True
    guide: str | None = None  # EPUB 2 guide type
    landmark: str | None = None  # EPUB 3 landmarks type
    doctype: str = ""  # a DOCTYPE line, e.g. XHTML 1.1's

    @property
    def href(self) -> str:
        return f"text/{self.name}"


# (title, href relative to OEBPS/, children)
TocNode = tuple[str, str, list]


def xhtml(doc: Doc) -> str:
    body_attrs = f' epub:type="{doc.body_type}"' if doc.body_type else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{doc.doctype}'
            f'<html xmlns="{XHTML_NS}" xmlns:epub="{OPS_NS}">\n'
            f"<head><title>{escape(doc.title)}</title></head>\n"
            f"<body{body_attrs}>\n{doc.body}\n</body>\n</html>\n")


def toc_from_docs(docs: list[Doc]) -> list[TocNode]:
    return [(d.toc, d.href, [(t, f"{d.href}#{a}", []) for t, a in d.sections])
            for d in docs if d.toc is not None]


def nav_document(toc: list[TocNode], docs: list[Doc]) -> str:
    def items(nodes: list[TocNode]) -> str:
        out = []
        for title, href, children in nodes:
            sub = f"<ol>{items(children)}</ol>" if children else ""
            out.append(f'<li><a href="{href}">{escape(title)}</a>{sub}</li>')
        return "".join(out)

    marks = "".join(f'<li><a epub:type="{d.landmark}" href="{d.href}">{d.landmark}</a></li>'
                    for d in docs if d.landmark)
    landmarks = f'<nav epub:type="landmarks"><ol>{marks}</ol></nav>' if marks else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="{XHTML_NS}" '
            f'xmlns:epub="{OPS_NS}"><head><title>Contents</title></head><body>'
            f'<nav epub:type="toc" id="toc"><h1>Contents</h1><ol>{items(toc)}</ol></nav>'
            f"{landmarks}</body></html>")


def ncx_document(toc: list[TocNode], title: str) -> str:
    counter = iter(range(1, 10**6))

    def points(nodes: list[TocNode]) -> str:
        out = []
        for label, href, children in nodes:
            n = next(counter)
            out.append(f'<navPoint id="np{n}" playOrder="{n}"><navLabel><text>{escape(label)}'
                       f'</text></navLabel><content src="{href}"/>{points(children)}</navPoint>')
        return "".join(out)

    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
            f"<head/><docTitle><text>{escape(title)}</text></docTitle>"
            f"<navMap>{points(toc)}</navMap></ncx>")


def package_document(docs: list[Doc], version: int, title: str, author: str,
                     cover: bytes | None, spine: bool = True,
                     extra_spine: tuple[str, ...] = ()) -> str:
    items = [f'<item id="d{i}" href="{d.href}" media-type="application/xhtml+xml"/>'
             for i, d in enumerate(docs)]
    items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
    if version == 3:
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
                     'properties="nav"/>')
    meta = ""
    if cover is not None:
        prop = ' properties="cover-image"' if version == 3 else ""
        items.append(f'<item id="cover-img" href="images/cover.png" media-type="image/png"{prop}/>')
        meta = '<meta name="cover" content="cover-img"/>'
    nonlinear = ' linear="no"'
    refs = "".join(f'<itemref idref="d{i}"{"" if d.linear else nonlinear}/>'
                   for i, d in enumerate(docs))
    for n, name in enumerate(extra_spine):
        items.append(f'<item id="x{n}" href="text/{name}" media-type="application/xhtml+xml"/>')
        refs += f'<itemref idref="x{n}"/>'
    spine_xml = f'<spine toc="ncx">{refs}</spine>' if spine else ""
    guide = "".join(f'<reference type="{d.guide}" href="{d.href}" title="{d.guide}"/>'
                    for d in docs if d.guide)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<package xmlns="http://www.idpf.org/2007/opf" version="{version}.0" '
            'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:identifier id="uid">urn:uuid:test</dc:identifier><dc:title>{escape(title)}'
            f"</dc:title><dc:creator>{escape(author)}</dc:creator><dc:language>en</dc:language>"
            f"{meta}</metadata><manifest>{''.join(items)}</manifest>{spine_xml}"
            f"{f'<guide>{guide}</guide>' if guide else ''}</package>")


def write_epub(path: Path, docs: list[Doc], *, version: int = 3, title: str = "The Test Book",
               author: str = "A. Tester", toc: list[TocNode] | None = None,
               cover: bytes | None = None, container: bool = True, spine: bool = True,
               extra: dict[str, bytes] | None = None, extra_spine: tuple[str, ...] = ()) -> Path:
    """Write a real EPUB zip (mimetype first and stored, as the spec asks).

    `extra_spine` names text/ members the caller adds to the zip afterwards.
    """
    toc = toc_from_docs(docs) if toc is None else toc
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        if container:
            zf.writestr("META-INF/container.xml", CONTAINER)
        opf = package_document(docs, version, title, author, cover, spine, extra_spine)
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/toc.ncx", ncx_document(toc, title))
        if version == 3:
            zf.writestr("OEBPS/nav.xhtml", nav_document(toc, docs))
        for doc in docs:
            zf.writestr(f"OEBPS/{doc.href}", xhtml(doc))
        if cover is not None:
            zf.writestr("OEBPS/images/cover.png", cover)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


# ------------------------------------------------------------------ a whole book


STORIES = [
    ("The Lantern", [
        "Mara lit the lantern before the storm came in.",
        "The light held steady while the wind pulled at the shutters.",
    ]),
    ("The Ferry", [
        "At dawn the ferry crossed the grey river twice.",
        "Nobody on board spoke of the missing bell.",
    ]),
    ("The Orchard", [
        "The apples fell early that year, and the children counted them.",
        "By autumn the orchard was quiet again.",
    ]),
]


def story_body(title: str, paragraphs: list[str], number: int) -> str:
    """A story with every kind of junk a narrator must not read woven into its prose."""
    first, second = paragraphs
    # Word joiner, soft hyphen, zero-width space and a BOM inside words.
    first = first.replace("the ", "the\u2060 ", 1).replace("before", "be\u00adfore")
    first = first.replace("lantern", "lan\u200btern").replace("storm", "st\ufefform")
    return f"""
<section epub:type="chapter" id="story-{number}">
<h2>{title}</h2>
<p>{first}<a epub:type="noteref" href="notes.xhtml#n{number}">{number}</a></p>
<span epub:type="pagebreak" id="page{number * 10}" title="{number * 10}">{number * 10}</span>
<p>{second}<sup><a href="notes.xhtml#m{number}">*</a></sup></p>
<p hidden="">Hidden text that must not be read.</p>
<p style="display: none">Also hidden.</p>
<span aria-hidden="true">decoration</span>
<figure><img src="../images/cover.png" alt="An image description"/><figcaption>A caption</figcaption></figure>
<table><tr><td>a table cell</td></tr></table>
<pre><code>print("code")</code></pre>
<aside epub:type="footnote" id="fn{number}"><p>A footnote aside.</p></aside>
</section>
"""


def collection_docs() -> list[Doc]:
    """A 3-story collection with EPUB 3 semantics: matter marked by epub:type."""
    docs = [
        Doc("cover.xhtml", '<img src="../images/cover.png" alt="Cover"/>', body_type="cover"),
        Doc("titlepage.xhtml", "<h1>The Test Book</h1><p>A. Tester</p>", toc="Title Page",
            body_type="frontmatter titlepage"),
        Doc("imprint.xhtml", "<p>Published by Test Press. All rights reserved.</p>",
            toc="Imprint", body_type="frontmatter imprint"),
    ]
    for n, (title, paragraphs) in enumerate(STORIES, 1):
        docs.append(Doc(f"story-{n}.xhtml", story_body(title, paragraphs, n), toc=title,
                        body_type="bodymatter"))
    docs += [
        Doc("notes.xhtml", '<section epub:type="endnotes"><ol><li id="n1">A note. '
            '<a href="story-1.xhtml">back</a></li></ol></section>', toc="Endnotes",
            body_type="backmatter"),
        Doc("colophon.xhtml", "<h2>Colophon</h2><p>Set in a fine typeface.</p>",
            toc="Colophon", body_type="backmatter colophon"),
        Doc("uncopyright.xhtml", "<p>This book is in the public domain.</p>", toc="Uncopyright",
            body_type="backmatter copyright-page"),
    ]
    return docs


def prose_of_stories() -> str:
    """What a narrator reads of `collection_docs`: titles and prose, nothing else."""
    return "".join(title + "".join(paragraphs) for title, paragraphs in STORIES)


# ------------------------------------------------------------------ hostile files


BOMB_DOCTYPE = """<!DOCTYPE html [
<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
"""


def entity_bomb(path: Path) -> Path:
    """A chapter whose entities would expand to gigabytes (billion laughs)."""
    return write_epub(path, [Doc("ch.xhtml", "<p>&g;</p>", toc="One", doctype=BOMB_DOCTYPE)])


def external_entity(path: Path, target: Path) -> Path:
    """A chapter that asks the parser to paste a local file into the text (XXE)."""
    doctype = f'<!DOCTYPE html [<!ENTITY secret SYSTEM "file://{target}">]>\n'
    return write_epub(path, [Doc("ch.xhtml", "<p>Leak: &secret;</p>", toc="One", doctype=doctype)])


def zip_bomb(path: Path, size: int, lie: bool = False) -> Path:
    """A valid book whose second chapter unpacks to `size` bytes of zeros (~size/1000 packed).

    With `lie`, the zip headers claim the member is tiny: only a reader that
    trusts neither the headers nor the data could be fooled.
    """
    write_epub(path, [Doc("ch.xhtml", "<p>Small.</p>", toc="One")], extra_spine=("big.xhtml",))
    block = b"\0" * 2**20
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("OEBPS/text/big.xhtml", "w", force_zip64=size >= 2**31) as member:
            for _ in range(size // len(block)):
                member.write(block)
    if lie:
        _claim_size(path, "OEBPS/text/big.xhtml", 1000)
    return path


def _claim_size(path: Path, member: str, claimed: int) -> None:
    """Rewrite a member's uncompressed size in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, claimed)
    name = member.encode()
    pos = data.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46:pos + 46 + name_len]) == name:
            struct.pack_into("<I", data, pos + 24, claimed)
            break
        pos = data.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(data))


def truncated(path: Path) -> Path:
    write_epub(path, collection_docs())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def not_a_zip(path: Path) -> Path:
    path.write_text("This is plain text with an .epub name.\n", encoding="utf-8")
    return path


def container_less(path: Path) -> Path:
    return write_epub(path, collection_docs(), container=False)


def spine_less(path: Path) -> Path:
    return write_epub(path, collection_docs(), spine=False)
