"""Read-along outputs from sentence timings: WebVTT per chapter, an EPUB 3 with Media Overlays.

Both read the same per-chapter sentence list that the manifest carries
(`chapters[].sentences`: id, text as written in the source, start and end in
ms of the chapter's audio file, block index, kind, source line). Nothing here
measures audio: the timings are the build's own.

The EPUB is written with ebooklib and then re-packed with fixed zip times and
a fixed `dcterms:modified`, so two builds from the same cache give the same
bytes.
"""

from __future__ import annotations

import datetime
import html
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ACTIVE_CLASS = "-epub-media-overlay-active"
# EPUB 3's core audio media types, by the chapter file's suffix. The build
# hands over AAC in MP4 (.m4a): a third of the MP3s' size at 64k.
AUDIO_TYPES = {".m4a": "audio/mp4", ".mp3": "audio/mpeg"}
# EPUB wants a modification date; a fixed one keeps the file reproducible.
FIXED_MTIME = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Sentence:
    id: str
    text: str  # as written in the source
    start_ms: int
    end_ms: int
    block: int  # which heading or paragraph of the chapter it belongs to
    kind: str  # "heading" | "paragraph"
    line: int | None = None
    segment: str = ""  # key of the segment whose audio holds it

    @classmethod
    def from_json(cls, data: dict) -> Sentence:
        return cls(str(data["id"]), str(data["text"]), int(data["start_ms"]), int(data["end_ms"]),
                   int(data.get("block", 0)), str(data.get("kind", "paragraph")),
                   data.get("line"), str(data.get("segment", "")))


@dataclass(frozen=True)
class ChapterText:
    index: int
    title: str
    audio: Path  # the chapter's audio: .m4a (what the build uses) or .mp3
    duration_ms: int
    sentences: tuple[Sentence, ...]


# ------------------------------------------------------------------ WebVTT


def vtt_text(sentences: Sequence[Sentence]) -> str:
    """WebVTT with one cue per sentence, in order, never overlapping."""
    lines = ["WEBVTT", ""]
    for s in sentences:
        if s.end_ms <= s.start_ms:
            continue
        lines += [s.id, f"{_clock(s.start_ms)} --> {_clock(s.end_ms)}", _cue_text(s.text), ""]
    return "\n".join(lines)


def _clock(ms: int) -> str:
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _cue_text(text: str) -> str:
    # A blank line would end the cue and "-->" would start a timing line.
    flat = " ".join(text.split())
    return html.escape(flat, quote=False).replace("--&gt;", "-- &gt;")


# ------------------------------------------------------------------ EPUB 3


@dataclass(frozen=True)
class BookInfo:
    title: str
    author: str
    language: str
    identifier: str  # stable: derived from the book, never random
    cover: tuple[bytes, str] | None = None  # (bytes, "jpg" | "png")
    narrator: str = ""


def epub_bytes(book: BookInfo, chapters: Sequence[ChapterText]) -> bytes:
    """The read-along EPUB 3: XHTML with an id per sentence, the audio, one SMIL per chapter."""
    from ebooklib import epub

    doc = epub.EpubBook()
    doc.set_identifier(book.identifier)
    doc.set_title(book.title)
    doc.set_language(_bcp47(book.language))
    if book.author:
        doc.add_author(book.author)
    if book.narrator:
        doc.add_metadata("DC", "contributor", book.narrator)
    if book.cover:
        data, kind = book.cover
        doc.set_cover(f"cover.{kind}", data, create_page=False)
    style = epub.EpubItem(uid="style", file_name="style.css", media_type="text/css",
                          content=f".{ACTIVE_CLASS} {{ background-color: #fff3a0; }}\n".encode())
    doc.add_item(style)
    total_ms = 0
    pages = []
    for ch in chapters:
        page, smil, audio = _chapter_items(ch)
        page.add_item(style)
        for item in (page, smil, audio):
            doc.add_item(item)
        doc.add_metadata(None, "meta", _smil_clock(ch.duration_ms),
                         {"property": "media:duration", "refines": f"#{smil.id}"})
        total_ms += ch.duration_ms
        pages.append(page)
    doc.add_metadata(None, "meta", _smil_clock(total_ms), {"property": "media:duration"})
    doc.add_metadata(None, "meta", ACTIVE_CLASS, {"property": "media:active-class"})
    doc.toc = [epub.Link(p.file_name, p.title, p.id) for p in pages]
    doc.add_item(epub.EpubNcx())
    doc.add_item(epub.EpubNav())
    doc.spine = ["nav", *pages]
    raw = io.BytesIO()
    epub.write_epub(raw, doc, {"mtime": FIXED_MTIME, "epub2_guide": False})
    return _repack(raw.getvalue())


