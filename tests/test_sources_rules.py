"""The pieces every source shares: selection grammar, titles from names, image kinds."""

from __future__ import annotations

import pytest

from pipeline.sources.rules import image_kind, title_from_file_name
from pipeline.sources.select import fold_title, select_positions

TITLES = ["The Keeper’s Lamp", "“Hold the Light”", "Interlude", "Interlude", "The Lost Key!"]


@pytest.mark.parametrize(("wanted", "positions"), [
    (["2"], [1]),
    (["2-4"], [1, 2, 3]),
    (["4 - 5"], [3, 4]),
    (["5", "1", "1-2"], [0, 1, 4]),  # book order, each once
    (["the keeper's lamp"], [0]),  # straight quote matches a typographic one
    (['"hold the light"'], [1]),
    (["THE   LOST KEY!"], [4]),
    (["the-lost-key"], [4]),  # the slug
    (["interlude"], [2, 3]),  # every chapter of that title
    ([], [0, 1, 2, 3, 4]),
])
def test_select_positions(wanted, positions):
    chosen = select_positions(TITLES, wanted)
    assert (chosen.positions, chosen.unmatched) == (positions, [])


@pytest.mark.parametrize("word", ["0", "6", "3-2", "2-9", "Keeper", "", "³", "the lost"])
def test_words_that_match_nothing_are_reported(word):
    chosen = select_positions(TITLES, ["1", word])
    assert chosen.positions == [0]
    assert chosen.unmatched == [word]


def test_fold_title_folds_quotes_case_and_spaces():
    assert fold_title("  It’s  “Fine” ") == fold_title('it\'s "fine"') == 'it\'s "fine"'


@pytest.mark.parametrize(("name", "title"), [
    ("03-the-storm.md", "The Storm"),
    ("1984.md", "1984"),
    ("the_lost_key.markdown", "The Lost Key"),
    ("chapter-iPhone.md", "Chapter IPhone"),
    ("text/07_epilogue.xhtml", "Epilogue"),
])
def test_title_from_file_name(name, title):
    assert title_from_file_name(name) == title


SVG = b'<?xml version="1.0"?>\n<!-- cover -->\n<svg xmlns="http://www.w3.org/2000/svg"/>'


@pytest.mark.parametrize(("data", "kind"), [
    (b"\xff\xd8\xff\xe0rest", "jpg"),
    (b"\x89PNG\r\n\x1a\nrest", "png"),
    (b"GIF89a....", "gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
    (SVG, "svg"),
    (b'\xef\xbb\xbf<svg viewBox="0 0 1 1"></svg>', "svg"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),  # a WAV is RIFF too
    (b'<?xml version="1.0"?><html/>', None),
    (b"GIF8", None),
    (b"", None),
])
def test_image_kind_from_the_bytes(data, kind):
    assert image_kind(data) == kind
