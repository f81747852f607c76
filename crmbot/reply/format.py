"""Numbers, money, percentages, dates and counts as a person reads them — one function for
each, used by every command, digest, card and CLI table.

Plain notation with thousands separators everywhere: never `2.306e+05`.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np

MISSING = "—"
MAX_NAME_CHARS = 28


def clip(text: str | None, limit: int = MAX_NAME_CHARS) -> str:
    """One line of at most `limit` characters, with an ellipsis when cut."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def money(value: float | None) -> str:
    """12,400 · 950 · 12.50 · 0 — whole units from 100 up, cents below."""
    if value is None or _missing(value):
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def money_short(amount: float) -> str:
    """$950, $38k, $1.2M: money as an account manager says it in a sentence."""
    value = abs(amount)
    sign = "-" if amount < 0 else ""
    if value >= 999_500:
        return f"{sign}${value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 9_950:
        return f"{sign}${value / 1000:.0f}k"
    if value >= 1000:
        return f"{sign}${value / 1000:.1f}k".replace(".0k", "k")
    return f"{sign}${value:.0f}"


def percent(value: float | None, digits: int = 0) -> str:
    """A probability or share as a percentage: 0.53 -> 53%."""
    if value is None or _missing(value):
        return MISSING
    return f"{value * 100:.{digits}f}%"


def number(value: float | None, digits: int = 1) -> str:
    """A number with a fixed count of decimals and thousands separators."""
    if value is None or _missing(value):
        return MISSING
    return f"{value:,.{digits}f}"


def significant(value: float | None, digits: int = 4) -> str:
    """A number to `digits` significant figures in plain notation: 230,600 · 0.7512 ·
    0.00012 (a model parameter, a metric) — never scientific notation."""
    if value is None or _missing(value):
        return MISSING
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    text = np.format_float_positional(
        float(value), precision=digits, unique=False, fractional=False, trim="-"
    )
    whole, _, fraction = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = f"{int(whole.lstrip('-') or 0):,}"
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """1 order · 3 orders · 1,204 customers."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"


def data_size(n_bytes: int | None) -> str:
    """Bytes as a person reads them: 512 bytes · 48.0 KiB · 3.4 MiB · 1.21 GiB."""
    if n_bytes is None:
        return MISSING
    if abs(n_bytes) < 1024:
        return count(n_bytes, "byte")
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2)):
        if abs(n_bytes) >= scale:
            return f"{n_bytes / scale:,.{2 if unit == 'GiB' else 1}f} {unit}"
    return f"{n_bytes / 1024:,.1f} KiB"


def day(value: date | datetime | None) -> str:
    """The ISO date a person and a spreadsheet both read: 2026-11-25."""
    if value is None:
        return MISSING
    return f"{value:%Y-%m-%d}"


def ago(value: date | datetime | None, today: date) -> str:
    """How long before `today` a day was: today · yesterday · 3 days ago · in 2 days."""
    if value is None:
        return MISSING
    then = value.date() if isinstance(value, datetime) else value
    days = (today - then).days
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 0:
        return "tomorrow" if days == -1 else f"in {count(-days, 'day')}"
    return f"{count(days, 'day')} ago"


def points(before: float, after: float) -> str:
    """A change in a probability as percentage points: ▲ 10 pts, ▼ 4 pts."""
    delta = (after - before) * 100
    arrow = "▲" if delta >= 0 else "▼"
    return f"{arrow} {abs(delta):.0f} pts"
