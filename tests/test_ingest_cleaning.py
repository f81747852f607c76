"""The cell cleaners: dates, money, emails, numbers, and the column-wise fast paths."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from crmbot.ingest import cleaning
from crmbot.ingest.cleaning import BadValue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1)),
        ("2026-03-01 14:00", datetime(2026, 3, 1, 14, 0)),
        ("2026-03-01T14:00:09.75", datetime(2026, 3, 1, 14, 0, 9)),
        ("2026-03-01T14:00:00Z", datetime(2026, 3, 1, 14, 0)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, 0)),
        ("2026/3/1", datetime(2026, 3, 1)),
        ("2026/03/01 7:05", datetime(2026, 3, 1, 7, 5)),
        ("03/01/2026", datetime(2026, 3, 1)),  # US: month first
        ("3/1/2026 14:00:30", datetime(2026, 3, 1, 14, 0, 30)),
        ("01.03.2026", datetime(2026, 3, 1)),  # dots: day first
        ("  2026-03-01  ", datetime(2026, 3, 1)),
    ],
)
def test_dates_in_common_formats(text: str, expected: datetime) -> None:
    assert cleaning.parse_datetime(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("31/12/2026", "not a real date or time (month must be in 1..12)"),
        ("2026-02-30", "not a real date or time (day is out of range for month)"),
        ("yesterday", "not a date; use YYYY-MM-DD"),
        ("2026-03-01 noon", "not a date; use YYYY-MM-DD"),
    ],
)
def test_bad_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(BadValue) as caught:
        cleaning.parse_datetime(text)
    assert str(caught.value).startswith(reason)


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("1234.5", 1234.5, None),
        ("$1,234.50", 1234.5, "USD"),
        ("1 234,50 €", 1234.5, "EUR"),
        ("1.234,50", 1234.5, None),
        ("1,234", 1234.0, None),
        ("12,5", 12.5, None),
        ("1.234.567", 1234567.0, None),
        ("(12.00)", -12.0, None),
        ("-$5.00", -5.0, "USD"),
        ("GBP 7", 7.0, "GBP"),
        ("7 chf", 7.0, "CHF"),
    ],
)
def test_money_in_common_formats(text: str, amount: float, currency: str | None) -> None:
    assert cleaning.money(text) == (amount, currency)


@pytest.mark.parametrize("text", ["abc", "1.2.3", "nan", "inf", "--5", "5-", "1,2,3"])
def test_bad_money(text: str) -> None:
    with pytest.raises(BadValue, match="not a number"):
        cleaning.money(text)


def test_emails_are_trimmed_lowered_and_checked() -> None:
    assert cleaning.email("  Ann.Lee+crm@Example.COM ") == "ann.lee+crm@example.com"
    assert cleaning.email("") is None
    for bad in ["ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@@x.com"]:
        with pytest.raises(BadValue, match="not an email address"):
            cleaning.email(bad)


def test_whole_numbers_percentages_and_currency_codes() -> None:
    assert cleaning.whole_number("7") == 7 and cleaning.whole_number("7.0") == 7
    with pytest.raises(BadValue, match="not a whole number"):
        cleaning.whole_number("7.5")
    assert cleaning.percentage_or_fraction("35%") == pytest.approx(0.35)
    assert cleaning.percentage_or_fraction("0.35") == pytest.approx(0.35)
    assert cleaning.currency(" eur ") == "EUR" and cleaning.currency("$") == "USD"
    with pytest.raises(BadValue):
        cleaning.currency("EURO")


@pytest.mark.parametrize(
    ("cleaner", "values", "expected", "problems"),
    [
        (cleaning.number, ["1.5", "2"], [1.5, 2.0], {}),
        (cleaning.number, ["1.5", "$2", "", "x"], [1.5, 2.0, None, None], {3: "not a number"}),
        (cleaning.parse_datetime, ["2026-03-01T10:00:00.5+01:00"], [datetime(2026, 3, 1, 9)], {}),
        (
            cleaning.parse_date,
            ["2026-03-01", "03/02/2026"],
            [date(2026, 3, 1), date(2026, 3, 2)],
            {},
        ),
        (cleaning.whole_number, ["3", "4.0", "4.5"], [3, 4, None], {2: "not a whole number"}),
        (cleaning.currency, ["usd"] * 5 + ["??"], ["USD"] * 5 + [None], {5: "not a three"}),
    ],
)
def test_fast_and_slow_paths_agree(
    cleaner: cleaning.Cleaner, values: list[str], expected: list[object], problems: dict[int, str]
) -> None:
    cleaned, found = cleaning.clean_column(values, cleaner)
    assert cleaned == expected
    assert {i: reason[: len(problems[i])] for i, reason in found.items()} == problems
    # Value by value, the forgiving parser gives the same answers the column path gave.
    for value, result in zip(values, cleaned, strict=True):
        if result is not None:
            assert cleaner(value) == result