def _chapter_items(ch: ChapterText):
    from ebooklib import epub

    name = f"chapter-{ch.index:03d}.xhtml"
    audio_name = f"audio/{ch.index:03d}{ch.audio.suffix.lower()}"
    page = epub.EpubHtml(uid=f"chapter-{ch.index:03d}", file_name=name, title=ch.title,
                         content=_chapter_body(ch), media_overlay=f"smil-{ch.index:03d}")
    smil = epub.EpubSMIL(uid=f"smil-{ch.index:03d}", file_name=f"smil/{ch.index:03d}.smil",
                         content=_smil(ch, f"../{name}", f"../{audio_name}").encode())
    audio = epub.EpubItem(uid=f"audio-{ch.index:03d}", file_name=audio_name,
                          media_type=AUDIO_TYPES[ch.audio.suffix.lower()],
                          content=ch.audio.read_bytes())
    return page, smil, audio


def _chapter_body(ch: ChapterText) -> str:
    """The chapter as XHTML: a heading or paragraph per block, a span per sentence."""
    parts = [f'<section id="{_section_id(ch)}" epub:type="chapter" '
             f'aria-label="{html.escape(ch.title)}">']
    blocks: dict[int, list[Sentence]] = {}
    for s in ch.sentences:
        blocks.setdefault(s.block, []).append(s)
    if not any(s.kind == "heading" for s in ch.sentences):
        parts.append(f"<h1>{html.escape(ch.title)}</h1>")
    for _, group in sorted(blocks.items()):
        tag = "h2" if group[0].kind == "heading" else "p"
        spans = " ".join(f'<span id="{s.id}">{html.escape(s.text)}</span>' for s in group)
        parts.append(f"<{tag}>{spans}</{tag}>")
    parts.append("</section>")
    return "\n".join(parts)


def _smil(ch: ChapterText, page: str, audio: str) -> str:
    pars = []
    for n, s in enumerate(ch.sentences, start=1):
        if s.end_ms <= s.start_ms:
            continue
        pars.append(f'    <par id="par-{n}"><text src="{page}#{s.id}"/>'
                    f'<audio src="{audio}" clipBegin="{_smil_clock(s.start_ms)}" '
                    f'clipEnd="{_smil_clock(s.end_ms)}"/></par>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" '
            'version="3.0">\n  <body>\n'
            f'   <seq id="seq-{ch.index}" epub:textref="{page}#{_section_id(ch)}" epub:type="chapter">\n'
            + "\n".join(pars) + "\n   </seq>\n  </body>\n</smil>\n")


def _section_id(ch: ChapterText) -> str:
    return f"chapter-{ch.index}"


def _smil_clock(ms: int) -> str:
    return f"{ms // 3_600_000}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _bcp47(language: str) -> str:
    return {"zh_yue": "yue", "all": "und"}.get(language, language)


def _repack(data: bytes) -> bytes:
    """The same members in the same order, with fixed times: byte-reproducible."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            fixed.external_attr = 0o644 << 16
            fixed.compress_type = (zipfile.ZIP_STORED if info.filename == "mimetype"
                                   else zipfile.ZIP_DEFLATED)
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()
