"""Masking of personal data for anything others may see: channel posts, digests, logs.

`mask_pii` is the one function everything masks text with (Slack and shell replies that
are shared, digests, the audit log, and every log record through `crmbot.core.redact`);
`contains_pii` finds exactly what it would mask. Both look for:

* emails, also at short domains (`a@b.co`), at an IP address (`x@10.0.0.1`,
  `joe@[10.0.0.1]`), with an apostrophe (`o'brien@…`) or letters beyond ASCII;
* phone numbers of 7 digits or more, with the separators people use: spaces (also
  non-breaking ones, and two at a time), `-`, `.`, `/`, `_`, `,`, dashes, parentheses,
  a leading `+`, and an extension (`x 204`, `ext. 204`, `extension 12`), masked whole.

What is not a phone, though it is made of digits and separators, is left alone: dates and
times (`2026-06-30`, `30/06/2026`, `2026-06-30T08:00:00Z`), money and counts
(`1,234,567.89`, `1.234.567,89`), decimals (`0.8123456`), IP addresses, and ids that run
into letters or a `#` (`ORD-2026-000123`, `C000123`, `#100234567`). Numbers in
neighbouring columns of a table are not joined into one phone number unless they would
read as one.
"""

from __future__ import annotations

import re

# --- Emails ------------------------------------------------------------------------------

# The part before the @ starts and ends with a letter, digit or one of _%+- and may hold
# dots and apostrophes (o'brien). The lookbehind starts it at the beginning of its run of
# characters, which also keeps the search linear on long words.
_LOCAL = r"(?<![\w.%+\-])[\w%+\-](?:[\w.%+\-']*[\w%+\-])?"
_DOMAIN = (
    r"(?:"
    r"(?:[^\W_][\w\-]*\.)+[^\W\d_]{2,}(?![\w\-])"  # example.co.uk, b.co, müller.de
    r"|\[(?:IPv6:)?[0-9A-Fa-f:.]{2,45}\]"  # [10.0.0.1], [IPv6:2001:db8::1]
    r"|\d{1,3}(?:\.\d{1,3}){3}(?![\w\-]|\.\d)"  # 10.0.0.1
    r")"
)
EMAIL_PATTERN = re.compile(rf"{_LOCAL}@{_DOMAIN}")

# --- Phone numbers -----------------------------------------------------------------------

# Spaces as people and programs write them: ordinary, non-breaking, narrow non-breaking,
# figure and thin spaces.
_SPACE = "[ \u00a0\u202f\u2007\u2009]"
_DASHES = "\u2010\u2011\u2012\u2013"
# A candidate: digits with separators between them, at most two spaces in a row (three or
# more separate the columns of a table), optionally with a leading + or ( and a trailing
# extension. Not inside a word or number, not after a currency sign, a minus or a #
# (money, negative numbers, order numbers), and not running on into one.
PHONE_PATTERN = re.compile(
    rf"(?<![\w.,/#_\-{_DASHES}$€£¥₹])"
    rf"(?P<number>[+(]?\d(?:[\d()./_,\-{_DASHES}]|{_SPACE}{{1,2}}(?!{_SPACE}))*\d)"
    rf"(?P<extension>{_SPACE}{{0,2}}(?i:x|ext\.?|extension){_SPACE}{{0,2}}\d{{1,6}})?"
    rf"(?!\w|[.,/_\-{_DASHES}]\d)"
)
MIN_PHONE_DIGITS = 7
_GAP = re.compile(r"\D+")
_SPACES_AND_PARENTHESES = re.compile(f"{_SPACE}|[()]")
_DOUBLE_SPACE = re.compile(f"{_SPACE}{{2}}")
_THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:(?:,\d{3})+(?:\.\d+)?|(?:\.\d{3})+(?:,\d+)?)")
_DECIMAL = re.compile(r"\d+\.\d+")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# Where a candidate that is not one phone number is split to look for phones in its parts:
# first at two spaces (table columns), then at commas (a list).
_SPLITS = (re.compile(f"{_SPACE}{{2}}"), re.compile(f",{_SPACE}?"))
_CORE = re.compile(r"[+(]?\d(?:.*\d)?", re.DOTALL)

