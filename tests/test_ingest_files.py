"""Import of awkward files: encodings, byte-order marks, broken structure, odd layouts."""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot.core.models import Customer, Order
from crmbot.ingest import MAX_FIELD_CHARS, ImportReport, UnknownKind, import_file

HEADER = "customer_id,name,email\n"


def write_bytes(tmp_path: Path, data: bytes, name: str = "customers.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def names(engine: Engine) -> list[str | None]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(Customer.name).order_by(Customer.customer_id)).scalars()
        )


def customers_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Customer)).scalar_one()


def rejected(report: ImportReport) -> list[tuple[int, str, str]]:
    return [(r.line, r.column, r.reason) for r in report.rejected]


def test_utf8_with_byte_order_mark(engine: Engine, tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + (HEADER + "C1,Zoë,z@example.com\n").encode("utf-8")
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert report.ok and report.inserted == 1 and report.warnings == []
    assert names(engine) == ["Zoë"]


def test_windows_1252_is_read_with_a_warning(engine: Engine, tmp_path: Path) -> None:
    data = (HEADER + "C1,Zoë Müller,z@example.com\nC2,Renée,r@example.com\n").encode("cp1252")
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert report.ok and report.encoding == "cp1252"
    assert report.warnings == [
        "the file is not UTF-8 (first bad byte on line 2); read it as cp1252 — check accented "
        "names, or save the file as UTF-8"
    ]
    assert names(engine) == ["Zoë Müller", "Renée"]


def test_utf16_from_a_spreadsheet(engine: Engine, tmp_path: Path) -> None:
    data = (HEADER + "C1,Łukasz,l@example.com\r\n").encode("utf-16")
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert report.ok and names(engine) == ["Łukasz"]


def test_a_binary_file_is_refused_whole(engine: Engine, tmp_path: Path) -> None:
    data = b"PK\x03\x04\x14\x00\x00\x00customer_id,name\nC1,x\n"
    report = import_file(engine, "customers", write_bytes(tmp_path, data), strict=False)
    assert report.file_error is not None and "NUL bytes" in report.file_error
    assert not report.ok and customers_count(engine) == 0


def test_missing_required_columns_reject_the_file_and_name_them(
    engine: Engine, tmp_path: Path
) -> None:
    data = b"order_ref,when,total\nO1,2026-01-01,5\n"
    report = import_file(engine, "orders", write_bytes(tmp_path, data, "orders.csv"))
    assert report.file_error == (
        "missing required columns: order_id, customer_id, ordered_at, amount "
        "(the header has: order_ref, when, total); rename a column with --map old=new"
    )
    assert report.rows_read == 0 and not report.committed


def test_extra_columns_are_ignored_and_listed(engine: Engine, tmp_path: Path) -> None:
    data = b"customer_id,Loyalty Tier,name,notes\nC1,gold,Ann,likes tea\n"
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert report.ok and report.ignored_columns == ["loyalty_tier", "notes"]
    assert "ignored columns: loyalty_tier, notes" in report.summary()


def test_a_huge_field_rejects_the_file_with_its_line(engine: Engine, tmp_path: Path) -> None:
    body = "x" * (MAX_FIELD_CHARS + 1)
    data = (HEADER + "C1,Ann,a@example.com\n" + f'C2,"{body}",b@example.com\n').encode()
    report = import_file(engine, "customers", write_bytes(tmp_path, data), strict=False)
    assert report.file_error is not None
    assert report.file_error.startswith("the file is not valid CSV at line 3: field larger than")
    assert "a quote was never closed" in report.file_error
    assert customers_count(engine) == 0


def test_line_numbers_survive_crlf_blank_lines_and_quoted_breaks(
    engine: Engine, tmp_path: Path
) -> None:
    data = (
        b"customer_id,name,email\r\n"
        b"C1,Ann,a@example.com\r\n"
        b"\r\n"  # a blank line (line 3) is skipped, not an error
        b'C2,"Bob\r\nBobson",bob@example.com\r\n'  # lines 4-5
        b",,\r\n"  # line 6: an empty spreadsheet row, skipped
        b"C3,Cy,not-an-email\r\n"  # line 7
    )
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert rejected(report) == [(7, "email", "not an email address")]
    assert report.rows_read == 3 and report.inserted == 2
    assert names(engine) == ["Ann", "Bob\r\nBobson"]


def test_old_mac_line_endings(engine: Engine, tmp_path: Path) -> None:
    data = b"customer_id,name,email\rC1,Ann,a@example.com\rC2,Bob,bad\r"
    report = import_file(engine, "customers", write_bytes(tmp_path, data))
    assert rejected(report) == [(3, "email", "not an email address")]


def test_semicolon_separated_with_decimal_commas(engine: Engine, tmp_path: Path) -> None:
    import_file(engine, "customers", write_bytes(tmp_path, b"customer_id\nC1\n"))
    data = "order_id;customer_id;ordered_at;amount;currency\nO1;C1;01.03.2026;1.234,50;€\n"
    report = import_file(engine, "orders", write_bytes(tmp_path, data.encode(), "orders.csv"))
    assert report.ok, report.rejected
    with engine.connect() as connection:
        order = connection.execute(select(Order)).one()
    assert (order.amount, order.currency, order.ordered_at.date()) == (
        1234.5,
        "EUR",
        date(2026, 3, 1),
    )


def test_a_truncated_file_keeps_its_good_rows(engine: Engine, tmp_path: Path) -> None:
    data = HEADER + 'C1,Ann,a@example.com\nC2,Bob,b@example.com\nC3,"Cy'
    report = import_file(engine, "customers", write_bytes(tmp_path, data.encode()))
    assert rejected(report) == [(4, "", "has 2 values but the header has 3 columns")]
    assert report.inserted == 2

    strict = import_file(engine, "customers", write_bytes(tmp_path, data.encode()), strict=True)
    assert not strict.committed and strict.inserted == 0


def test_empty_and_header_only_files(engine: Engine, tmp_path: Path) -> None:
    empty = import_file(engine, "customers", write_bytes(tmp_path, b"  \n"))
    assert empty.file_error == "the file is empty; it needs a header line naming the columns"
    header_only = import_file(engine, "customers", write_bytes(tmp_path, HEADER.encode()))
    assert header_only.ok and header_only.rows_read == 0


def test_missing_file_duplicate_columns_and_unknown_kind(engine: Engine, tmp_path: Path) -> None:
    missing = import_file(engine, "customers", tmp_path / "nope.csv")
    assert missing.file_error == f"there is no file {tmp_path / 'nope.csv'}"
    twice = import_file(
        engine, "customers", write_bytes(tmp_path, b"customer_id,name,Name\nC1,a,b\n")
    )
    assert twice.file_error == "the column 'name' appears twice in the header"
    with pytest.raises(UnknownKind, match="choose one of: customers, products, orders"):
        import_file(engine, "invoices", tmp_path / "nope.csv")


def test_future_dates_only_when_today_is_given(engine: Engine, tmp_path: Path) -> None:
    data = b"customer_id,signed_up_at\nC1,2026-07-01\nC2,2026-06-30\n"
    path = write_bytes(tmp_path, data)
    report = import_file(engine, "customers", path, today=date(2026, 6, 30))
    assert rejected(report) == [(2, "signed_up_at", "is in the future (after 2026-06-30)")]
    assert import_file(engine, "customers", path).ok  # no `today`: no opinion on the future
