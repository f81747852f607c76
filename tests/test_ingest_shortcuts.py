"""The import's shortcuts (quote-free files split without the csv module, tidy datetimes bound
from their own text, the column-wise SQLite writer) give exactly what the slow path gives:
the same report, line for line, and the same bytes in the database."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from crmbot.core.db import make_engine, upgrade
from crmbot.ingest import ImportReport, import_file
from crmbot.ingest.cleaning import iso_text_of_tidy_datetimes, parse_datetime, tidy_datetimes
from crmbot.ingest.csvfile import read_csv

TODAY = date(2026, 6, 30)

CUSTOMERS = """customer_id;name;email;signed_up_at
C1;Ada;ada@example.com;2024-01-02
C2;Bob;BOB@Example.com ;03/04/2024
C3;Cy;not-an-email;2024-13-01
C4;Di;di@example.com;
"""

# Semicolons, so that money with thousands commas needs no quotes: the plain split applies.
MESSY_ORDERS = """order_id;customer_id;ordered_at;amount;currency
O1;C1;2026-01-05 10:00:00;12.50;USD
O2;C2;01/06/2026;$1,234.50;
O3;C1;06.01.2026 14:30;1 234,50 €;
O4;C9;2026-01-07;10;USD
O5;C2;2026-01-08T09:15:00Z;(12.00);usd
O6;C1;not a date;5;USD
O7;C1;2026-01-09;abc;USD
O8;C1;2027-01-01;5;USD
O1;C1;2026-01-05 10:00:00;12.50;USD
O2;C2;2026-01-06;99;USD
;;;;
O9; C1 ;2026-01-10 08:00;USD 12;
O10;C2;2026-02-30;3;USD
O11;C1;2026-01-11;3;EURO
O12;C4;  2026-01-12  ;-7.25;GBP
O13xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx;C1;2026-01-13;1;USD
"""


def tidy_orders(count: int, *, problems: bool) -> str:
    lines = ["order_id,customer_id,ordered_at,amount,currency"]
    for number in range(count):
        customer = ("C1", "C2", "C4")[number % 3]  # C3 has a bad email: never imported
        amount = f"{number * 1.37:.2f}"
        if problems and number % 7 == 3:
            customer = "C99"  # unknown customer
        if problems and number % 11 == 5:
            amount = "n/a"
        lines.append(
            f"O{number:05d},{customer},2026-0{number % 5 + 1}-1{number % 9} 0{number % 10}:"
            f"{number % 60:02d}:{number % 59:02d},{amount},USD"
        )
    if problems:
        lines.append(lines[5])  # an exact copy
        lines.append(lines[6].replace(",USD", ",EUR"))  # same key, other values
        lines.append(",,,,")  # a spreadsheet's empty row
    return "\r\n".join(lines) + "\r\n"


def fresh_database(folder: Path, name: str, customers: Path) -> Engine:
    engine = make_engine(f"sqlite:///{folder / name}.db")
    upgrade(engine)
    import_file(engine, "customers", customers, today=TODAY)
    return engine


def report_facts(report: ImportReport) -> dict[str, Any]:
    return {
        "rows_read": report.rows_read,
        "inserted": report.inserted,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "duplicates": report.duplicates,
        "created": report.created,
        "rejected": report.rejected,
        "warnings": report.warnings,
        "ignored": report.ignored_columns,
        "file_error": report.file_error,
        "committed": report.committed,
        "summary": report.summary(),
    }


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    # The driver's own view: the exact text SQLite holds for every datetime.
    with engine.connect() as connection:
        return list(
            connection.exec_driver_sql(
                "SELECT o.order_id, c.customer_id, o.ordered_at, o.amount, o.currency "
                "FROM orders o JOIN customer c ON c.id = o.customer_pk ORDER BY o.order_id"
            )
        )


@pytest.mark.parametrize(
    ("name", "text", "plain", "options"),
    [
        ("messy", MESSY_ORDERS, True, {}),
        ("messy-create", MESSY_ORDERS, True, {"create_missing": True}),
        ("messy-strict", MESSY_ORDERS, True, {"strict": True}),
        ("tidy", tidy_orders(300, problems=False), True, {}),
        ("tidy-with-problems", tidy_orders(300, problems=True), True, {}),
        (
            "tidy-but-impossible",
            tidy_orders(30, problems=False) + "O99999,C1,2026-02-30 10:00:00,5,USD\r\n",
            True,
            {},
        ),
        ("quoted", tidy_orders(50, problems=True).replace(",USD", ',"US\nD"', 1), False, {}),
    ],
)
def test_shortcuts_change_nothing(
    tmp_path: Path, name: str, text: str, plain: bool, options: dict[str, bool]
) -> None:
    customers = tmp_path / "customers.csv"
    customers.write_text(CUSTOMERS)
    orders = tmp_path / f"{name}.csv"
    orders.write_bytes(text.encode())
    assert read_csv(orders).split_plainly is plain  # the shortcut is really taken (or not)

    strict, create_missing = options.get("strict", False), options.get("create_missing", False)
    fast = fresh_database(tmp_path, "fast", customers)
    slow = fresh_database(tmp_path, "slow", customers)
    for _ in range(2):  # the second import of the same file must find nothing to do
        fast_report = import_file(
            fast, "orders", orders, today=TODAY, strict=strict, create_missing=create_missing
        )
        slow_report = import_file(
            slow,
            "orders",
            orders,
            today=TODAY,
            shortcuts=False,
            strict=strict,
            create_missing=create_missing,
        )
        assert report_facts(fast_report) == report_facts(slow_report)
        assert stored(fast) == stored(slow)
    if name.startswith("messy") and not options:
        assert fast_report.rejected and fast_report.unchanged > 0
    if name == "tidy":
        assert fast_report.unchanged == 300 and len(stored(fast)) == 300


def test_tidy_datetime_text_is_what_formatting_makes() -> None:
    values = ["2026-03-01 14:05:06", "1999-12-31 23:59:59"]
    assert iso_text_of_tidy_datetimes(values) == [
        parse_datetime(value).isoformat(" ", "microseconds")  # type: ignore[union-attr]
        for value in values
    ]
    assert iso_text_of_tidy_datetimes(["2026-03-01", "2026-03-02"]) == [
        "2026-03-01 00:00:00.000000",
        "2026-03-02 00:00:00.000000",
    ]
    assert tidy_datetimes(["2026-03-01 14:05:06", "2026-02-30 10:00:00"]) is None
    # Other forms parse too, but their text is not the stored one: no shortcut.
    for odd in (
        ["2026-03-01 14:05:06", "2026-03-01T14:05:06"],
        ["2026-03-01 14:05:06", "2026-W09-7 14:05:06"],
        ["2026-03-01 14:05:06", "20260301 140506.0"],
        ["2026-03-01 14:05:06", "2026-03-01 14:05"],
        ["2026-03-01 14:05:0", "6026-03-01 14:05:06"],
        ["2026-03-01 14:05:06", "2026-03-01 14:05:0\n"],
        ["2026-03-01", "2026-03-01 14:05:06"],
        ["٢٠٢٦-03-01 14:05:06"],
        [],
    ):
        assert iso_text_of_tidy_datetimes(odd) is None, odd


quote_free_cell = st.text(alphabet=st.sampled_from(list("ab ,;\t\r\n1-é")), max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(quote_free_cell, min_size=1, max_size=4), min_size=1, max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
)
def test_plain_split_reads_what_the_csv_module_reads(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[list[str]],
    line_break: str,
    final_break: bool,
) -> None:
    text = line_break.join(",".join(cells) for cells in records) + (line_break * final_break)
    path = tmp_path_factory.mktemp("split") / "file.csv"
    path.write_bytes(text.encode())
    outcomes: list[object] = []
    for plain in (True, False):
        try:
            read = read_csv(path, plain_split=plain)
        except ValueError as exc:
            outcomes.append(("rejected", str(exc)))
            continue
        outcomes.append(
            (read.columns, list(read.lines), [list(f) for f in read.fields], read.ragged)
        )
    assert outcomes[0] == outcomes[1]


def test_plain_split_matches_csv_on_a_typical_export(tmp_path: Path) -> None:
    text = tidy_orders(40, problems=True)
    path = tmp_path / "orders.csv"
    path.write_bytes(text.encode())
    read = read_csv(path)
    assert read.split_plainly
    rows = list(csv.reader(io.StringIO(text, newline="")))
    body = [row for row in rows[1:]]
    assert [list(column) for column in read.fields] == [list(c) for c in zip(*body, strict=True)]
    assert list(read.lines) == list(range(2, len(body) + 2))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252"])
def test_plain_split_on_each_encoding(tmp_path: Path, encoding: str) -> None:
    # The separators are found in the file's bytes. In UTF-16 a letter may hold the byte of
    # a line break (Ċ is 0A 01), so it is encoded anew first.
    letter = "" if encoding == "cp1252" else "Ċ"
    text = f"customer_id;name;email\nC1;Zoë{letter};z@example.com\nC2;Ça;c@example.com\n"
    path = tmp_path / "customers.csv"
    path.write_bytes(text.encode(encoding))
    plain, slow = read_csv(path), read_csv(path, plain_split=False)
    assert plain.split_plainly and not slow.split_plainly
    assert plain.columns == slow.columns == ["customer_id", "name", "email"]
    assert [list(f) for f in plain.fields] == [list(f) for f in slow.fields]
    assert list(plain.lines) == list(slow.lines) == [2, 3]


def test_an_unquoted_huge_field_is_read_by_csv_which_rejects_it(tmp_path: Path) -> None:
    from crmbot.ingest import MAX_FIELD_CHARS

    path = tmp_path / "customers.csv"
    body = "x" * (MAX_FIELD_CHARS + 1)
    path.write_bytes(f"customer_id,name\nC1,Ann\nC2,{body}\nC3,Cy\n".encode())
    with pytest.raises(ValueError, match="line 3: field larger than"):
        read_csv(path)
    # A long line, but under the limit: split plainly or not, the same values.
    path.write_bytes(f"customer_id,name\nC1,{body[: MAX_FIELD_CHARS // 2]}\nC2,Bo\n".encode())
    assert [list(f) for f in read_csv(path).fields] == [
        list(f) for f in read_csv(path, plain_split=False).fields
    ]


@pytest.mark.parametrize("text", ["a,b\n1", "a,b\n1\n", "a,b\n1,2\n3", "a,b\r\n1\r\n"])
def test_a_last_line_without_separators_is_ragged_for_both_paths(tmp_path: Path, text: str) -> None:
    # The separators of "a,b\n1" read ",\n": the line "1" after the last break has none.
    path = tmp_path / "file.csv"
    path.write_bytes(text.encode())
    plain, slow = read_csv(path), read_csv(path, plain_split=False)
    assert not plain.split_plainly
    assert [list(f) for f in plain.fields] == [list(f) for f in slow.fields]
    assert plain.ragged == slow.ragged != []