# Dates and times have enough digits and separators to pass for phone numbers; they are
# kept out of the phone search.
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_TIME = (
    r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    rf"(?:{_SPACE}?(?:Z|UTC|[+\-]\d{{2}}(?::?\d{{2}})?))?)?"
)
DATETIME_PATTERN = re.compile(
    rf"(?<!\d)(?:\d{{4}}([-/.]){_DAY}\1{_DAY}|{_DAY}([-/.]){_DAY}\2\d{{4}}){_TIME}(?!\d)"
    rf"|(?<![\d.:])\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?(?![\d:])"
)


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain[:1]}•••"


def mask_phone(phone: str | None) -> str:
    digits = re.sub(r"\D", "", phone or "")
    return f"•••{digits[-2:]}" if digits else ""


def _is_phone(number: str) -> bool:
    """Whether a candidate (without its extension) reads as one phone number."""
    if sum(c.isdigit() for c in number) < MIN_PHONE_DIGITS:
        return False
    if number.count("(") != number.count(")"):
        return False
    if _THOUSANDS.fullmatch(number) or _DECIMAL.fullmatch(number) or _IPV4.fullmatch(number):
        return False
    # Between two groups of digits stands at most one mark besides spaces and parentheses
    # ("555 - 123 4567", "(555) 123-4567"; not "555.-123").
    gaps = _GAP.findall(number.lstrip("+("))
    if any(len(_SPACES_AND_PARENTHESES.sub("", gap)) > 1 for gap in gaps):
        return False
    # A comma or a double space separates values (a list, the columns of a table), unless
    # the whole number is written with it alone: "555,123,4567", "555  123  4567".
    if any("," in gap for gap in gaps) and any(gap != "," for gap in gaps):
        return False
    doubled = [_DOUBLE_SPACE.fullmatch(gap) is not None for gap in gaps]
    return all(doubled) or not any(doubled)


def _phones_in(text: str, start: int, end: int, splits: int = 0) -> list[tuple[int, int]]:
    """The phone numbers in text[start:end], a candidate that matched PHONE_PATTERN."""
    candidate = text[start:end]
    if _is_phone(candidate):
        return [(start, end)]
    if candidate.startswith("(") and candidate.count("(") > candidate.count(")"):
        return _phones_in(text, start + 1, end, splits)  # "(call 555-123-4567)"
    if splits == len(_SPLITS):
        return []
    spans: list[tuple[int, int]] = []
    position = start
    for gap in [*_SPLITS[splits].finditer(text, start, end), None]:
        piece_end = gap.start() if gap is not None else end
        core = _CORE.search(text, position, piece_end)
        if core is not None:
            spans += _phones_in(text, core.start(), core.end(), splits + 1)
        if gap is not None:
            position = gap.end()
    return spans


def _pii_spans(text: str) -> list[tuple[int, int, str]]:
    """Every email and phone number in `text`: (start, end, its masked form), in order."""
    spans: list[tuple[int, int, str]] = []
    if "@" in text:
        spans = [(m.start(), m.end(), mask_email(m.group(0))) for m in EMAIL_PATTERN.finditer(text)]
    taken = [(s, e) for s, e, _ in spans] + [
        (m.start(), m.end()) for m in DATETIME_PATTERN.finditer(text)
    ]
    taken.sort()
    position = 0
    for limit, resume in [*taken, (len(text), len(text))]:
        if limit > position:
            for match in PHONE_PATTERN.finditer(text, position, limit):
                number_end = match.end("number")
                for start, end in _phones_in(text, match.start(), number_end):
                    # An extension goes with the number it follows.
                    whole = match.end() if end == number_end else end
                    spans.append((start, whole, mask_phone(text[start:end])))
        position = max(position, resume)
    spans.sort()
    return spans


def mask_pii(text: str) -> str:
    """Replace every email and phone number in `text` by its masked form."""
    spans = _pii_spans(text)
    if not spans:
        return text
    out: list[str] = []
    position = 0
    for start, end, masked in spans:
        out += [text[position:start], masked]
        position = end
    out.append(text[position:])
    return "".join(out)


def contains_pii(text: str) -> bool:
    """Whether `mask_pii` would mask anything in `text`."""
    return bool(_pii_spans(text))
