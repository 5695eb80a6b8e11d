"""The user's lexicon: words (or /patterns/) and how to say them.

Where it applies: source text -> normalize (Unicode clean-up, sources/text.py)
-> the user's lexicon (here) -> the spoken form of numbers, dates and
abbreviations (spoken.py) -> segments. The lexicon comes before the spoken
form so that what the user wrote wins: `lexicon: {"1984": "nineteen
eighty-four"}` is applied before the normalizer would read "1984" as a number.

The matching rule (compile_lexicon):
- Whole words only: a key matches where neither side touches a letter,
  digit or underscore, so never inside a longer word ("cat" is not found
  in "concatenate", "Dr." neither in "XDr." nor in "Dr.No"). A hyphen or
  an apostrophe ends a word, so "SQL" is found in "SQL-based". In scripts
  written without spaces (Chinese, Japanese, Thai, ...) there are no word
  boundaries: such keys match anywhere, and such letters next to a key do
  not glue it to a word.
- Case: a key written all in lower case matches any capitalisation, and a
  capitalised match capitalises the replacement ("sql" -> "sequel": "Sql"
  -> "Sequel"; "SQL" -> "sequel"). A key with any capital letter ("Dr.",
  "SQL", "iOS") matches only exactly as written, and wins over a lower-case
  key of the same length that also matches.
- A key written `/regex/` is a Python regular expression, used as written
  (no word boundaries added, case-sensitive unless it says `(?i)`); its
  replacement may use groups (`\\1`, `\\g<name>`).
- Where keys overlap, the earliest match in the text comes first, then the
  longest (a word beats a pattern of the same length).
- One pass: a replacement is never rewritten again.
- Runs of whitespace in a key match one space (text is normalized).

Cost: the words compile into at most eight regular expressions (one per kind
of boundary and case rule), so compiling is linear in the entries and cheap
(see docs/config.md for the figures); each pattern is compiled once per
process.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping

# Scripts written without spaces between words: a lexicon key in them matches
# anywhere, and next to them any key has a word boundary ("用SQL查询").
NO_SPACE_RANGES = ("\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
                   "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_NO_SPACE_SCRIPT = re.compile(f"[{NO_SPACE_RANGES}]")
# A letter, digit or underscore of a script that separates words by spaces.
# (Compiling this class is what made one lookaround per key cost ~3.5 ms; it
# now appears in at most eight patterns, whatever the lexicon's size.)
_SPACED_WORD_CHAR = f"[^\\W{NO_SPACE_RANGES}]"


def is_pattern_key(key: str) -> bool:
    """True for a key written /regex/."""
    return len(key) > 2 and key.startswith("/") and key.endswith("/")


@functools.lru_cache(maxsize=4096)
def compile_pattern(key: str) -> re.Pattern[str]:
    """The regex of a /regex/ key; raises re.error for a malformed one or one that matches nothing."""
    pattern = re.compile(key[1:-1])
    if pattern.fullmatch(""):
        raise re.error("it matches empty text; it must match at least one character")
    return pattern


def pattern_problem(key: str) -> str | None:
    """Why a /regex/ key cannot be used, or None."""
    try:
        compile_pattern(key)
    except re.error as exc:
        return f"is not a valid pattern: {exc}; write a Python regular expression between slashes"
    return None


def _word_pattern(keys: list[str], before: bool, after: bool, fold: bool) -> re.Pattern[str]:
    """One trie-shaped alternation of literal keys sharing one pair of boundaries.

    A trie, not a flat list: a flat alternation tries every key at every
    position of the text (20k keys made a chapter take seconds); the trie
    tries only the keys that share what was read so far. Longer keys come
    first at every branch, so the longest key that fits its boundaries wins.
    """
    short = [k for k in keys if len(k) <= _TRIE_MAX_KEY]
    long = sorted((k for k in keys if len(k) > _TRIE_MAX_KEY), key=len, reverse=True)
    body = "|".join([re.escape(k) for k in long] + ([_trie_regex(short)] if short else []))
    head = f"(?<!{_SPACED_WORD_CHAR})" if before else ""
    tail = f"(?!{_SPACED_WORD_CHAR})" if after else ""
    return re.compile(f"{head}(?:{body}){tail}", re.IGNORECASE if fold else 0)


# Keys longer than this go in a flat alternation, so the trie's recursion stays shallow.
_TRIE_MAX_KEY = 200
_END = ""


def _trie_regex(keys: list[str]) -> str:
    trie: dict[str, dict] = {}
    for key in keys:
        node = trie
        for ch in key:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return _node_regex(trie)


def _node_regex(node: dict[str, dict]) -> str:
    """The regex of what may follow a trie node: its branches, then (optionally) nothing."""
    branches = []
    for ch in sorted(c for c in node if c != _END):
        prefix, child = ch, node[ch]
        while len(child) == 1 and _END not in child:  # a chain: one literal
            (nxt, child), = child.items()
            prefix += nxt
        branches.append(re.escape(prefix) + _node_regex(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if _END in node else body


def _matchers(entries: dict[str, str]) -> list[tuple[re.Pattern[str], int, str]]:
    """(regex, rank, pattern key) for every group of keys; a lower rank wins a tie of
    start and length (exact words 0, lower-case words 1, patterns 2)."""
    groups: dict[tuple[bool, bool, bool], list[str]] = {}
    for key in entries:
        if is_pattern_key(key):
            continue
        before = not _NO_SPACE_SCRIPT.match(key[0])
        after = not _NO_SPACE_SCRIPT.match(key[-1])
        groups.setdefault((before, after, key == key.lower()), []).append(key)
    out = [(_word_pattern(keys, b, a, fold), 1 if fold else 0, "")
           for (b, a, fold), keys in groups.items()]
    out += [(compile_pattern(k), 2, k) for k in entries if is_pattern_key(k)]
    return out


def compile_lexicon(lexicon: Mapping[str, str]) -> Callable[[str], str]:
    """A function that rewrites text per the lexicon, in one pass (rule: see the module doc)."""
    entries = {(k if is_pattern_key(k) else " ".join(k.split())): v
               for k, v in lexicon.items() if k and k.strip()}
    if not entries:
        return lambda text: text
    exact = {k: v for k, v in entries.items() if k != k.lower() and not is_pattern_key(k)}
    folded = {k: v for k, v in entries.items() if k == k.lower() and not is_pattern_key(k)}
    by_casefold = {k.casefold(): k for k in folded}
    matchers = _matchers(entries)

    def folded_key(word: str) -> str:
        """The lower-case key a case-insensitive match came from."""
        for key in (word.lower(), by_casefold.get(word.casefold())):
            if key in folded and re.fullmatch(re.escape(key), word, re.IGNORECASE):
                return key
        # Case-insensitive matching is a little wider than lower() and casefold().
        return next(k for k in folded if len(k) == len(word)
                    and re.fullmatch(re.escape(k), word, re.IGNORECASE))

    def replacement(match: re.Match[str], rank: int, key: str) -> str:
        word = match.group(0)
        if rank == 2:
            return match.expand(entries[key])
        if rank == 0:
            return exact[word]
        said = folded[folded_key(word)]
        if word[:1].isupper() and not word.isupper():
            return said[:1].upper() + said[1:]
        return said

    def rewrite(text: str) -> str:
        # Each matcher keeps its next match; the earliest, then longest, wins.
        found: list[re.Match[str] | None] = [_search(r, text, 0) for r, _, _ in matchers]
        parts: list[str] = []
        pos = 0
        while True:
            best: tuple[int, int, int, int] | None = None
            for i, (regex, rank, _) in enumerate(matchers):
                m = found[i]
                if m is not None and m.start() < pos:
                    m = found[i] = _search(regex, text, pos)
                if m is not None:
                    candidate = (m.start(), -(m.end() - m.start()), rank, i)
                    best = candidate if best is None or candidate < best else best
            if best is None:
                break
            start, _, rank, i = best
            m = found[i]
            assert m is not None
            parts.append(text[pos:start])
            parts.append(replacement(m, rank, matchers[i][2]))
            pos = m.end()
        parts.append(text[pos:])
        return "".join(parts)

    return rewrite


def _search(regex: re.Pattern[str], text: str, pos: int) -> re.Match[str] | None:
    """The next non-empty match at or after pos (a pattern may match empty text mid-string)."""
    while pos <= len(text):
        m = regex.search(text, pos)
        if m is None or m.end() > m.start():
            return m
        pos = m.start() + 1
    return None
