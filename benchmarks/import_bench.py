"""How fast `crmbot import orders` loads into SQLite, beside a plain sqlite3 executemany.

    python benchmarks/import_bench.py [--rows 200000] [--customers 20000] [--repeat 3]

Both sides load the same generated orders into a fresh SQLite file with crmbot's schema
(its indexes and foreign keys), with the same pragmas (WAL, synchronous=NORMAL). The import
side starts from the CSV file and includes everything a user's import does: decoding,
parsing, cleaning, validation, reference lookup, comparison with stored rows and the
upsert, in one transaction. The executemany side gets rows already parsed into Python
values and only inserts them: the floor a pure-Python loader cannot beat. A second import
of the same file (nothing to write) is timed too. The best of --repeat runs is shown.
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from crmbot.db import make_engine, upgrade
from crmbot.ingest import import_file

TARGET_ROWS_PER_SECOND = 200_000


def generate(folder: Path, rows: int, customers: int, seed: int = 7) -> tuple[Path, Path]:
    rng = random.Random(seed)
    customers_csv = folder / "customers.csv"
    orders_csv = folder / "orders.csv"
    with customers_csv.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer_id", "name", "email", "signed_up_at"])
        for number in range(customers):
            out.writerow(
                [f"C{number:06d}", f"Customer {number}", f"c{number}@example.com", "2024-01-01"]
            )
    start = datetime(2024, 7, 1)
    with orders_csv.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["order_id", "customer_id", "ordered_at", "amount", "currency"])
        for number in range(rows):
            moment = start + timedelta(minutes=rng.randrange(0, 700 * 24 * 60))
            out.writerow(
                [
                    f"O{number:08d}",
                    f"C{rng.randrange(customers):06d}",
                    moment.strftime("%Y-%m-%d %H:%M:%S"),
                    f"{rng.lognormvariate(4, 1):.2f}",
                    "USD",
                ]
            )
    return customers_csv, orders_csv


def fresh_database(folder: Path, name: str, customers_csv: Path) -> Path:
    database = folder / f"{name}.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    report = import_file(engine, "customers", customers_csv)
    assert report.ok, report.summary()
    engine.dispose()
    return database


def time_import(database: Path, orders_csv: Path) -> tuple[float, float, int]:
    engine = make_engine(f"sqlite:///{database}")
    started = time.perf_counter()
    first = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    first_seconds = time.perf_counter() - started
    assert first.ok and first.inserted == first.rows_read, first.summary()
    started = time.perf_counter()
    second = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    second_seconds = time.perf_counter() - started
    assert second.unchanged == first.inserted and second.inserted == second.updated == 0
    engine.dispose()
    return first_seconds, second_seconds, first.inserted


def time_executemany(database: Path, orders_csv: Path) -> float:
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    customer_pk = dict(connection.execute("SELECT customer_id, id FROM customer"))
    with orders_csv.open(newline="") as handle:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crmbot-bench-") as tmp:
        folder = Path(tmp)
        customers_csv, orders_csv = generate(folder, args.rows, args.customers)
        imports, reimports, plain = [], [], []
        for run in range(args.repeat):
            first, second, inserted = time_import(
                fresh_database(folder, f"import{run}", customers_csv), orders_csv
            )
            imports.append(first)
            reimports.append(second)
            plain.append(
                time_executemany(fresh_database(folder, f"plain{run}", customers_csv), orders_csv)
            )
        rows = args.rows
        baseline = min(plain)
        table = [
            ("sqlite3 executemany (parsed rows)", baseline),
            ("crmbot import orders (CSV file)", min(imports)),
            ("crmbot re-import, nothing changed", min(reimports)),
        ]
        print(f"{'method':<36} {'rows':>9} {'seconds':>8} {'rows/s':>10} {'ratio':>6}")
        for label, seconds in table:
            print(
                f"{label:<36} {rows:>9} {seconds:>8.3f} {rows / seconds:>10,.0f} "
                f"{seconds / baseline:>6.2f}"
            )
        speed = rows / min(imports)
        verdict = "meets" if speed >= TARGET_ROWS_PER_SECOND else "misses"
        print(
            f"\nimport speed {speed:,.0f} rows/s {verdict} the target of "
            f"{TARGET_ROWS_PER_SECOND:,} rows/s (best of {args.repeat}; {inserted} rows)"
        )


if __name__ == "__main__":
    main()
