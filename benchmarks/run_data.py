"""The sample company of one size: generated as the CSV files a user imports, then imported
through `crmbot.ingest.import_file` beside a plain sqlite3 `executemany` of the orders.
Each runs in a child process (`benchmarks.run --child generate|import`)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from benchmarks.run_common import SEED, log, peak_rss_kib

KINDS = ["customers", "products", "orders", "order-lines", "tickets", "feedback", "referrals"]


def child_generate(args: dict[str, Any]) -> dict[str, Any]:
    from crmbot.demo import generate_company

    started = time.perf_counter()
    truth = generate_company(Path(args["folder"]), customers=args["customers"], seed=SEED)
    return {
        "seconds": time.perf_counter() - started,
        "rows": truth.row_counts,
        "peak_rss_mib": peak_rss_kib() / 1024,
    }


def _sqlite_checkpoint(path: Path) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _executemany_orders(database: Path, orders_csv: Path) -> float:
    """Plain sqlite3: the same order rows, parsed and resolved up front, inserted with one
    executemany in one transaction, with crmbot's schema (indexes, foreign keys)."""
    import csv

    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    customer_pk = dict(connection.execute("SELECT customer_id, id FROM customer"))
    with orders_csv.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [
            (order_id, customer_pk[customer], f"{ordered_at}.000000", float(amount), currency)
            for order_id, customer, ordered_at, amount, currency in reader
        ]
    started = time.perf_counter()
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(
        "INSERT INTO orders (order_id, customer_pk, ordered_at, amount, currency) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def child_import(args: dict[str, Any]) -> dict[str, Any]:
    from crmbot.core.db import connect
    from crmbot.demo import FILES
    from crmbot.ingest import import_file

    folder = Path(args["folder"])
    url = args["url"]
    engine = connect(url)
    kinds: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    for kind in KINDS:
        if kind == "orders" and args.get("baseline_db"):
            # The plain executemany starts from the same database: customers and products in.
            engine.dispose()
            source = Path(engine.url.database or "")
            _sqlite_checkpoint(source)
            copy = Path(args["baseline_db"])
            shutil.copyfile(source, copy)
            seconds = _executemany_orders(copy, folder / FILES["orders"])
            baseline = {"seconds": seconds}
            copy.unlink()
        started = time.perf_counter()
        report = import_file(engine, kind, folder / FILES[kind])
        seconds = time.perf_counter() - started
        if not report.ok:
            raise SystemExit(f"import of {kind} failed: {report.summary()}")
        kinds[kind] = {
            "rows": report.rows_read,
            "inserted": report.inserted,
            "seconds": seconds,
            "rows_per_second": report.rows_read / seconds if seconds else None,
        }
        log(f"  imported {kind}: {report.rows_read:,} rows in {seconds:.1f} s")
    engine.dispose()
    if baseline is not None:
        baseline["rows_per_second"] = kinds["orders"]["rows"] / baseline["seconds"]
    return {"kinds": kinds, "executemany": baseline, "peak_rss_mib": peak_rss_kib() / 1024}
