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
# Abbreviations whose full stop may also end the sentence: "etc. Then" keeps one.
_ENDINGS = {"etc": "et cetera", "Jr": "Junior", "Sr": "Senior"}
_LATIN = {"e.g.": "for example", "i.e.": "that is", "vs.": "versus", "vs": "versus",
          "viz.": "namely", "cf.": "compare", "approx.": "approximately"}
# A following word that starts a new sentence (or the text ends there).
_NEXT_SENTENCE = re.compile(r"\s*$|\s+[\"'“‘(]?[A-Z]")

_ABBREVIATION = re.compile(
    r"(?P<title>\b(?:" + "|".join(sorted(_TITLES, key=len, reverse=True)) + r")\.(?=\s+[A-Z]))"
    r"|(?P<dotless>\b(?:" + "|".join(_DOTLESS_TITLES) + r")(?=\s+[A-Z]))"
    r"|(?P<mister>\b(?:Mr|Mrs|Messrs)\.(?=\s))"
    r"|(?P<saint>\bSt\b\.?)"
    r"|(?P<no>\b(?:No|no|Nos|nos)\.\s?(?=\d)|#(?=\d))"
    r"|(?P<page>\b(?:pp?)\.\s?(?=\d))"
    r"|(?P<circa>\b(?:c|ca|circa)\.\s?(?=\d{3,4}\b))"
    r"|(?P<ending>\b(?:etc|Jr|Sr)\.)"
    r"|(?P<latin>(?<![\w.])(?i:e\.g\.|i\.e\.|viz\.|cf\.|approx\.|vs\.?)(?![\w]))"
)


def _before(text: str, start: int) -> str:
    return text[max(0, start - 40):start]


_PREV_WORD = re.compile(r"(?:^|(?P<lead>[^\s]*)\s+)(?P<word>[\w']+)\s+$")


def _after_a_name(text: str, start: int) -> bool:
    """True where the word before is a name inside a sentence: "Baker" in "at Baker St."."""
    before = _before(text, start)
    m = _PREV_WORD.search(before)
    if not m or not m["word"][0].isupper():
        return False
    lead = m["lead"]
    at_sentence_start = m.start("word") == 0 and start <= 40 or (lead is not None and lead[-1:] in ".!?\"“")
    return not at_sentence_start


def _sentence_end(text: str, end: int) -> str:
    """The full stop an expanded abbreviation keeps where it also ended the sentence."""
    return "." if _NEXT_SENTENCE.match(text, end) else ""


def _abbreviation(m: re.Match[str]) -> str:
    text, kind, word = m.string, m.lastgroup, m.group()
    if kind == "title":
        return _TITLES[word[:-1]]
    if kind == "dotless":
        return _TITLES[word]
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
    "Volume", "Vol.", "Part", "Pt.", "Chapter", "Ch.", "Book", "Act", "Scene", "Section",
    "Appendix", "Article", "Canto", "Psalm", "Plate", "Figure", "Fig.", "Table", "Phase", "Stage",
    "Stanza", "Lesson", "Lecture", "Number", "Round", "Series", "Epistle", "Movement",
)
# The pronoun "I" is a numeral only where no sentence goes on after it:
# "Henry I of England", "Part I." but not "Part I think" or "Henry I said".
_LONE_I_OK = re.compile(r"\s*(?:$|[.,:;!?)\]—–-]|\s+(?:of|and|or|to)\b)|['’]s\b")


def _alternatives(words: tuple[str, ...], *, any_case: bool) -> str:
    out = []
    for w in dict.fromkeys(words):
        body = re.escape(w)
        if any_case:
            # Chapter, chapter and CHAPTER; never "cHAPTER".
            body = f"(?:{body}|{re.escape(w.lower())}|{re.escape(w.upper())})"
        out.append(body)
    return "|".join(out)


_NUMERAL = re.compile(
    r"(?P<lead>\b(?:World\s+War|WORLD\s+WAR|" + _alternatives(_NUMBERING_WORDS, any_case=True)
    + r")\s+)(?P<counted>" + _SMALL_ROMAN + r")\b"
    r"|(?P<name>\b(?:" + _alternatives(_REGNAL_NAMES, any_case=False) + r")\s+)"
    r"(?P<regnal>" + _SMALL_ROMAN + r")\b"
    r"|\b(?P<century>" + _SMALL_ROMAN + r")(?P<suffix>st|nd|rd|th)?(?=\s+[Cc]entur)"
    r"|\b(?P<ordinal>" + _ROMAN + r")(?P<osuffix>st|nd|rd|th)\b"
)
_HEADING_NUMERAL = re.compile(r"^(?P<numeral>C{0,3}" + _SMALL_ROMAN + r"|C{1,3})"
                              r"(?P<rest>[.:)]\s+|\s+[-—–:]\s+|[.:)]?$)")
_ROMAN_VALUES = {"M": 1000, "D": 500, "C": 100, "L": 50, "X": 10, "V": 5, "I": 1}


def roman_value(numeral: str) -> int:
    total = 0
    for a, b in zip(numeral, numeral[1:] + " "):
        value = _ROMAN_VALUES[a]
        total += -value if b != " " and _ROMAN_VALUES[b] > value else value
    return total


