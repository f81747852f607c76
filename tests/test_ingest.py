"""CSV import on every database: each kind, idempotent re-import, strict atomicity, reports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from crmbot.ingest import KINDS, ImportReport, import_file
from crmbot.models import Customer, Feedback, Order, OrderLine, Product, Referral, Ticket

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
