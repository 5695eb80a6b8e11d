"""Markdown -> blocks, by the reading rule in pipeline/sources/markdown.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipeline.book import Block
from pipeline.errors import InputError
from pipeline.sources.markdown import (
    blocks_from_markdown,
    load_markdown,
    parse_switch,
    title_from_file_name,
)
from pipeline.sources.text import has_invisible


def blocks(text: str) -> list[Block]:
    return blocks_from_markdown(textwrap.dedent(text))


def texts(text: str) -> list[str]:
    """The text read aloud, block by block (scene breaks as '---')."""
    return [b.text if b.kind != "scene" else "---" for b in blocks(text) if b.kind != "switch"]


def write(tmp_path: Path, content: str | bytes, name: str = "ch.md") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content), encoding="utf-8")
    return path


# ------------------------------------------------------------ structure


def test_headings_paragraphs_and_lines():
    found = blocks("""\
        # Chapter One

        The first paragraph
        runs over two lines.

        ## A Section

        Second paragraph.

        Setext Heading
        --------------
        """)
    assert [(b.kind, b.text, b.line, b.level) for b in found] == [
        ("heading", "Chapter One", 1, 1),
        ("paragraph", "The first paragraph runs over two lines.", 3, 0),
        ("heading", "A Section", 6, 2),
        ("paragraph", "Second paragraph.", 8, 0),
        ("heading", "Setext Heading", 10, 2),
    ]


@pytest.mark.parametrize("marker", ["---", "***", "* * *", "___", "<hr>", "<hr />", "⁂", "~ ~ ~",
                                    "\\* \\* \\*", "#"])
def test_scene_breaks(marker):
    found = blocks(f"Before.\n\n{marker}\n\nAfter.\n")
    kinds = [b.kind for b in found]
    if marker == "#":  # an empty heading says nothing and breaks nothing
        assert kinds == ["paragraph", "paragraph"]
    else:
        assert kinds == ["paragraph", "scene", "paragraph"]
        assert found[1].line == 3


def test_block_quotes_are_read():
    assert texts("> Quoted words.\n>\n> More quoted.\n") == ["Quoted words.", "More quoted."]


# ------------------------------------------------------------ voice switches


def test_inline_switches():
    found = blocks("""\
        Narration.

        <!-- voice: holmes -->
        "Elementary," said he.

        <!-- emotion: sad, speed: 0.9 -->
        A sad line.

        <!--   Narrator   -->
        <!-- TODO: check this paragraph -->
        <!--
        a longer note
        over lines
        -->
        Back to the narrator.
        """)
    assert [(b.kind, b.settings, b.line) for b in found if b.kind == "switch"] == [
        ("switch", (("voice", "holmes"),), 3),
        ("switch", (("emotion", "sad"), ("speed", "0.9")), 6),
        ("switch", (), 9),
    ]
    assert [b.text for b in found if b.text] == [
        "Narration.", "\"Elementary,\" said he.", "A sad line.", "Back to the narrator."]


def test_switch_right_after_a_paragraph_line_still_switches():
    found = blocks("Narration.\n<!-- voice: holmes -->\nHolmes speaks.\n")
    assert [b.kind for b in found] == ["paragraph", "switch", "paragraph"]


def test_a_comment_inside_a_paragraph_is_not_a_switch():
    found = blocks("He said <!-- voice: holmes --> nothing.\n")
    assert [(b.kind, b.text) for b in found] == [("paragraph", "He said nothing.")]


@pytest.mark.parametrize(("comment", "settings"), [
    ("<!-- voice: holmes -->", (("voice", "holmes"),)),
    ("<!--voice:holmes-->", (("voice", "holmes"),)),
    ("<!-- Voice: Holmes, Language: fr -->", (("voice", "Holmes"), ("language", "fr"))),
    ("<!-- narrator -->", ()),
    ("<!-- just a note -->", None),
    ("<!-- note: voice: x -->", None),
    ("not a comment", None),
])
def test_parse_switch(comment, settings):
    assert parse_switch(comment) == settings


@pytest.mark.parametrize("comment", ["<!-- voice: holmes, note: x -->", "<!-- speed: -->",
                                     "<!-- emotion: sad, speed -->"])
def test_a_broken_switch_is_an_error_with_its_line(comment):
    with pytest.raises(InputError) as info:
        blocks_from_markdown(f"Text.\n\n{comment}\n\nMore.\n", display="ch.md")
    [problem] = info.value.problems
    assert (problem.file, problem.line) == ("ch.md", 3)
    assert problem.message.startswith("voice switch: ")


# ------------------------------------------------------------ what is not read


def test_code_blocks_and_tables_are_skipped():
    assert texts("""\
        Before.

        ```python
        print("never read")
        ```

            indented code, never read

        | name | value |
        |------|-------|
        | a    | 1     |

        After.
        """) == ["Before.", "After."]


def test_links_are_read_and_urls_are_not():
    assert texts("""\
        Read [the guide](https://example.com/guide "Title") now.
        See <https://example.com/auto> and https://example.com/bare or www.example.org.
        A [https://example.com](https://example.com) link, and [ref][1].

        [1]: https://example.com/ref
        """) == ["Read the guide now. See and or. A link, and ref."]


def test_bare_url_at_the_end_keeps_the_full_stop():
    assert texts("Details at https://example.com/x.\n") == ["Details at."]


def test_emphasis_is_plain_text():
    assert texts("*One* **two** _three_ __four__ ***five*** ~~six~~ `seven`.\n") == [
        "One two three four five six seven."]


def test_images_are_skipped_with_their_alt_text():
    assert texts("![A map of the island](map.png)\n\nText ![icon](i.png) here.\n") == ["Text here."]


def test_footnote_markers_and_definitions_are_dropped():
    assert texts("""\
        A claim.[^1] Another claim[^note].
        Same paragraph.
        [^note]: An inline definition after a lazy line.

        [^1]: The first note,
            continued on an indented line.

            A second paragraph of the note.

        After the notes.
        """) == ["A claim. Another claim. Same paragraph.", "After the notes."]


def test_footnote_definition_lines_keep_their_numbers():
    found = blocks("[^1]: A note.\n\nText on line three.\n")
    assert [(b.text, b.line) for b in found] == [("Text on line three.", 3)]


def test_raw_html_blocks_are_skipped():
    assert texts("""\
        Before.

        <div class="aside">
        Never read.
        </div>

        <p>Not read either.</p>

        After.
        """) == ["Before.", "After."]


@pytest.mark.parametrize(("markdown", "read"), [
    ('Page <span epub:type="pagebreak" title="12">12</span> turns.', "Page turns."),
    ('Page <span role="doc-pagebreak">12</span>turns.', "Page turns."),
    ('End of page.<span class="pagenum">[p. 12]</span>', "End of page."),
    ('A note<a href="#fn1" epub:type="noteref">1</a> here.', "A note here."),
    ('A note<sup><a href="#fn1">1</a></sup> here.', "A note here."),
    ('A note<sup>[<a href="#fn1">1</a>]</sup> here.', "A note here."),
    ('A note<a href="#fn2"><sup>*</sup></a>.', "A note."),
    ('See <a href="#ch2">chapter two</a>.', "See chapter two."),
    ('E = mc<sup>2</sup>.', "E = mc2."),
    ('A <b>bold</b> and <em class="x">em</em> word.', "A bold and em word."),
    ('A <span hidden>secret</span>word.', "A word."),
    ('A <span aria-hidden="true">secret</span>word.', "A word."),
    ('A <span style="display: none">secret</span>word.', "A word."),
    ('Nested <span class="pagenum"><b>12</b> more</span>text.', "Nested text."),
    ('Stray </span> close and <i>unclosed', "Stray close and unclosed"),
    ('Line one<br>line two<br/>line three', "Line one\nline two\nline three"),
    ('An <img src="x.png" alt="picture"> image.', "An image."),
    ('<span epub:type="pagebreak">12</span>', None),
])
def test_inline_html(markdown, read):
    assert texts(markdown + "\n") == ([read] if read else [])


def test_list_items_are_read_as_sentences():
    assert texts("""\
        - apples
        - pears!
        - "quoted"
          1. nested one
          2. nested two;

        1) first
        2) second.
        """) == ["apples.", "pears!", "\"quoted\"", "nested one.", "nested two;", "first.",
                 "second."]


def test_hard_line_breaks_are_kept_for_verse():
    assert texts("Roses are red,  \nViolets are blue,\\\nSugar is sweet\nAnd so are you.\n") == [
        "Roses are red,\nViolets are blue,\nSugar is sweet And so are you."]


def test_invisible_characters_never_reach_a_block():
    found = blocks("Soft\u00adhyphen, word\u2060joiner, zero\u200bwidth, \ufeffBOM.\n\n"
                   "# Head\u200bing\n")
    assert [b.text for b in found] == ["Softhyphen, wordjoiner, zerowidth, BOM.", "Heading"]
    assert not any(has_invisible(b.text) for b in found)


# ------------------------------------------------------------ files and titles


def test_front_matter_is_skipped_and_lines_still_count(tmp_path):
    path = write(tmp_path, """\
        ---
        author: Someone
        tags: [a, b]
        ---
        # The Heading

        Text on line seven.
        """)
    chapter = load_markdown(path, "ch.md")
    assert [(b.text, b.line) for b in chapter.blocks] == [
        ("The Heading", 5), ("Text on line seven.", 7)]
    assert chapter.title == "The Heading"


def test_front_matter_title_names_the_chapter(tmp_path):
    path = write(tmp_path, "---\ntitle: \"From Front Matter\"\n---\n# A Heading\n\nText.\n")
    assert load_markdown(path, "ch.md").title == "From Front Matter"


def test_front_matter_at_the_end_of_the_file_and_empty_front_matter(tmp_path):
    path = write(tmp_path, "---\n---\nText.\n")
    assert [b.text for b in load_markdown(path, "ch.md").blocks] == ["Text."]


def test_title_from_the_first_heading_at_any_level(tmp_path):
    path = write(tmp_path, "Opening words.\n\n### A Small Heading\n\n# Big Heading\n")
    assert load_markdown(path, "ch.md").title == "A Small Heading"


def test_title_from_the_config_wins(tmp_path):
    path = write(tmp_path, "# Heading\n\nText.\n")
    assert load_markdown(path, "ch.md", title="Given").title == "Given"


@pytest.mark.parametrize(("name", "title"), [
    ("03-the-storm.md", "The Storm"),
    ("chapter_two.md", "Chapter Two"),
    ("01 prologue.md", "Prologue"),
    ("1984.md", "1984"),
    ("12.md", "12"),
    ("iPhone-notes.md", "IPhone Notes"),
])
def test_title_from_the_file_name(tmp_path, name, title):
    assert title_from_file_name(Path(name)) == title
    path = write(tmp_path, "Just text, no heading.\n", name)
    assert load_markdown(path, name).title == title


def test_chapter_keeps_entry_and_line(tmp_path):
    chapter = load_markdown(write(tmp_path, "Text.\n"), "ch.md", entry=3, line=12)
    assert (chapter.entry, chapter.line, chapter.source) == (3, 12, "ch.md")


def test_bom_and_crlf(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf# Title\r\n\r\nLine one\r\ncontinues.\r\n")
    chapter = load_markdown(path, "ch.md")
    assert [(b.text, b.line) for b in chapter.blocks] == [
        ("Title", 1), ("Line one continues.", 3)]


# ------------------------------------------------------------ broken sources


def problem_of(path: Path, display: str = "chapters/ch.md"):
    with pytest.raises(InputError) as info:
        load_markdown(path, display)
    [problem] = info.value.problems
    assert problem.file == display
    return problem


def test_missing_file(tmp_path):
    assert problem_of(tmp_path / "nope.md").message == "file not found"


def test_folder(tmp_path):
    assert "is a folder" in problem_of(tmp_path).message


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\n", b"\xef\xbb\xbf", "\u200b\u2060\n".encode()])
def test_empty_file(tmp_path, content):
    assert problem_of(write(tmp_path, content)).message.startswith("is empty")


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"%PDF-1.4\n" + bytes(range(256)) * 4,
    b"\x1f\x8b\x08\x08\x01\x02\x03\x04\x05\x06\x07\x0e\x0f\x10\x11\x12\xff\xfe",
])
def test_binary_file(tmp_path, content):
    problem = problem_of(write(tmp_path, content))
    assert problem.message == "is a binary file, not Markdown text"


def test_utf16_file(tmp_path):
    problem = problem_of(write(tmp_path, "# Title\n\nText.\n".encode("utf-16")))
    assert "UTF-16" in problem.message and "save it as UTF-8" in problem.message


def test_non_utf8_names_the_line_of_the_bad_byte(tmp_path):
    content = b"# Title\n\nFirst paragraph.\n\nCaf" + b"\xe9 au lait.\n"
    problem = problem_of(write(tmp_path, content))
    assert problem.line == 5
    assert "not UTF-8" in problem.message and "0xe9" in problem.message
    assert str(problem).startswith("chapters/ch.md:5: ")


def test_non_utf8_after_a_bom(tmp_path):
    problem = problem_of(write(tmp_path, b"\xef\xbb\xbfLine one.\nLine \xff two.\n"))
    assert problem.line == 2


@pytest.mark.parametrize("content", [
    "```\ncode only\n```\n",
    "| a | b |\n|---|---|\n| 1 | 2 |\n",
    "![image](x.png)\n",
    "<div>html only</div>\n",
    "---\n\n***\n",
    "<!-- voice: holmes -->\n",
    "https://example.com/only-a-url\n",
])
def test_a_file_with_nothing_to_read(tmp_path, content):
    problem = problem_of(write(tmp_path, content))
    assert problem.message.startswith("has no text to read")


# ------------------------------------------------------------ bounded input


def load_within(path: Path, seconds: float = 10) -> InputError | None:
    """load_markdown in a thread: the error it raised, or a failure if it hangs."""
    import threading

    caught: list[BaseException] = []

    def target():
        try:
            load_markdown(path, "chapters/ch.md")
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            caught.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _unblock_fifo(path)
        thread.join(5)
        pytest.fail(f"reading {path.name} hung for {seconds} s")
    assert caught and isinstance(caught[0], InputError), caught
    return caught[0]


def _unblock_fifo(path: Path) -> None:
    import os

    try:  # a reader blocked opening a FIFO is released by a writer coming and going
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_symlink_to_dev_zero_is_refused_before_reading(tmp_path):
    # The old code read it until MemoryError (3.8 GB); run under `ulimit -v` to see that.
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    error = load_within(tmp_path / "zero.md")
    assert "is a device, not a file" in str(error)


def test_a_fifo_is_refused_and_never_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.md")
    error = load_within(tmp_path / "fifo.md")
    assert "named pipe" in str(error) and "name a Markdown file" in str(error)


def test_a_markdown_file_over_the_cap_is_refused(tmp_path):
    from pipeline.sources.guard import MAX_MARKDOWN_BYTES

    path = tmp_path / "ch.md"
    path.write_bytes(b"# Big\n\n" + b"Words. " * (MAX_MARKDOWN_BYTES // 7))
    message = problem_of(path).message
    assert "20.0 MiB" in message and "split it" in message


def test_a_nul_byte_past_the_first_8_kib_is_an_error_naming_its_line(tmp_path):
    # The old code let markdown-it turn it into U+FFFD, which was sent to the service.
    content = ("# Title\n\n" + "Plain words here.\n" * 600 + "Hello\x00world again.\n").encode()
    problem = problem_of(write(tmp_path, content))
    assert problem.line == 603
    assert "NUL" in problem.message and "remove it" in problem.message


def test_emoji_or_punctuation_only_paragraphs_and_headings_are_not_read():
    # The old code sent "😀😀🎉 👍🏽 👨👩👧" and billed 2 credits for it.
    assert texts("""\
        # 🎉🎉

        😀😀🎉 👍🏽 👨\u200d👩\u200d👧

        ?!

        Words, and 😀 with them.
        """) == ["Words, and 😀 with them."]


def test_a_file_of_emoji_only_has_nothing_to_read(tmp_path):
    problem = problem_of(write(tmp_path, "😀😀🎉\n\n👍🏽\n"))
    assert problem.message.startswith("has no text to read")


# ------------------------------------------------------------ sources outside the book


def test_sources_outside_the_book_folder_are_warnings(tmp_path):
    from pipeline.config import load_config
    from pipeline.sources import source_warnings

    book, outside = tmp_path / "book", tmp_path / "outside"
    (book / "ch").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.md").write_text("Secret text.\n", encoding="utf-8")
    (book / "ch" / "01.md").write_text("Inside.\n", encoding="utf-8")
    (book / "ch" / "link.md").symlink_to(outside / "secret.md")
    (book / "ch" / "inner.md").symlink_to(book / "ch" / "01.md")
    (book / "audiobook.yml").write_text(
        "title: T\nchapters:\n  - ch/01.md\n  - ../outside/secret.md\n  - ch/link.md\n"
        "  - ch/inner.md\n", encoding="utf-8")
    warnings = source_warnings(load_config(book / "audiobook.yml"))
    assert all(w.warning for w in warnings)
    assert [(w.line, w.key) for w in warnings] == [(4, "chapters[1].source"),
                                                   (5, "chapters[2].source")]
    secret = str((outside / "secret.md").resolve())
    assert f"../outside/secret.md lies outside the book folder, at {secret}" in str(warnings[0])
    assert f"ch/link.md is a symlink to {secret}" in str(warnings[1])