def _numeral(m: re.Match[str]) -> str:
    lone_i = m.group() != "" and m.group().endswith(" I")
    if lone_i and (not _LONE_I_OK.match(m.string, m.end()) or m["lead"] and m["lead"].islower()):
        return m.group()
    if m["counted"]:
        return m["lead"] + cardinal(roman_value(m["counted"]))
    if m["regnal"]:
        return f"{m['name']}the {ordinal(roman_value(m['regnal'])).capitalize()}"
    if m["century"]:
        return ordinal(roman_value(m["century"]))
    if m["ordinal"]:
        return ordinal(roman_value(m["ordinal"]))
    return m.group()


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
    "TB": ("terabyte", "terabytes"), "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"), "°": ("degree", "degrees"),
    "h": ("hour", "hours"), "hrs": ("hour", "hours"), "min": ("minute", "minutes"),
}
_UNIT_NAMES = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
# Words after which a four-digit number is a count, not a year ("page 1888").
_NOT_YEAR_BEFORE = re.compile(r"\b(?:number|numbers|page|pages|room|version|flat|house|"
                              r"plus|minus|times)\s*$", re.IGNORECASE)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")

_NUMBER = re.compile(
    r"(?P<iso>\b\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b)"
    r"|(?P<cur>[£$€¥])\s?(?P<amount>" + _NUM + r")(?:\s?(?P<mag>thousand|million|billion|trillion|bn|m|k)\b)?"
    r"|(?P<hour>\b(?:[01]?\d|2[0-4])):(?P<minute>[0-5]\d)(?::(?P<second>[0-5]\d))?\b(?:\s?" + _MERIDIEM.format("tmer") + ")?"
    r"|(?P<clock>\b(?:1[0-2]|0?[1-9]))\s?" + _MERIDIEM.format("mer")
    + r"|(?P<date3>\b\d{1,2}/\d{1,2}/\d{2,4}\b)"
    r"|(?<![\d.,])(?P<from>\d+)(?:\s?[–—]\s?|-)(?P<to>\d+)\b(?![.,]\d)"
    r"|(?:(?P<whole>\b\d{1,3})\s)?(?P<num>\b\d+)/(?P<den>\d+)\b(?![.,/]\d)"
    r"|(?P<vwhole>\d+)?(?P<vulgar>[" + "".join(_VULGAR) + r"])"
    r"|(?P<dotted>\b\d+(?:\.\d+){2,}\b)"
    r"|(?P<neg>(?<![\w.,])[-−])?(?:"
    r"(?P<pct>" + _NUM + r")\s?%"
    r"|(?P<ord>\d+)(?P<osuffix>st|nd|rd|th)\b"
    r"|(?P<decade>\d{1,3}0)['’]?s\b"
    r"|(?P<unum>" + _NUM + r")\s?(?P<unit>" + _UNIT_NAMES + r")(?![\w])"
    r"|(?P<plain>" + _NUM + r"))"
    r"|['’](?P<short_decade>\d0)s\b"
)


def _plain(m: re.Match[str]) -> str:
    text, written = m.string, m["plain"]
    if (len(written) == 4 and written.isdigit() and 1100 <= int(written) <= 2099
            and not _NOT_YEAR_BEFORE.search(_before(text, m.start()))):
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
    kind = next(k for k in ("iso", "cur", "hour", "clock", "date3", "from", "num", "vulgar",
                            "dotted", "pct", "ord", "decade", "unum", "plain", "short_decade")
                if m[k] is not None)
    sign = "minus " if m["neg"] else ""
    if kind == "iso":
        y, mo, d = (int(p) for p in m["iso"].split("-"))
        return f"{_MONTHS[mo - 1]} {ordinal(d)} {year(y)}"
    if kind == "cur":
        return _money(m)
    if kind == "hour":
        return _time(m)
    if kind == "clock":
        return f"{cardinal(int(m['clock']))} {_meridiem(m['mer'])}" + _sentence_end_of_tag(m, "mer")
    if kind == "date3":
        *rest, last = m["date3"].split("/")
        return " ".join([*(cardinal(int(p)) for p in rest), _year_or_number(last)])
    if kind == "from":
        return f"{_year_or_number(m['from'])} to {_year_or_number(m['to'])}"
    if kind == "num":
        return _fraction(m)
    if kind == "vulgar":
        num, den = _VULGAR[m["vulgar"]]
        if m["vwhole"]:
            return f"{cardinal(int(m['vwhole']))} and {fraction(num, den, mixed=True)}"
        return fraction(num, den)
    if kind == "dotted":
        return " point ".join(number(p) for p in m["dotted"].split("."))
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


# The space a digit run needs from a letter it was written against ("MP3").
_GLUED = re.compile(r"(?<=[^\W\d_])(?<![½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒])(?=\d)"
                    r"|(?<=\d)(?=[^\W\d_])(?![½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒])")


def _english(text: str, heading: bool) -> str:
    text = _ABBREVIATION.sub(_abbreviation, text)
    if heading:
        text = _HEADING_NUMERAL.sub(_heading_numeral, text, count=1)
    text = _NUMERAL.sub(_numeral, text)
    if _HAS_DIGIT.search(text):
        text = _NUMBER.sub(_number, _GLUED.sub(_glue_space, text))
    return text


_ORDINAL_SUFFIX = re.compile(r"\d(?:st|nd|rd|th|s)\b|\d['’]s\b")


def _glue_space(m: re.Match[str]) -> str:
    """A space between digits and letters, except ordinal, decade and unit suffixes."""
    text, at = m.string, m.start()
    if _ORDINAL_SUFFIX.match(text, at - 1) or _UNIT_AFTER.match(text, at):
        return ""
    return " "


_UNIT_AFTER = re.compile(r"(?:" + _UNIT_NAMES + r"|thousand|million|billion|trillion|bn|k)(?![\w])"
                         r"|[ap]m\b|[AP]M\b|[ap]\.m\.")
_HAS_DIGIT = re.compile(r"[\d½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒]")

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

    return _number_pattern(numbers).sub(spoken, text)


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

