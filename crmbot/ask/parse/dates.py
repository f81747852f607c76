"""Date phrases ("this quarter", "since March", "3 weeks ago") -> the days they mean,
relative to an injected `today`; dateparser reads the phrases not spelt out here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from crmbot.ask.parse.numbers import count_of, full_unit
from crmbot.ask.parse.vocabulary import MONTH_RX, MONTHS, NUMBER_WORD_RX, PERIOD_RX, UNIT_RX


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive
    # The moment a relative phrase names ("last week" -> 7 days ago); "since" uses it.
    point: date


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` away from `day`'s."""
    month_index = day.year * 12 + day.month - 1 + months
    year, month = divmod(month_index, 12)
    return date(year, month + 1, 1)


def resolve_date(phrase: str, today: date) -> Period | None:
    """What a date phrase means relative to `today`.

    * "this week/month/quarter/year": from its first day up to today (Monday starts weeks).
    * "last/previous week/month/quarter/year": the whole previous calendar period; as a
      starting point ("since last week") it means that long ago: 7 days, a month, ...
    * "Q3", "March": the most recent one that has begun (this year's, else last year's);
      "Q3 2025", "March 2025" as said.
    * "2026-03-15", "15 March", "3 weeks ago", "yesterday": that day (dateparser).
    """
    phrase = phrase.strip().removeprefix("the ").strip()
    tomorrow = today + timedelta(days=1)
    relative = re.fullmatch(rf"(last|this|previous|past|current) ({PERIOD_RX})", phrase)
    if relative:
        which, period = relative.groups()
        if which in ("this", "current"):
            start = _period_start(period, today)
            return Period(start, tomorrow, start)
        return _previous_period(period, today)
    start_of = re.fullmatch(rf"(?:start|beginning) of (?:the |this )?({PERIOD_RX})", phrase)
    if start_of:
        start = _period_start(start_of.group(1), today)
        return Period(start, tomorrow, start)
    if phrase == "today":
        return Period(today, tomorrow, today)
    if phrase == "yesterday":
        day = today - timedelta(days=1)
        return Period(day, today, day)
    quarter = re.fullmatch(r"q([1-4])(?: (\d{4}))?", phrase)
    if quarter:
        start = _latest_begun(3 * int(quarter.group(1)) - 2, quarter.group(2), today)
        return Period(start, add_months(start, 3), start)
    if re.fullmatch(r"(?:19|20)\d{2}", phrase):
        start = date(int(phrase), 1, 1)
        return Period(start, date(start.year + 1, 1, 1), start)
    month_only = re.fullmatch(rf"({MONTH_RX})(?: (\d{{4}}))?", phrase)
    if month_only:
        start = _latest_begun(MONTHS[month_only.group(1)], month_only.group(2), today)
        return Period(start, add_months(start, 1), start)
    ago = re.fullmatch(rf"(a|an|\d+|{NUMBER_WORD_RX}) ({UNIT_RX}) ago", phrase)
    if ago:
        amount = count_of(ago.group(1)) or 1
        point = ago_from(today, amount, full_unit(ago.group(2)))
        return Period(point, point + timedelta(days=1), point)
    named_day = _dateparser_day(phrase, today)
    if named_day is None:
        return None
    return Period(named_day, named_day + timedelta(days=1), named_day)


def _period_start(period: str, today: date) -> date:
    """The first day of the week (Monday), month, quarter or year `today` is in."""
    if period == "week":
        return today - timedelta(days=today.weekday())
    if period == "month":
        return today.replace(day=1)
    if period == "quarter":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return date(today.year, 1, 1)


def _previous_period(period: str, today: date) -> Period:
    """The whole calendar period before the current one; its point is that long ago."""
    start = _period_start(period, today)
    if period == "week":
        step = timedelta(days=7)
        return Period(start - step, start, today - step)
    if period == "month":
        return Period(add_months(start, -1), start, ago_from(today, 1, "months"))
    if period == "quarter":
        return Period(add_months(start, -3), start, add_months(start, -3))
    return Period(date(today.year - 1, 1, 1), start, ago_from(today, 1, "years"))


def ago_from(today: date, amount: int, unit: str) -> date:
    """The day `amount` days, weeks, months or years before `today`; a month or year back
    from a day the shorter month lacks is its last day (31 March, 1 month ago: 28
    February), as dateparser reads "1 month ago". Worked out here: dateparser's first
    use in a process builds its patterns, half a second."""
    if unit == "days":
        return today - timedelta(days=amount)
    if unit == "weeks":
        return today - timedelta(weeks=amount)
    months = amount * (12 if unit == "years" else 1)
    first = add_months(today, -months)
    last_day = (add_months(first, 1) - timedelta(days=1)).day
    return first.replace(day=min(today.day, last_day))


def _latest_begun(month: int, year: str | None, today: date) -> date:
    """The first of `month` in `year`, or without a year the most recent one that has begun."""
    start = date(int(year) if year else today.year, month, 1)
    if not year and start > today:
        start = date(today.year - 1, month, 1)
    return start


def _dateparser_day(phrase: str, today: date) -> date | None:
    import dateparser

    settings: Any = {
        "RELATIVE_BASE": datetime(today.year, today.month, today.day),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "DATE_ORDER": "DMY",
    }
    parsed = dateparser.parse(phrase, languages=["en"], settings=settings)
    return parsed.date() if parsed else None
