"""Spoken form: text as a narrator would read it aloud.

A voice reads what it is given. Offline, eSpeak reads "1888" as "one
thousand eight hundred eighty-eight", "£4" as "pound four", "Henry VIII" as
"Henry roman eight" and "Lt. Col." as "L T col". This stage rewrites the
text of each segment, in that segment's language, into words a voice cannot
misread. It runs after the user's lexicon (the lexicon wins: whatever it has
already rewritten is plain words by the time it gets here).

English gets three passes, in this order, because each needs the raw text
the next one rewrites:

1. abbreviations: titles before a name (Mr., Lt. Col.), "St." as Saint or
   Street, "No." and "#" only before a number, e.g., i.e., etc., vs. ...;
2. Roman numerals, only where they are numbers: after a regnal name
   ("Henry VIII"), after a numbering word ("Part III", "World War II"),
   before "century" or with an ordinal suffix ("XIXth"), and in a heading
   that is only a numeral. A numeral anywhere else stays as written, so the
   pronoun "I" and words spelled with numeral letters (MIX, CIVIL, DC) are
   never read as numbers;
3. numbers: money, clock times, ranges, fractions, percentages, ordinals,
   decades, units, years and plain cardinals, with num2words for the words.

Other languages num2words knows (fr, de, es, pt, ru, ar, ja, ko, ...) get
their numbers spoken (integers, negatives, decimals written the local way;
years in German); everything else in them is left unchanged, and a language
num2words does not know (zh) is returned as it is.

`spoken_form` is pure and idempotent, and its output holds no ASCII digits
where the language is handled, so a second pass finds nothing to do. Every
pattern is compiled once, at import; each pass is one regex scan.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from num2words import CONVERTER_CLASSES, num2words

# ---------------------------------------------------------------- words ---


@lru_cache(maxsize=4096)
def _words(value: int | Decimal, lang: str = "en", to: str = "cardinal") -> str:
    """num2words without its list commas ("one thousand, eight hundred")."""
    return num2words(value, lang=lang, to=to).replace(",", "").replace("  ", " ").strip()


def cardinal(n: int) -> str:
    return _words(n)


def ordinal(n: int) -> str:
    return _words(n, to="ordinal")


def year(n: int) -> str:
    """A year as people say it: 1888 eighteen eighty-eight, 2005 two thousand five."""
    if n % 1000 < 10 and 1000 <= n < 3000:
        rest = n % 1000
        return cardinal(n - rest) + (f" {cardinal(rest)}" if rest else "")
    return _words(n, to="year").replace("oh-", "oh ")


def digits(text: str) -> str:
    """Digit by digit, for identifiers and leading zeros: 007 zero zero seven."""
    return " ".join(cardinal(int(d)) for d in text)


def _integer(text: str) -> str:
    plain = text.replace(",", "")
    if len(plain) > 1 and plain[0] == "0" or len(plain) > 12:
        return digits(plain)
    return cardinal(int(plain))


def number(text: str) -> str:
    """A written number (1,888 or 3.14 or 007) as words."""
    whole, _, frac = text.partition(".")
    out = _integer(whole) if whole else "zero"
    return f"{out} point {digits(frac)}" if frac else out


def is_one(text: str) -> bool:
    return text.replace(",", "") == "1"


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_VULGAR = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5),
           "⅖": (2, 5), "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7),
           "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8), "⅞": (7, 8), "⅑": (1, 9), "⅒": (1, 10)}


# A letter, for "not part of a word": a word character that is no digit and
# no vulgar fraction (the number pass reads both, and spaces them off).
_LETTER = "[^\\W\\d_" + "".join(_VULGAR) + "]"


def fraction(num: int, den: int, *, mixed: bool = False) -> str:
    """3/4 three quarters; after a whole number, 1/2 is "a half"."""
    one, many = _FRACTION_NAMES.get(den, (ordinal(den), ordinal(den) + "s"))
    if num == 1:
        return f"{'a' if mixed else 'one'} {one}"
    return f"{cardinal(num)} {many}"


# -------------------------------------------------------- abbreviations ---

_TITLES = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Messrs": "Messieurs", "Dr": "Doctor",
    "Prof": "Professor", "Capt": "Captain", "Col": "Colonel", "Lt": "Lieutenant",
    "Gen": "General", "Sgt": "Sergeant", "Maj": "Major", "Cpl": "Corporal", "Adm": "Admiral",
    "Rev": "Reverend", "Revd": "Reverend", "Hon": "Honourable", "Gov": "Governor",
    "Sen": "Senator", "Pres": "President", "Fr": "Father", "Mt": "Mount", "Ft": "Fort",
}
# Only these are unambiguous without a dot ("Mr Holmes", British style).
_DOTLESS_TITLES = ("Mr", "Mrs", "Ms", "Dr")
_NUMBERING_ABBREVIATIONS = {"Vol": "Volume", "Vols": "Volumes", "Pt": "Part", "Ch": "Chapter",
                            "Chs": "Chapters", "Fig": "Figure", "Figs": "Figures"}
# Abbreviations whose full stop may also end the sentence: "etc. Then" keeps one.
_ENDINGS = {"etc": "et cetera", "Jr": "Junior", "Sr": "Senior"}
_LATIN = {"e.g.": "for example", "i.e.": "that is", "vs.": "versus", "vs": "versus",
          "viz.": "namely", "cf.": "compare", "approx.": "approximately"}
# A following word that starts a new sentence (or the text ends there).
_NEXT_SENTENCE = re.compile(r"\s*$|\s+[\"'“‘(]?[A-Z]")

# Not touching a letter: a digit may touch ("1888e.g."), since the number pass
# then puts a space there and a second pass must find nothing new.
_L = f"(?<!{_LETTER})"
_ABBREVIATION = re.compile(
    r"(?P<title>" + _L + r"(?:" + "|".join(sorted(_TITLES, key=len, reverse=True)) + r")\.(?=\s+[A-Z]))"
    r"|(?P<dotless>" + _L + r"(?:" + "|".join(_DOTLESS_TITLES) + r")(?=\s+(?:[A-Z]|and\s|&)))"
    r"|(?P<numbering>" + _L + r"(?:Vol|Pt|Ch|Fig|Vols|Chs|Figs)\.\s?(?=\d|[IVXL]+\b))"
    r"|(?P<mister>" + _L + r"(?:Mr|Mrs|Messrs)\.(?=\s))"
    r"|(?P<saint>" + _L + r"St(?!" + _LETTER + r")\.?)"
    r"|(?P<no>" + _L + r"(?:No|no|Nos|nos)\.\s?(?=\d)|#(?=\d))"
    r"|(?P<page>" + _L + r"(?:pp?)\.\s?(?=\d))"
    r"|(?P<circa>" + _L + r"(?:c|ca|circa)\.\s?(?=\d{3,4}\b))"
    r"|(?P<ending>" + _L + r"(?:etc|Jr|Sr)\.)"
    r"|(?P<latin>" + _L + r"(?i:e\.g\.|i\.e\.|viz\.|cf\.|approx\.|vs\.?)(?!" + _LETTER + "))"
)


def _before(text: str, start: int) -> str:
    return text[max(0, start - 40):start]


_PREV_WORD = re.compile(r"(?:^|(?P<lead>[^\s]*)\s+)(?P<word>[\w']+)(?P<dot>\.?)\s+$")


# Abbreviations whose full stop never ends a sentence.
_NOT_ENDINGS = frozenset({t.lower() for t in _TITLES} | {"e.g", "i.e", "vs", "cf", "viz", "approx"})


def _after_a_name(text: str, start: int) -> bool:
    """True where the word before is a name inside a sentence: "Baker" in "at Baker St."."""
    before = _before(text, start)
    m = _PREV_WORD.search(before)
    letters = _TRAILING_LETTERS.search(m["word"]) if m else None
    if m is None or letters is None or not letters.group()[0].isupper():
        return False
    if m["dot"] and letters.group() not in _TITLES and letters.group() != "St":
        return False  # a full stop ended the sentence; "Mr." is a title, read "Mister"
    if letters.start():  # "1888Baker": the digits become a word before it
        return True
    lead = m["lead"]
    if lead is None:
        return not (m.start("word") == 0 and start <= 40)
    if lead.endswith(".") and lead.lower().strip(".").rsplit(" ", 1)[-1] in _NOT_ENDINGS:
        return True  # "e.g. Baker St.": that full stop ended no sentence
    return lead[-1:] not in ".!?\"“"


def _sentence_end(text: str, end: int) -> str:
    """The full stop an expanded abbreviation keeps where it also ended the sentence."""
    return "." if _NEXT_SENTENCE.match(text, end) else ""


def _abbreviation(m: re.Match[str]) -> str:
    text, kind, word = m.string, m.lastgroup, m.group()
    if kind == "title":
        return _TITLES[word[:-1]]
    if kind == "dotless":
        return _TITLES[word]
    if kind == "numbering":
        return _NUMBERING_ABBREVIATIONS[word.rstrip(". ")] + " "
    if kind == "mister":
        return _TITLES[word[:-1]]
    if kind == "saint":
        followed_by_name = re.match(r"\s+[A-Z]", text[m.end():m.end() + 2]) is not None
        if _after_a_name(text, m.start()):
            return "Street" + (_sentence_end(text, m.end()) if word.endswith(".") else "")
        return "Saint" if followed_by_name else word
    if kind == "no":
        return "numbers " if word.lower().startswith("nos") else "number "
    if kind == "page":
        return "pages " if word.startswith("pp") else "page "
    if kind == "circa":
        return "circa "
    if kind == "ending":
        return _ENDINGS[word[:-1]] + _sentence_end(text, m.end())
    spoken = _LATIN[word.lower()]
    return spoken.capitalize() if word[0].isupper() else spoken


# -------------------------------------------------------------- numerals ---

_ROMAN = r"(?=[MDCLXVI])M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})"
# Numerals after a name or a numbering word: I, V, X and L only, so "Type C",
# "Class D" or "Washington DC" are never numbers.
_SMALL_ROMAN = r"(?=[XVIL])L?X{0,3}(?:IX|IV|V?I{0,3})"
_REGNAL_NAMES = (
    "Henry", "Edward", "George", "William", "Charles", "James", "Elizabeth", "Mary", "Richard",
    "John", "Louis", "Philip", "Philippe", "Frederick", "Friedrich", "Wilhelm", "Peter", "Catherine",
    "Alexander", "Nicholas", "Ivan", "Napoleon", "Pius", "Leo", "Gregory", "Innocent", "Benedict",
    "Clement", "Boniface", "Urban", "Paul", "Sixtus", "Ferdinand", "Francis", "Franz", "Otto",
    "Alfonso", "Carlos", "Juan", "Felipe", "Victor", "Umberto", "Gustav", "Gustavus", "Christian",
    "Haakon", "Olaf", "Harald", "Sancho", "Pedro", "Manuel", "Joseph", "Leopold", "Rudolf",
    "Sigismund", "Casimir", "Stephen", "Malcolm", "David", "Robert", "Alfred", "Harold", "Anne",
    "Victoria", "Ramesses", "Ramses", "Thutmose", "Amenhotep", "Ptolemy", "Antiochus", "Cleopatra",
    "Constantine", "Justinian", "Theodosius", "Basil", "Leopold", "Baldwin", "Conrad", "Hugh",
)
_NUMBERING_WORDS = (
    "Volume", "Part", "Chapter", "Book", "Act", "Scene", "Section",
    "Appendix", "Article", "Canto", "Psalm", "Plate", "Figure", "Table", "Phase", "Stage",
    "Stanza", "Lesson", "Lecture", "Number", "Round", "Series", "Epistle", "Movement",
)
# The pronoun "I" is a numeral only where no sentence goes on after it:
# "Henry I of England", "Part I." but not "Part I think" or "Henry I said".
_LONE_I_OK = re.compile(r"\s*(?:$|[.,:;!?)\]—–-]|\s+(?:of|and|or|to)\b)|['’]s\b")


_ROMAN_TOKEN = re.compile(r"[IVXLCDM][IVXLCDM]*(?:st|nd|rd|th)?(?!" + _LETTER + ")")
_VALID_ROMAN = re.compile(_ROMAN)
_VALID_SMALL_ROMAN = re.compile(_SMALL_ROMAN)
_CENTURY_AFTER = re.compile(r"\s+[Cc]entur")
_HEADING_NUMERAL = re.compile(r"(?P<numeral>C{0,3}" + _SMALL_ROMAN + r"|C{1,3})"
                              r"(?P<rest>[.:)]\s+|\s+[-—–:]\s+|[.:)]?$)")
_ROMAN_VALUES = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}
_NUMBERING = frozenset(w for word in _NUMBERING_WORDS for w in (word, word.lower(), word.upper()))
_REGNAL = frozenset(_REGNAL_NAMES)


def roman_value(numeral: str) -> int:
    total = 0
    for a, b in zip(numeral, numeral[1:] + " "):
        value = _ROMAN_VALUES[a]
        total += -value if b != " " and _ROMAN_VALUES[b] > value else value
    return total


_TRAILING_LETTERS = re.compile(_LETTER + "+$")


def _lead_words(text: str, start: int) -> tuple[str, str]:
    """The word before `start` and the two words before it, if only spaces separate them."""
    before = text[max(0, start - 30):start]
    if not before[-1:].isspace():
        return "", ""
    words = before.split()
    if not words:
        return "", ""
    # The letters at the word's end: "(Part", "1,888Henry" (digits get a space later).
    last = _TRAILING_LETTERS.search(words[-1])
    if last is None:
        return "", ""
    first = _TRAILING_LETTERS.search(words[-2]) if len(words) > 1 else None
    return last.group(), f"{first.group() if first else ''} {last.group()}"


def _numeral(text: str, token: re.Match[str], at: int) -> tuple[int, int, str] | None:
    """(start, end, words) for a Roman numeral that is a number here, else None."""
    start, end = token.span()
    if at > start or start and (text[start - 1].isalpha() or text[start - 1] in "'’_-"):
        return None  # the end of a word ("IBM's" "ZIV")
    word = token.group()
    numeral = word.rstrip("stndrh") if word[-2:] in ("st", "nd", "rd", "th") else word
    if not _VALID_ROMAN.fullmatch(numeral):
        return None
    if numeral != word:  # "XIXth"
        return start, end, ordinal(roman_value(numeral))
    if not _VALID_SMALL_ROMAN.fullmatch(numeral):
        return None
    if _CENTURY_AFTER.match(text, end):  # "the XIX century"
        return start, end, ordinal(roman_value(numeral))
    last, two = _lead_words(text, start)
    counted = last in _NUMBERING or two in ("World War", "WORLD WAR")
    if not counted and last not in _REGNAL:
        return None
    if numeral == "I" and (last.islower() or not _LONE_I_OK.match(text, end)):
        return None  # "part I think", "Henry I said": the pronoun
    if counted:
        return start, end, cardinal(roman_value(numeral))
    return start, end, "the " + ordinal(roman_value(numeral)).capitalize()


def _heading_numeral(m: re.Match[str]) -> str:
    return cardinal(roman_value(m["numeral"])).capitalize() + m["rest"]


# --------------------------------------------------------------- numbers ---

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_MERIDIEM = r"(?P<{0}>[ap]\.m\.|[AP]\.M\.|[ap]m\b|[AP]M\b)"
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "", "")}
_MAGNITUDE = {"thousand": "thousand", "k": "thousand", "million": "million", "m": "million",
              "bn": "billion", "billion": "billion", "trillion": "trillion"}
# Units after a number: (singular, plural).
_UNITS = {
    "km/h": ("kilometre per hour", "kilometres per hour"), "kph": ("kilometre per hour", "kilometres per hour"),
    "mph": ("mile per hour", "miles per hour"), "km": ("kilometre", "kilometres"),
    "cm": ("centimetre", "centimetres"), "mm": ("millimetre", "millimetres"), "m": ("metre", "metres"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"), "yd": ("yard", "yards"), "mi": ("mile", "miles"),
    "ml": ("millilitre", "millilitres"), "kHz": ("kilohertz", "kilohertz"), "Hz": ("hertz", "hertz"),
    "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"), "kW": ("kilowatt", "kilowatts"),
    "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"), "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"), "°": ("degree", "degrees"),
    "kPa": ("kilopascal", "kilopascals"), "hPa": ("hectopascal", "hectopascals"),
    "h": ("hour", "hours"), "hrs": ("hour", "hours"), "min": ("minute", "minutes"),
}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
# Words after which a four-digit number is a count, not a year ("page 1888").
_NOT_YEAR_BEFORE = re.compile(r"\b(?:number|numbers|page|pages|room|version|flat|house|"
                              r"plus|minus|times)\s*$", re.IGNORECASE)
_YEAR_CUE = re.compile(r"\b(?:in|of|since|by|from|until|till|circa|year|summer|winter|spring|"
                       r"autumn)\s*$", re.IGNORECASE)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

_NUMBER_KINDS = (
    ("iso", r"\b\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b"),
    ("cur", r"(?P<cur>[£$€¥])\s?(?P<amount>" + _NUM + r")"
            r"(?:\s?(?P<mag>thousand|million|billion|trillion|bn|m|k)\b)?"),
    ("hour", r"(?P<hour>\b(?:[01]?\d|2[0-4])):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d))?\b"
             r"(?:\s?" + _MERIDIEM.format("tmer") + ")?"),
    ("clock", r"(?P<clock>\b(?:1[0-2]|0?[1-9]))\s?" + _MERIDIEM.format("mer")),
    ("date3", r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
    ("range", r"(?<![\d.,])(?P<from>\d+)(?:\s?[–—]\s?|-)(?P<to>\d+)\b(?![.,]\d)"),
    ("fraction", r"(?:(?P<whole>\b\d{1,3})\s)?(?P<num>\b\d+)/(?P<den>\d+)\b(?![.,/]\d)"),
    ("vulgar", r"(?P<vwhole>\d+)?(?P<vulgar>[" + "".join(_VULGAR) + r"])"),
    ("dotted", r"\b\d+(?:\.\d+){2,}\b"),
    ("signed", r"(?P<neg>(?<![\w.,])[-−])?(?:"
               r"(?P<pct>" + _NUM + r")\s?%"
               r"|(?P<ord>\d+)(?P<osuffix>st|nd|rd|th)\b"
               r"|(?P<decade>\d{1,3}0)['’]?s\b"
               r"|(?P<unum>" + _NUM + r")\s?(?P<unit>" + _UNIT_NAMES + r")(?![\w])"
               r"|(?P<plain>" + _NUM + r"))"),
    ("short_decade", r"['’](?P<short_decade>\d0)s\b"),
)
# Each kind is one outer group, so a match's lastgroup names its kind.
_NUMBER = re.compile("|".join(f"(?P<k_{kind}>{body})" for kind, body in _NUMBER_KINDS))


def _plain(m: re.Match[str]) -> str:
    text, written = m.string, m["plain"]
    if len(written) == 4 and written.isdigit() and 1000 <= int(written) <= 2099:
        before = _before(text, m.start())
        # 1000 to 1099 are counts more often than years: a year only after "in 1066".
        if int(written) >= 1100 and not _NOT_YEAR_BEFORE.search(before) or _YEAR_CUE.search(before):
            return year(int(written))
    return number(written)


def _year_or_number(written: str) -> str:
    n = int(written)
    return year(n) if len(written) == 4 and 1000 <= n <= 2099 else cardinal(n)


def _money(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCY[m["cur"]]
    amount = m["amount"].replace(",", "")
    if m["mag"]:
        return f"{number(amount)} {_MAGNITUDE[m['mag']]} {many}"
    whole, _, cents = amount.partition(".")
    if cents and (len(cents) != 2 or not sub_one):
        return f"{number(amount)} {many}"
    parts = []
    if int(whole) or not cents or not int(cents):
        parts.append(f"{number(whole)} {one if int(whole) == 1 else many}")
    if cents and int(cents):
        parts.append(f"{cardinal(int(cents))} {sub_one if int(cents) == 1 else sub_many}")
    return " and ".join(parts)


def _meridiem(tag: str) -> str:
    return "ay em" if tag[0] in "aA" else "pee em"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m["hour"]), int(m["minute"])
    if minute == 0:
        words = cardinal(hour) + ("" if m["tmer"] else " o'clock")
    elif minute < 10:
        words = f"{cardinal(hour)} oh {cardinal(minute)}"
    else:
        words = f"{cardinal(hour)} {cardinal(minute)}"
    if m["second"]:
        words += f" and {cardinal(int(m['second']))} seconds"
    if m["tmer"]:
        words += " " + _meridiem(m["tmer"]) + _sentence_end_of_tag(m, "tmer")
    return words


def _sentence_end_of_tag(m: re.Match[str], group: str) -> str:
    return _sentence_end(m.string, m.end()) if m[group].endswith(".") else ""


def _number(m: re.Match[str]) -> str:
    kind = (m.lastgroup or "")[2:]
    if kind == "signed":
        kind = next(k for k in ("pct", "ord", "decade", "unum", "plain") if m[k] is not None)
    sign = "minus " if m["neg"] else ""
    if kind == "iso":
        y, mo, d = (int(p) for p in m.group().split("-"))
        # Opens with a small word: a capital here would make "Mrs 2020-05-01" a title.
        return f"the {ordinal(d)} of {_MONTHS[mo - 1]} {year(y)}"
    if kind == "cur":
        return _money(m)
    if kind == "hour":
        return _time(m)
    if kind == "clock":
        return f"{cardinal(int(m['clock']))} {_meridiem(m['mer'])}" + _sentence_end_of_tag(m, "mer")
    if kind == "date3":
        *rest, last = m.group().split("/")
        return " ".join([*(cardinal(int(p)) for p in rest), _year_or_number(last)])
    if kind == "range":
        return f"{_year_or_number(m['from'])} to {_year_or_number(m['to'])}"
    if kind == "fraction":
        return _fraction(m)
    if kind == "vulgar":
        num, den = _VULGAR[m["vulgar"]]
        if m["vulgar"] == "½" and _A_AFTER.match(m.string, m.end()):
            return "half"  # "½ a mile"
        if m["vwhole"]:
            return f"{cardinal(int(m['vwhole']))} and {fraction(num, den, mixed=True)}"
        return fraction(num, den)
    if kind == "dotted":
        return " point ".join(number(p) for p in m.group().split("."))
    if kind == "pct":
        return f"{sign}{number(m['pct'])} percent"
    if kind == "ord":
        return sign + ordinal(int(m["ord"]))
    if kind == "decade":
        return sign + _decade(m["decade"])
    if kind == "unum":
        one, many = _UNITS[m["unit"]]
        return f"{sign}{number(m['unum'])} {one if is_one(m['unum']) and not sign else many}"
    if kind == "short_decade":
        return _decade(m["short_decade"])
    return sign + _plain(m)


_A_AFTER = re.compile(r"\s+an?\b")


def _fraction(m: re.Match[str]) -> str:
    num, den = int(m["num"]), int(m["den"])
    if (num, den) == (24, 7):
        return "twenty-four seven"
    if 0 < num < den <= 100:
        spoken = fraction(num, den, mixed=bool(m["whole"]))
        return f"{cardinal(int(m['whole']))} and {spoken}" if m["whole"] else spoken
    head = f"{number(m['whole'])} " if m["whole"] else ""
    return f"{head}{cardinal(num)} {'over' if den else 'slash'} {cardinal(den)}"


def _decade(written: str) -> str:
    """1880s eighteen eighties, 1900s nineteen hundreds, 80s eighties."""
    n = int(written)
    words = year(n) if len(written) == 4 else cardinal(n % 100 if len(written) == 2 else n)
    if words.endswith("y"):
        return words[:-1] + "ies"
    return words + ("es" if words.endswith("x") else "s")


_VULGAR_CHARS = "".join(_VULGAR)
_HAS_DIGIT = re.compile(f"[\\d{_VULGAR_CHARS}]")

# Each pass is a scan for a rare, cheap mark (a digit, a full stop, a capital
# I V X L C D M) that sre finds in C, then a full pattern matched only there:
# a pattern that opens with a word boundary or a choice of named groups gets
# no such scan, and tried at every position it took seconds per megabyte.
# An apostrophe or a minus only as the start of "'90s" or "-5": prose is full of both.
_NUMBER_MARK = re.compile(f"[\\d£$€¥{_VULGAR_CHARS}'’\\-−](?:(?<=['’\\-−])(?=\\d)|(?<!['’\\-−]))"
                          f"[\\d£$€¥{_VULGAR_CHARS}]*")
_ABBREVIATION_MARK = re.compile(r"\.|#|M(?=rs?\s|s\s)|D(?=r\s)|S(?=t\s)|v(?=s\W)")
_ABBREVIATION_WORDS = frozenset(
    w.lower() for w in (*_TITLES, *_NUMBERING_ABBREVIATIONS, *_ENDINGS, "st", "no", "nos", "p",
                        "pp", "c", "ca", "circa", "e", "i", "viz", "cf", "approx", "vs"))
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

Found = Callable[[str, "re.Match[str]", int], "tuple[int, int, str] | None"]


def _rewrite(text: str, marks: re.Pattern[str], found: Found) -> str:
    """`text` with each (start, end, words) that `found` makes of a mark put in place.

    Like re.sub, left to right and without overlaps: `found` is told where the
    previous rewrite ended (a mark may run on past it: "1,8881888").
    """
    out: list[str] = []
    last = 0
    for mark in marks.finditer(text):
        while mark.end() > last:
            hit = found(text, mark, max(mark.start(), last))
            if hit is None or hit[0] < last or hit[1] <= max(hit[0], last):
                break
            start, end, words = hit
            out += (text[last:start], words)
            last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _abbreviation_at(text: str, mark: re.Match[str], at: int) -> tuple[int, int, str] | None:
    start = mark.start()
    if at > start:
        return None
    if mark.group() != ".":
        m = _ABBREVIATION.match(text, start)
        return None if m is None else (m.start(), m.end(), _abbreviation(m))
    # The word before the full stop, or the one before that for "e.g." and "i.e.".
    for _ in range(2):
        end = start
        while start and text[start - 1] in _LETTERS:
            start -= 1
        if start == end:
            return None
        # Most full stops end a sentence: the full pattern only runs after a known word.
        if text[start:end].lower() in _ABBREVIATION_WORDS:
            m = _ABBREVIATION.match(text, start)
            if m is not None and m.end() > mark.start():
                return m.start(), m.end(), _abbreviation(m)
        if start < 2 or text[start - 1] != ".":
            return None
        start -= 1
    return None


def _number_at(text: str, mark: re.Match[str], at: int) -> tuple[int, int, str] | None:
    m = _NUMBER.match(text, at)
    if m is None and mark.end() - at > 1:  # "-19" in "COVID-19" is no minus
        m = _NUMBER.match(text, at + 1)
    if m is None:
        return None
    words = _number(m)
    # Digits written against letters ("MP3", "3D") or against digits read
    # before them ("1,8881888") are read as a word of their own.
    if m.start() and text[m.start() - 1].isalnum():
        words = " " + words
    if text[m.end():m.end() + 1].isalnum():
        words += " "
    return m.start(), m.end(), words


def _english(text: str, heading: bool) -> str:
    text = _rewrite(text, _ABBREVIATION_MARK, _abbreviation_at)
    if heading:
        m = _HEADING_NUMERAL.match(text)
        text = text if m is None else _heading_numeral(m) + text[m.end():]
    text = _rewrite(text, _ROMAN_TOKEN, _numeral)
    if _HAS_DIGIT.search(text):
        text = _rewrite(text, _NUMBER_MARK, _number_at)
    return text


# ------------------------------------------------------ other languages ---


@dataclass(frozen=True)
class _Numbers:
    """How a language writes numbers: its decimal mark and thousands mark."""

    decimal: str
    group: str
    years: bool = False  # num2words has a year reading worth using
    decimals: bool = True  # num2words reads decimals well


_LANGUAGES = {
    "fr": _Numbers(",", "."), "de": _Numbers(",", ".", years=True), "es": _Numbers(",", "."),
    "pt": _Numbers(",", "."), "it": _Numbers(",", "."), "nl": _Numbers(",", "."),
    "ru": _Numbers(",", "."), "ar": _Numbers(".", ",", decimals=False),
    "ja": _Numbers(".", ","), "ko": _Numbers(".", ","),
}


@lru_cache(maxsize=64)
def _number_pattern(numbers: _Numbers) -> re.Pattern[str]:
    d, g = re.escape(numbers.decimal), re.escape(numbers.group)
    # Latin letters only: digits touch CJK characters ("第3章") as a matter of course.
    return re.compile(rf"(?P<neg>(?<![A-Za-z\d.,])[-−])?(?<![A-Za-z\d{d}{g}])"
                      rf"(?P<int>\d{{1,3}}(?:{g}\d{{3}})+|\d+)(?:{d}(?P<frac>\d+))?(?![A-Za-z\d])")


def _foreign(text: str, lang: str) -> str:
    numbers = _LANGUAGES.get(lang, _Numbers(".", ","))

    def spoken(m: re.Match[str]) -> str:
        if m["frac"] and not numbers.decimals:
            return m.group()
        written = m["int"].replace(numbers.group, "")
        if len(written) > 15:
            return m.group()
        value = int(written)
        if m["frac"]:
            words = _words(Decimal(f"{'-' if m['neg'] else ''}{value}.{m['frac']}"), lang)
        elif numbers.years and not m["neg"] and len(written) == 4 and 1100 <= value <= 1999:
            words = _words(value, lang, "year")
        else:
            words = _words(-value if m["neg"] else value, lang)
        return words

    pattern = _number_pattern(numbers)

    def found(text: str, mark: re.Match[str], at: int) -> tuple[int, int, str] | None:
        m = pattern.match(text, at)
        return None if m is None else (m.start(), m.end(), spoken(m))

    return _rewrite(text, _FOREIGN_MARK, found)


_FOREIGN_MARK = re.compile(r"[\d\-−]")


# ------------------------------------------------------------------ API ---


def language_key(language: str) -> str:
    """The num2words key for a voice language: "en-GB" -> "en"; "zh" has none."""
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]


def handled(language: str) -> bool:
    return language_key(language) in CONVERTER_CLASSES


def spoken_form(text: str, language: str = "en", *, heading: bool = False) -> str:
    """`text` as it should be read aloud in `language`.

    heading=True also reads a heading that is only a numeral ("IV") or that
    starts with one ("IV. The Return") as a number.
    """
    lang = language_key(language)
    if lang in ("en", "all"):
        return _english(text, heading)
    if lang in CONVERTER_CLASSES and _HAS_DIGIT.search(text):
        return _foreign(text, lang)
    return text


def added_characters(original: str, spoken: str) -> int:
    """Characters the spoken form adds, which a paid service bills for."""
    return len(spoken) - len(original)

