"""CSV import on every database: each kind, idempotent re-import, strict atomicity, reports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot.core.models import Customer, Feedback, Order, OrderLine, Product, Referral, Ticket
from crmbot.ingest import KINDS, ImportReport, import_file

TODAY = date(2026, 6, 30)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def count(engine: Engine, model: type) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def reasons(report: ImportReport) -> list[tuple[int, str, str]]:
    return [(r.line, r.column, r.reason) for r in report.rejected]


CUSTOMERS = """customer_id,name,email,phone,company,region,owner,signed_up_at
C1, Ann Lee ,ANN@Example.COM,+1 555 0100,Acme,EMEA,UAM1,2025-01-03
C2,Bob,bob@example.com,,Beta,AMER,UAM2,01/15/2025
C3,Cy,,,,APAC,,2025/02/01
"""
PRODUCTS = """product_id,name,category,price,margin
P1,Widget,tools,"$1,200.00",35%
P2,Gadget,tools,19.99,0.5
"""
ORDERS = """order_id,customer_id,ordered_at,amount,currency
O1,C1,2026-03-01 14:00,"$1,234.50",
O2,C2,2026-03-02T09:30:00Z,-20,EUR
O3,C1,03/05/2026,99.5,usd
"""
ORDER_LINES = """order_id,product_id,quantity,unit_price
O1,P1,1,1200
O1,P2,,34.50
O3,P2,5,19.90
"""
TICKETS = """ticket_id,customer_id,opened_at,closed_at,channel,subject,body,csat
T1,C1,2026-03-02 10:00,2026-03-03 11:00,email,Broken,"It broke.
Twice.",4
T2,C2,2026-04-01,,chat,Question,How?,
"""
FEEDBACK = """feedback_id,customer_id,submitted_at,nps,csat,comment
F1,C1,2026-03-10,9,5,Great
F2,C2,2026-03-11,3,,Slow support
"""
REFERRALS = """referrer_id,referred_id,referred_at
C1,C2,2025-01-15
C1,C3,
"""

ALL_FILES = [
    ("customers", CUSTOMERS, Customer, 3),
    ("products", PRODUCTS, Product, 2),
    ("orders", ORDERS, Order, 3),
    ("order-lines", ORDER_LINES, OrderLine, 3),
    ("tickets", TICKETS, Ticket, 2),
    ("feedback", FEEDBACK, Feedback, 2),
    ("referrals", REFERRALS, Referral, 2),
]


def load_all(engine: Engine, tmp_path: Path) -> list[ImportReport]:
    reports = []
    for kind, text, _model, _rows in ALL_FILES:
        path = write(tmp_path, f"{kind}.csv", text)
        reports.append(import_file(engine, kind, path, today=TODAY))
    return reports


def test_every_kind_imports_cleanly_and_reimport_changes_nothing(
    storage_engine: Engine, tmp_path: Path
) -> None:
    assert [kind for kind, *_ in ALL_FILES] == list(KINDS)
    for report, (kind, _text, model, rows) in zip(
        load_all(storage_engine, tmp_path), ALL_FILES, strict=True
    ):
        assert report.ok, (kind, report.summary(), report.rejected)
        assert (report.rows_read, report.inserted, report.updated, report.unchanged) == (
            rows,
            rows,
            0,
            0,
        ), kind
        assert count(storage_engine, model) == rows

    for report, (kind, _text, _model, rows) in zip(
        load_all(storage_engine, tmp_path), ALL_FILES, strict=True
    ):
        assert (report.inserted, report.updated, report.unchanged) == (0, 0, rows), kind


def test_values_are_cleaned(storage_engine: Engine, tmp_path: Path) -> None:
    load_all(storage_engine, tmp_path)
    with storage_engine.connect() as connection:
        ann = connection.execute(select(Customer).where(Customer.customer_id == "C1")).one()
        bob = connection.execute(select(Customer).where(Customer.customer_id == "C2")).one()
        orders = {
            row.order_id: row for row in connection.execute(select(Order).order_by(Order.order_id))
        }
        widget = connection.execute(select(Product).where(Product.product_id == "P1")).one()
        ticket = connection.execute(select(Ticket).where(Ticket.ticket_id == "T1")).one()
    assert ann.name == "Ann Lee" and ann.email == "ann@example.com"
    assert bob.signed_up_at == date(2025, 1, 15) and bob.phone is None
    assert orders["O1"].amount == pytest.approx(1234.5) and orders["O1"].currency == "USD"
    assert orders["O1"].ordered_at == datetime(2026, 3, 1, 14, 0)
    assert orders["O2"].amount == pytest.approx(-20) and orders["O2"].currency == "EUR"
    assert orders["O2"].ordered_at == datetime(2026, 3, 2, 9, 30)
    assert orders["O3"].ordered_at == datetime(2026, 3, 5) and orders["O3"].currency == "USD"
    assert widget.price == pytest.approx(1200) and widget.margin == pytest.approx(0.35)
    assert ticket.body == "It broke.\nTwice." and ticket.csat == 4


def test_rejected_rows_are_reported_with_line_numbers(engine: Engine, tmp_path: Path) -> None:
    load_all(engine, tmp_path)
    path = write(
        tmp_path,
        "bad_orders.csv",
        "order_id,customer_id,ordered_at,amount,currency\n"
        'O10,C1,2026-03-01,"1,5",\n'  # fine: a decimal comma
        "O11,C9,2026-03-01,10,\n"
        "O12,C1,someday,10,\n"
        "O13,C1,2026-03-01,ten,\n",
    )
    report = import_file(engine, "orders", path, today=TODAY)
    assert reasons(report) == [
        (3, "customer_id", "unknown customer (import customers first, or use --create-missing)"),
        (
            4,
            "ordered_at",
            "not a date; use YYYY-MM-DD (optionally with HH:MM), YYYY/MM/DD, "
            "MM/DD/YYYY or DD.MM.YYYY",
        ),
        (5, "amount", "not a number; write it like 1234.50 or $1,234.50"),
    ]
    assert (report.inserted, report.rows_read) == (1, 4)


def test_every_rejection_reason_with_its_line(storage_engine: Engine, tmp_path: Path) -> None:
    load_all(storage_engine, tmp_path)
    # A quoted line break on line 2-3 shifts every later record by one physical line.
    tickets = write(
        tmp_path,
        "tickets_bad.csv",
        "ticket_id,customer_id,opened_at,closed_at,channel,subject,body,csat\n"
        'T10,C1,2026-03-01,,email,Hi,"two\nlines",5\n'  # lines 2-3, fine
        "T11,C1,2026-03-05,2026-03-04,email,,,\n"  # line 4
        "T12,C1,2026-03-05,,email,,,9\n"  # line 5
        "T13,C404,2026-03-05,,email,,,\n"  # line 6
        "T14,C1,2027-01-01,,email,,,\n"  # line 7
        "T15,,2026-03-05,,email,,,\n"  # line 8
        "T16,C1,2026-03-05,,email,,,4.5\n"  # line 9
        "T17,C1,2026-03-05,,email,,\n",  # line 10: a value short
    )
    report = import_file(storage_engine, "tickets", tickets, today=TODAY)
    assert reasons(report) == [
        (4, "closed_at", "is before opened_at (2026-03-05 00:00)"),
        (5, "csat", "must be between 1 and 5"),
        (6, "customer_id", "unknown customer (import customers first, or use --create-missing)"),
        (7, "opened_at", "is in the future (after 2026-06-30)"),
        (8, "customer_id", "missing required value"),
        (9, "csat", "not a whole number"),
        (10, "", "has 7 values but the header has 8 columns"),
    ]
    assert (report.rows_read, report.inserted) == (8, 1)

    feedback = write(
        tmp_path,
        "feedback_bad.csv",
        "feedback_id,customer_id,submitted_at,nps,csat,comment\n"
        "F10,C1,2026-03-01,11,,\n"
        "F11,C1,2026-03-01,,0,\n"
        "F12,C1,2026-03-01,-1,6,\n",
    )
    report = import_file(storage_engine, "feedback", feedback, today=TODAY)
    assert reasons(report) == [
        (2, "nps", "must be between 0 and 10"),
        (3, "csat", "must be between 1 and 5"),
        (4, "csat", "must be between 1 and 5"),
        (4, "nps", "must be between 0 and 10"),
    ]

    lines = write(
        tmp_path,
        "lines_bad.csv",
        "order_id,product_id,quantity,unit_price\n"
        "O2,P1,-1,10\n"
        "O2,P2,0,10\n"
        "O3,P1,1,-5\n"
        "O404,P1,1,5\n"
        "O2,P404,1,5\n",
    )
    report = import_file(storage_engine, "order-lines", lines, today=TODAY)
    assert reasons(report) == [
        (2, "quantity", "must be more than 0"),
        (3, "quantity", "must be more than 0"),
        (4, "unit_price", "must not be negative"),
        (5, "order_id", "unknown order (import orders first)"),
        (6, "product_id", "unknown product (import products first, or use --create-missing)"),
    ]

    products = write(
        tmp_path,
        "products_bad.csv",
        "product_id,name,category,price,margin\nP10,X,y,-3,0.2\nP11,X,y,3,140%\n",
    )
    report = import_file(storage_engine, "products", products, today=TODAY)
    assert reasons(report) == [
        (2, "price", "must not be negative"),
        (3, "margin", "must be between 0 and 1"),
    ]

    customers = write(
        tmp_path,
        "customers_bad.csv",
        "customer_id,name,email,signed_up_at\n"
        f"C10,{'x' * 201},c10@example.com,2025-01-01\n"
        "C11,Eve,eve(at)example.com,2025-01-01\n"
        "C12,Fay,fay@example.com,31/12/2025\n",
    )
    report = import_file(storage_engine, "customers", customers, today=TODAY)
    assert reasons(report) == [
        (2, "name", "longer than 200 characters"),
        (3, "email", "not an email address"),
        (4, "signed_up_at", "not a real date or time (month must be in 1..12)"),
    ]

    referrals = write(
        tmp_path, "referrals_bad.csv", "referrer_id,referred_id,referred_at\nC2,C2,\nC2,C3,\n"
    )
    report = import_file(storage_engine, "referrals", referrals, today=TODAY)
    assert reasons(report) == [(2, "referred_id", "a customer cannot refer themselves")]
    assert report.inserted == 1

    orders = write(
        tmp_path,
        "orders_bad.csv",
        "order_id,customer_id,ordered_at,amount,currency\n"
        "O20,C1,2026-03-01,5,US Dollar\n"
        "O21,C1,2026-03-01,5,USD\n"
        "O21,C1,2026-03-01,6,USD\n"
        "O21,C1,2026-03-01,5,USD\n",
    )
    report = import_file(storage_engine, "orders", orders, today=TODAY)
    assert reasons(report) == [
        (2, "currency", "not a three-letter currency code like USD"),
        (3, "order_id", "order_id 'O21' is also on line 4 with different values"),
        (4, "order_id", "order_id 'O21' is also on line 3 with different values"),
    ]
    # Line 5 repeats line 3 exactly: dropped as a duplicate, not reported as a conflict.
    assert report.duplicates == 1 and report.inserted == 0


def test_changed_rows_are_updated_and_absent_columns_kept(
    storage_engine: Engine, tmp_path: Path
) -> None:
    load_all(storage_engine, tmp_path)
    # No email/phone/company columns: those stay as they are; the name changes for C2 only.
    path = write(
        tmp_path,
        "customers_update.csv",
        "customer_id,name,region\nC1,Ann Lee,EMEA\nC2,Robert,AMER\nC4,Dee,APAC\n",
    )
    report = import_file(storage_engine, "customers", path, today=TODAY)
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)
    with storage_engine.connect() as connection:
        bob = connection.execute(select(Customer).where(Customer.customer_id == "C2")).one()
    assert bob.name == "Robert" and bob.email == "bob@example.com" and bob.company == "Beta"


def test_strict_mode_commits_nothing_when_a_row_is_bad(
    storage_engine: Engine, tmp_path: Path
) -> None:
    load_all(storage_engine, tmp_path)
    path = write(
        tmp_path,
        "orders_strict.csv",
        "order_id,customer_id,ordered_at,amount,currency\n"
        "O30,C1,2026-03-01,5,USD\n"
        "O31,NEW1,2026-03-01,5,USD\n"
        "O32,C1,2026-03-01,lots,USD\n",
    )
    report = import_file(storage_engine, "orders", path, strict=True, create_missing=True)
    assert not report.ok and not report.committed
    assert reasons(report) == [(4, "amount", "not a number; write it like 1234.50 or $1,234.50")]
    assert (report.inserted, report.updated, report.created) == (0, 0, {})
    assert count(storage_engine, Order) == 3
    assert count(storage_engine, Customer) == 3  # the bare customer was rolled back too

    path.write_text(path.read_text().replace("lots", "7"))
    report = import_file(storage_engine, "orders", path, strict=True, create_missing=True)
    assert report.ok and report.committed and report.inserted == 3
    assert report.created == {"customers": 1}
    assert count(storage_engine, Order) == 6


def test_create_missing_makes_bare_customers_and_products(
    storage_engine: Engine, tmp_path: Path
) -> None:
    load_all(storage_engine, tmp_path)
    lines = write(tmp_path, "lines_new.csv", "order_id,product_id,quantity\nO2,P9,2\nO404,P8,1\n")
    report = import_file(storage_engine, "order-lines", lines, create_missing=True)
    # Orders are never invented: they need a customer, a date and an amount.
    assert reasons(report) == [(3, "order_id", "unknown order (import orders first)")]
    assert report.created == {"products": 1} and report.inserted == 1
    with storage_engine.connect() as connection:
        bare = connection.execute(select(Product).where(Product.product_id == "P9")).one()
    assert bare.name is None and bare.price is None


def test_column_map_renames_a_foreign_export(engine: Engine, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        "Client Ref,Full Name,E-Mail,Joined\nX1,Zoe,ZOE@EXAMPLE.COM,2024-05-06\n",
    )
    report = import_file(
        engine,
        "customers",
        path,
        column_map={
            "Client Ref": "customer_id",
            "full name": "name",
            "E-Mail": "email",
            "Joined": "signed_up_at",
        },
    )
    assert report.ok and report.inserted == 1 and report.ignored_columns == []
    with engine.connect() as connection:
        zoe = connection.execute(select(Customer)).one()
    assert (zoe.customer_id, zoe.name, zoe.email, zoe.signed_up_at) == (
        "X1",
        "Zoe",
        "zoe@example.com",
        date(2024, 5, 6),
    )


def test_report_file_lists_every_rejection(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "customer_id,email\nA,a@example.com\nB,nope\n,x@y.z\n")
    report_path = tmp_path / "report.csv"
    report = import_file(engine, "customers", path, report_path=report_path)
    assert report_path.read_text(encoding="utf-8").splitlines() == [
        "line,column,reason,value",
        "3,email,not an email address,nope",
        "4,customer_id,missing required value,",
    ]
    assert "1 inserted" in report.summary() and "2 rejected" in report.summary()


def test_money_keeps_cents_on_every_database(storage_engine: Engine, tmp_path: Path) -> None:
    load_all(storage_engine, tmp_path)
    path = write(
        tmp_path,
        "big_orders.csv",
        'order_id,customer_id,ordered_at,amount\nO40,C1,2026-03-01,"$123,456.78"\n',
    )
    import_file(storage_engine, "orders", path)
    with storage_engine.connect() as connection:
        amount = connection.execute(select(Order.amount).where(Order.order_id == "O40")).scalar()
    assert amount == pytest.approx(123456.78, abs=0.005)
    again = import_file(storage_engine, "orders", path)
    assert (again.unchanged, again.updated) == (1, 0)


def test_small_files_against_big_tables_look_keys_up_in_chunks(
    storage_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crmbot.ingest import writer

    load_all(storage_engine, tmp_path)
    # Treat every table as big, so lookups go through IN (...) chunks, not a full read.
    monkeypatch.setattr(writer, "WHOLE_TABLE_ROWS", 0)
    monkeypatch.setattr(writer, "LOOKUP_CHUNK", 2)
    many = "".join(f"K{n},Name {n}\n" for n in range(25))
    report = import_file(
        storage_engine, "customers", write(tmp_path, "many.csv", "customer_id,name\n" + many)
    )
    assert report.inserted == 25
    orders = write(
        tmp_path,
        "few_orders.csv",
        "order_id,customer_id,ordered_at,amount\nO1,C1,2026-03-01 14:00,1234.5\n"
        "O50,K7,2026-03-09,5\nO51,K9,2026-03-09,6\n",
    )
    report = import_file(storage_engine, "orders", orders)
    assert (report.inserted, report.updated, report.unchanged) == (2, 0, 1)
    lines = write(
        tmp_path,
        "few_lines.csv",
        "order_id,product_id,quantity,unit_price\nO1,P1,1,1200\nO1,P2,3,34.50\nO50,P1,1,5\n",
    )
    report = import_file(storage_engine, "order-lines", lines)
    assert (report.inserted, report.updated, report.unchanged) == (1, 1, 1)


def test_a_bulk_load_into_an_empty_table_keeps_every_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    from crmbot.core.db import make_engine, upgrade
    from crmbot.ingest import writer

    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.db'}")
    upgrade(engine)
    index_sql = text("SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name")
    with engine.connect() as connection:
        before = connection.execute(index_sql).all()
    # Any load counts as big: secondary indexes are dropped, rows written, indexes rebuilt.
    monkeypatch.setattr(writer, "DEFER_INDEXES_FROM_ROWS", 1)
    load_all(engine, tmp_path)
    with engine.connect() as connection:
        assert connection.execute(index_sql).all() == before
        plan = connection.execute(
            text("EXPLAIN QUERY PLAN SELECT id FROM customer WHERE region = 'EMEA'")
        ).all()
    assert "ix_customer_region" in str(plan)
    assert count(engine, Order) == 3
    engine.dispose()


def test_a_bulk_load_rebuilds_the_unique_key_only_when_each_key_comes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from crmbot.core.db import make_engine, upgrade
    from crmbot.ingest import writer

    engine = make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade(engine)
    monkeypatch.setattr(writer, "DEFER_INDEXES_FROM_ROWS", 1)
    products = Product.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        # A key twice: the unique index stays, and the later row updates the earlier one.
        writer.upsert_columns(
            connection,
            products,
            ["product_id"],
            ["product_id", "name"],
            [["P2", "P1", "P1"], ["two", "first", "second"]],
        )
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT product_id, name FROM product ORDER BY 1")).all()
    assert rows == [("P1", "second"), ("P2", "two")]

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM product"))
    with engine.begin() as connection:
        # Each key once into an empty table: plain inserts, the unique index rebuilt after.
        writer.upsert_columns(
            connection, products, ["product_id"], ["product_id", "name"], [["P3", "P4"], ["a", "b"]]
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO product (product_id, name) VALUES ('P3', 'again')"))
    engine.dispose()


def test_progress_is_reported_from_zero_to_every_row(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "customer_id\n" + "".join(f"K{n}\n" for n in range(50)))
    seen: list[tuple[int, int]] = []
    import_file(engine, "customers", path, progress=lambda done, total: seen.append((done, total)))
    assert seen[0] == (0, 50) and seen[-1] == (50, 50)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
