"""Turning the text of one CSV cell into a clean value, or a reason it cannot be one.

Every cleaner comes in two speeds. `clean_column` first tries the whole column with C-level
conversions (`float`, `datetime.fromisoformat`) because real exports are mostly tidy; only a
column where that fails is walked value by value with the forgiving parser, which knows the
formats below and says in words what is wrong with a value.

Formats accepted (and why):
* Dates and datetimes: ISO 8601 (`2026-03-01`, `2026-03-01 14:00`, `2026-03-01T14:00:00Z`,
  with an offset), `YYYY/MM/DD`, US `MM/DD/YYYY` and European `DD.MM.YYYY`, each with an
  optional ` HH:MM[:SS]`. The separator tells the order: slashes with the year last are
  month-first, as US exports write them (`03/01/2026` is March 1st); dots are day-first
  (`01.03.2026` is March 1st too). Times with an offset are converted to UTC; times without
  one are taken as UTC. Seconds are the finest unit kept (MariaDB's DATETIME keeps no more,
  and a re-import must compare equal on every database).
* Money: `1234.5`, `$1,234.50`, `1 234,50 €`, `(12.00)` (accounting negative), `-5`,
  `USD 12`. When a value has both `.` and `,`, the last one is the decimal separator; a lone
  `,` is a thousands separator when followed by groups of three digits (`1,234`), otherwise
  a decimal comma (`12,5`). A currency symbol or code in the amount fills an empty currency.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from itertools import repeat
from operator import add, attrgetter
from typing import Any


class BadValue(ValueError):
    """A cell that cannot be cleaned; the message is the reason shown to the user."""


Cleaner = Callable[[str], Any]

EMAIL_RE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)+$"
)
CURRENCY_RE = re.compile(r"^[A-Za-z]{3}$")
CURRENCY_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW"}

_DATE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # (pattern, order of the three numbers)
    (re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})"), "ymd"),
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})"), "ymd"),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})"), "mdy"),
    (re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})"), "dmy"),
]
_TIME_RE = re.compile(r"^(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*$")
_THOUSANDS_COMMA_RE = re.compile(r"^\d{1,3}(,\d{3})+$")
_THOUSANDS_DOT_RE = re.compile(r"^\d{1,3}(\.\d{3}){2,}$")
_NUMBER_RE = re.compile(r"^\d+(\.\d+)?$|^\.\d+$")
_CODE_PREFIX_RE = re.compile(r"^\s*(?P<code>[A-Za-z]{3})\s*(?P<rest>[-\d.,\s'\u00a0]+)$")
_CODE_SUFFIX_RE = re.compile(r"^(?P<rest>[-\d.,\s'\u00a0]+?)\s*(?P<code>[A-Za-z]{3})\s*$")


def text(value: str) -> str | None:
    value = value.strip()
    return value or None


def email(value: str) -> str | None:
    value = value.strip().lower()
    if not value:
        return None
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise BadValue("not an email address")
    return value


def currency(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if value in CURRENCY_SYMBOLS:
        return CURRENCY_SYMBOLS[value]
    if not CURRENCY_RE.match(value):
        raise BadValue("not a three-letter currency code like USD")
    return value.upper()


def to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0) if moment.microsecond else moment


def parse_datetime(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        return to_naive_utc(datetime.fromisoformat(value.replace("z", "Z")))
    except ValueError:
        pass
    for pattern, order in _DATE_PATTERNS:
        match = pattern.match(value)
        if match is None:
            continue
        first, second, third = (int(g) for g in match.groups())
        year, month, day = {
            "ymd": (first, second, third),
            "mdy": (third, first, second),
            "dmy": (third, second, first),
        }[order]
        time_match = _TIME_RE.match(value[match.end() :])
        if time_match is None:
            break
        hour, minute, second_ = (int(g) if g else 0 for g in time_match.groups())
        try:
            return datetime(year, month, day, hour, minute, second_)
        except ValueError as exc:
            raise BadValue(f"not a real date or time ({exc})") from None
    raise BadValue(
        "not a date; use YYYY-MM-DD (optionally with HH:MM), YYYY/MM/DD, MM/DD/YYYY or DD.MM.YYYY"
    )


def parse_date(value: str) -> date | None:
    moment = parse_datetime(value)
    return moment.date() if moment is not None else None


def money(value: str) -> tuple[float, str | None] | None:
    """(amount, currency named in the text or None); None for an empty cell."""
    work = value.strip()
    if not work:
        return None
    found_currency = None
    negative = False
    if work.startswith("(") and work.endswith(")"):
        negative, work = True, work[1:-1].strip()
    for symbol, code in CURRENCY_SYMBOLS.items():
        if symbol in work:
            found_currency, work = code, work.replace(symbol, "")
    code_match = _CODE_PREFIX_RE.match(work) or _CODE_SUFFIX_RE.match(work)
    if code_match is not None:
        found_currency, work = code_match.group("code").upper(), code_match.group("rest")
    work = work.strip()
    if work.startswith("-"):
        negative, work = not negative, work[1:]
    work = work.replace(" ", "").replace("\u00a0", "").replace("'", "")
    if "." in work and "," in work:
        if work.rfind(",") > work.rfind("."):
            work = work.replace(".", "").replace(",", ".")
        else:
            work = work.replace(",", "")
    elif "," in work:
        if _THOUSANDS_COMMA_RE.match(work):
            work = work.replace(",", "")
        elif work.count(",") == 1:
            work = work.replace(",", ".")
    elif _THOUSANDS_DOT_RE.match(work):
        work = work.replace(".", "")
    if not _NUMBER_RE.match(work):
        raise BadValue("not a number; write it like 1234.50 or $1,234.50")
    amount = float(work)
    return (-amount if negative else amount), found_currency


def number(value: str) -> float | None:
    parsed = money(value)
    return None if parsed is None else parsed[0]


def whole_number(value: str) -> int | None:
    parsed = number(value)
    if parsed is None:
        return None
    if not parsed.is_integer():
        raise BadValue("not a whole number")
    return int(parsed)


def percentage_or_fraction(value: str) -> float | None:
    """A share 0..1, also written as a percentage (`35%`)."""
    stripped = value.strip()
    if stripped.endswith("%"):
        parsed = number(stripped[:-1])
        return None if parsed is None else parsed / 100
    return number(stripped)


# --- column-wise fast paths ----------------------------------------------------------------


_tzinfo = attrgetter("tzinfo")
_microsecond = attrgetter("microsecond")


def _fast_float(values: Sequence[str]) -> list[Any] | None:
    try:
        out = list(map(float, values))
    except ValueError:
        return None
    return out if all(map(math.isfinite, out)) else None


def _fast_datetime(values: Sequence[str]) -> list[Any] | None:
    try:
        out = list(map(datetime.fromisoformat, values))
    except (ValueError, TypeError):
        return None
    # attrgetter keeps these scans in C; a tz-aware or sub-second value is rare.
    if any(map(_tzinfo, out)) or any(map(_microsecond, out)):
        return [to_naive_utc(moment) for moment in out]
    return out


def _fast_date(values: Sequence[str]) -> list[Any] | None:
    try:
        return list(map(date.fromisoformat, values))
    except (ValueError, TypeError):
        return None


def _fast_int(values: Sequence[str]) -> list[Any] | None:
    try:
        return list(map(int, values))
    except ValueError:
        return None


# The tidy forms: "9" stands for an ASCII digit, anything else for itself.
_TIDY_DATETIME = "9999-99-99 99:99:99"
_TIDY_DATE = "9999-99-99"


_ASCII_DIGITS_AS_NINES = str.maketrans("0123456789", "9999999999")


def _all_in_layout(values: Sequence[str], layout: str) -> bool:
    """Whether every value is written exactly as `layout`: the column joined by line breaks,
    its ASCII digits turned into 9s, must read as the layout repeated (two C-level passes
    instead of a pattern match per value). A value holding a line break cannot pass: the
    breaks would not all fall where the layout's copies meet."""
    joined = "\n".join(values)
    return joined.translate(_ASCII_DIGITS_AS_NINES) == "\n".join(repeat(layout, len(values)))


