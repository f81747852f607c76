"""Fuzzed CSV files: whatever arrives, the import never crashes, reports clearly, and leaves
no partial state behind in strict mode."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from crmbot.core.db import make_engine
from crmbot.core.models import Customer, Feedback, Order, OrderLine, Product, Referral, Ticket
from crmbot.ingest import KINDS, import_file

TODAY = date(2026, 6, 30)
MODELS = [Customer, Product, Order, OrderLine, Ticket, Feedback, Referral]

# Values a real export might hold, plus the ones that break naive importers.
plausible = st.sampled_from(
    [
        "C1",
        "C2",
        "P1",
        "O1",
        "2026-03-01",
        "03/01/2026",
        "2026-03-01 14:00",
        "2031-01-01",
        "$1,234.50",
        "-20",
        "1.234,50",
        "7",
        "11",
        "-1",
        "0",
        "ann@example.com",
        "USD",
        "eur",
        "",
        " ",
        "N/A",
        "null",
        "=cmd|' /C calc'!A0",
        "1e309",
        "nan",
    ]
)
nasty = st.text(
    alphabet=st.sampled_from(list("aZ09 ,;\"'\n\r\t-.$€é\u00a0\u200b\x01")), max_size=12
)
cell = st.one_of(plausible, plausible, nasty)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(list(KINDS)))
    canonical = KINDS[kind].canonical
    # Usually the canonical header, sometimes missing, shuffled or with extra columns.
    columns = draw(st.permutations(canonical))
    columns = columns[
        : draw(st.integers(min_value=max(1, len(columns) - 2), max_value=len(columns)))
    ]
    if draw(st.booleans()):
        columns = [*columns, draw(st.sampled_from(["notes", "Customer ID", "amount"]))]
    rows = draw(
        st.lists(
            st.lists(cell, min_size=len(columns) - 1, max_size=len(columns) + 1),
            max_size=8,
        )
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if draw(st.booleans()):
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]  # cut short
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "utf-16"]))
    return kind, text.encode(encoding, errors="replace")


@contextmanager
def seeded_database() -> Iterator[Engine]:
    engine = make_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        seed = {
            "customers": "customer_id,name\nC1,Ann\nC2,Bob\n",
            "products": "product_id,name\nP1,Widget\n",
            "orders": "order_id,customer_id,ordered_at,amount\nO1,C1,2026-01-01,10\n",
        }
        for kind, text in seed.items():
            (base / f"{kind}.csv").write_text(text)
            assert import_file(engine, kind, base / f"{kind}.csv").ok
        yield engine
    engine.dispose()


def snapshot(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [
            connection.execute(select(func.count()).select_from(model)).scalar_one()
            for model in MODELS
        ]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.booleans(), st.booleans())
def test_fuzzed_files_never_crash_and_never_half_import(
    file: tuple[str, bytes], strict: bool, create_missing: bool
) -> None:
    kind, data = file
    with seeded_database() as engine, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(data)
        before = snapshot(engine)
        report = import_file(
            engine,
            kind,
            path,
            strict=strict,
            create_missing=create_missing,
            today=TODAY,
            report_path=Path(folder) / "report.csv",
        )
        after = snapshot(engine)
        physical_lines = max(1, len(data.splitlines()))

        assert (Path(folder) / "report.csv").exists()
        assert report.summary().startswith(f"{report.kind} from ")
        for rejection in report.rejected:
            assert 2 <= rejection.line <= physical_lines + 1, rejection
            assert rejection.reason and rejection.reason[0].islower()
        if report.file_error is not None or (strict and not report.ok):
            assert after == before, "a refused file must leave nothing behind"
            assert report.inserted == report.updated == 0
        else:
            assert report.committed
            accounted = (
                report.inserted
                + report.updated
                + report.unchanged
                + report.duplicates
                + report.rejected_rows
            )
            assert accounted == report.rows_read
            assert sum(after) - sum(before) == report.inserted + sum(report.created.values())
