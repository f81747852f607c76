"""Numbers as people write them ("5k", "$2.5m", "50 percent", "five"), spans of time in
days, and the scale each measure is stored in."""

from __future__ import annotations

import re

from crmbot.ask.parse.vocabulary import NUMBER_WORDS
from crmbot.ask.query import PROBABILITY_FIELDS

_NUMBER = re.compile(
    r"^(?P<cur>[$€£])?(?P<num>(?:\d+(?:,\d{3})+|\d+)(?:\.\d+)?)(?P<suf>k|m|mm|bn|b|%)?"
    r"(?: (?P<word>percent|pct|thousand|million|k|%|dollars|usd|eur|euros))?$"
)


def parse_number(text: str) -> tuple[float, bool] | None:
    """ "5k" -> (5000, False); "50%" -> (50, True); "$2.5m" -> (2500000, False)."""
    match = _NUMBER.match(text.strip())
    if not match:
        return None
    value = float(match.group("num").replace(",", ""))
    suffix = (match.group("suf") or "") + (match.group("word") or "")
    percent = "%" in suffix or "percent" in suffix or "pct" in suffix
    if suffix.startswith("k") or "thousand" in suffix:
        value *= 1_000
    elif suffix.startswith(("m", "million")):
        value *= 1_000_000
    elif suffix.startswith("b"):
        value *= 1_000_000_000
    return value, percent


def count_of(word: str) -> int | None:
    """ "5" -> 5, "five" -> 5, "a" -> 1; None for any other word."""
    if word.isascii() and word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def to_days(amount: float, unit: str) -> float:
    unit = unit.lower()
    if unit.startswith("w"):
        return amount * 7
    if unit.startswith("mo") or unit == "months" or unit == "month":
        return amount * 30
    if unit.startswith("y"):
        return amount * 365
    return amount


def full_unit(unit: str) -> str:
    """ "wk", "mos", "y" -> "weeks", "months", "years": the plural dateparser reads."""
    unit = unit.lower()
    if unit.startswith("w"):
        return "weeks"
    if unit.startswith("mo"):
        return "months"
    if unit.startswith("y"):
        return "years"
    return "days"


def stored_value(field_name: str, value: float, percent: bool) -> float:
    """The stored scale: probabilities 0..1 ("over 50" means 50%), satisfaction 0..100."""
    if field_name in PROBABILITY_FIELDS:
        return value / 100 if (percent or value > 1) else value
    if field_name == "satisfaction" and not percent and 0 < value <= 1:
        return value * 100
    return value