def iso_text_of_tidy_datetimes(values: Sequence[str]) -> list[str] | None:
    """`parse_datetime(v).isoformat(" ", "microseconds")` for each of `values`, made from
    their text, when every value is written `YYYY-MM-DD HH:MM:SS` (or every one
    `YYYY-MM-DD`); None otherwise. The values must also parse (see `tidy_datetimes`).

    Formatting 200,000 datetimes back into text costs more than parsing them; for the
    usual export the text is already there.
    """
    if not values:
        return None
    if _all_in_layout(values, _TIDY_DATETIME):
        suffix = ".000000"
    elif _all_in_layout(values, _TIDY_DATE):
        suffix = " 00:00:00.000000"
    else:
        return None
    return list(map(add, values, repeat(suffix)))


def tidy_datetimes(values: Sequence[str]) -> tuple[list[datetime], list[str]] | None:
    """(`parse_datetime` of each value, its `isoformat(" ", "microseconds")`) for a column
    written in one tidy layout (see `iso_text_of_tidy_datetimes`) with only real dates;
    None for any other column, which `clean_column` then takes value by value."""
    iso_text = iso_text_of_tidy_datetimes(values)
    if iso_text is None:
        return None
    try:
        # The layout has no offset and no fraction: nothing to convert afterwards.
        return list(map(datetime.fromisoformat, values)), iso_text
    except ValueError:
        return None  # a day or hour that does not exist: said in words by the slow path


FAST_PATHS: dict[Cleaner, Callable[[Sequence[str]], list[Any] | None]] = {
    number: _fast_float,
    parse_datetime: _fast_datetime,
    whole_number: _fast_int,
    parse_date: _fast_date,
}


def clean_column(values: Sequence[str], cleaner: Cleaner) -> tuple[list[Any], dict[int, str]]:
    """Clean every value; returns the values (None where bad) and {index: reason}."""
    fast = FAST_PATHS.get(cleaner)
    if fast is not None:
        out = fast(values)
        if out is not None:
            return out, {}
    if cleaner is text:
        # The common case, done without a Python frame per value.
        stripped: list[Any] = list(map(str.strip, values))
        if "" in stripped:
            stripped = [value or None for value in stripped]
        return stripped, {}
    distinct = set(values)
    if len(distinct) * 2 <= len(values):
        # Few distinct values (currencies, regions, channels): clean each one once.
        outcomes: dict[str, tuple[Any, str | None]] = {}
        for value in distinct:
            try:
                outcomes[value] = (cleaner(value), None)
            except BadValue as exc:
                outcomes[value] = (None, str(exc))
        cleaned_by_value = {value: outcome for value, (outcome, _) in outcomes.items()}
        cleaned_values = list(map(cleaned_by_value.__getitem__, values))
        if all(reason is None for _, reason in outcomes.values()):
            return cleaned_values, {}
        return cleaned_values, {
            index: reason
            for index, value in enumerate(values)
            if (reason := outcomes[value][1]) is not None
        }
    cleaned: list[Any] = []
    problems: dict[int, str] = {}
    for index, value in enumerate(values):
        try:
            cleaned.append(cleaner(value))
        except BadValue as exc:
            cleaned.append(None)
            problems[index] = str(exc)
    return cleaned, problems
