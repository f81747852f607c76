"""How fast `crmbot import orders` loads into SQLite, beside a plain sqlite3 executemany.

    python -m benchmarks.import_bench [--rows 200000] [--customers 20000] [--repeat 3]
                                      [--profile 25] [--against DIR]

Both sides load the same generated orders into a fresh SQLite file with crmbot's schema
(its indexes and foreign keys), with the same pragmas (WAL, synchronous=NORMAL). The import
side starts from the CSV file and includes everything a user's import does: decoding,
parsing, cleaning, validation, reference lookup, comparison with stored rows and the
upsert, in one transaction. The executemany side gets rows already parsed into Python
values and only inserts them, once plainly (foreign keys checked, indexes kept up to date row
by row, default page cache) and once with the loader's own tricks (sorted keys, a large page
cache, secondary indexes rebuilt after the load, no per-row foreign-key checks): the floor
for SQLite itself. A second import of the same file (nothing to write) is timed too. The
best of --repeat runs is shown, as wall-clock and as CPU seconds of the process.
`--profile N` then imports once more under cProfile and prints the N functions that took
the most time of their own: where the import's time goes.

`--against DIR` compares the import with another checkout's (a git worktree of an older
commit) instead: each round imports the same file into a fresh database once with this
checkout's crmbot and once with DIR's, each in a child process of its own, in turn, and
prints both timings and their ratio, round by round and as the median. On a shared machine
whose speed drifts, the ratio of runs side by side is the figure to quote.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import os
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from crmbot.core.db import make_engine, upgrade
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


Timing = tuple[float, float]  # (wall-clock seconds, CPU seconds of this process)


def clock() -> Timing:
    return time.perf_counter(), time.process_time()


def since(start: Timing) -> Timing:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def time_import(database: Path, orders_csv: Path) -> tuple[Timing, Timing]:
    engine = make_engine(f"sqlite:///{database}")
    started = clock()
    first = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    first_time = since(started)
    assert first.ok and first.inserted == first.rows_read, first.summary()
    started = clock()
    second = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    second_time = since(started)
    assert second.unchanged == first.inserted and second.inserted == second.updated == 0
    engine.dispose()
    return first_time, second_time


def profile_import(database: Path, orders_csv: Path, lines: int) -> None:
    engine = make_engine(f"sqlite:///{database}")
    profiler = cProfile.Profile()
    profiler.enable()
    report = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    profiler.disable()
    assert report.ok, report.summary()
    engine.dispose()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(lines)


def time_executemany(database: Path, orders_csv: Path, *, tuned: bool = False) -> Timing:
    """Insert already parsed rows; `tuned` uses the same tricks as crmbot's loader."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA foreign_keys={'OFF' if tuned else 'ON'}")
    if tuned:
        connection.execute("PRAGMA cache_size=-131072")
    customer_pk = dict(connection.execute("SELECT customer_id, id FROM customer"))
    with orders_csv.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [
            (order_id, customer_pk[customer], f"{ordered_at}.000000", float(amount), currency)
            for order_id, customer, ordered_at, amount, currency in reader
        ]
    if tuned:
        rows.sort()
    started = clock()
    connection.execute("BEGIN IMMEDIATE")
    deferred = []
    if tuned:
        deferred = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' "
            "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'"
        ).fetchall()
        for name, _sql in deferred:
            connection.execute(f'DROP INDEX "{name}"')
    connection.executemany(
        "INSERT INTO orders (order_id, customer_pk, ordered_at, amount, currency) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    for _name, sql in deferred:
        connection.execute(sql)
    connection.execute("COMMIT")
    timing = since(started)
    connection.close()
    return timing


# Run in a child process with one checkout first on the import path: it uses only what
# every version of crmbot has (make_engine, upgrade, import_file), so an old one runs too.
_CHILD = """
import json, sys, time
from datetime import date
from crmbot.core.db import make_engine, upgrade
from crmbot.ingest import import_file
database, customers_csv, orders_csv = sys.argv[1:4]
engine = make_engine(f"sqlite:///{database}")
upgrade(engine)
assert import_file(engine, "customers", customers_csv).ok
timings = []
for _ in range(2):
    started = time.perf_counter(), time.process_time()
    report = import_file(engine, "orders", orders_csv, today=date(2026, 6, 30))
    timings.append((time.perf_counter() - started[0], time.process_time() - started[1]))
    assert report.ok, report.summary()
engine.dispose()
print(json.dumps(timings))
"""


def time_checkout(
    code: Path, folder: Path, name: str, customers_csv: Path, orders_csv: Path
) -> tuple[Timing, Timing]:
    """(first import, re-import) of `orders_csv` with the crmbot of the checkout `code`."""
    database = folder / f"{name}.db"
    environment = dict(os.environ, PYTHONPATH=str(code))
    try:
        output = subprocess.run(
            [sys.executable, "-c", _CHILD, str(database), str(customers_csv), str(orders_csv)],
            env=environment,
            cwd=code,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
    first, second = json.loads(output)
    return (first[0], first[1]), (second[0], second[1])


def compare_checkouts(
    against: Path, folder: Path, customers_csv: Path, orders_csv: Path, rows: int, repeat: int
) -> None:
    here = Path(__file__).resolve().parent.parent
    print(
        f"{'round':<6} {'this s':>8} {'CPU s':>7} {'other s':>8} {'CPU s':>7} "
        f"{'ratio':>6} {'CPU ratio':>9}  (first import; re-import: this / other wall)"
    )
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    speeds: list[float] = []
    for run in range(repeat):
        other, other_again = time_checkout(
            against, folder, f"other{run}", customers_csv, orders_csv
        )
        this, this_again = time_checkout(here, folder, f"this{run}", customers_csv, orders_csv)
        ratios.append(this[0] / other[0])
        cpu_ratios.append(this[1] / other[1])
        speeds.append(rows / this[0])
        print(
            f"{run + 1:<6} {this[0]:>8.2f} {this[1]:>7.2f} {other[0]:>8.2f} {other[1]:>7.2f} "
            f"{ratios[-1]:>6.2f} {cpu_ratios[-1]:>9.2f}  ({this_again[0]:.2f} / "
            f"{other_again[0]:.2f})"
        )
    print(
        f"\nmedian ratio this/other: {statistics.median(ratios):.2f} wall clock, "
        f"{statistics.median(cpu_ratios):.2f} CPU; this checkout's import "
        f"{max(speeds):,.0f} rows/s at best ({rows:,} rows; target "
        f"{TARGET_ROWS_PER_SECOND:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--against", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crmbot-bench-") as tmp:
        folder = Path(tmp)
        customers_csv, orders_csv = generate(folder, args.rows, args.customers)
        if args.against is not None:
            compare_checkouts(
                args.against.resolve(), folder, customers_csv, orders_csv, args.rows, args.repeat
            )
            return
        imports: list[Timing] = []
        reimports: list[Timing] = []
        plain: list[Timing] = []
        tuned: list[Timing] = []
        for run in range(args.repeat):
            first, second = time_import(
                fresh_database(folder, f"import{run}", customers_csv), orders_csv
            )
            imports.append(first)
            reimports.append(second)
            plain.append(
                time_executemany(fresh_database(folder, f"plain{run}", customers_csv), orders_csv)
            )
            tuned.append(
                time_executemany(
                    fresh_database(folder, f"tuned{run}", customers_csv), orders_csv, tuned=True
                )
            )
        if args.profile:
            profile_import(
                fresh_database(folder, "profiled", customers_csv), orders_csv, args.profile
            )
    rows = args.rows
    baseline = min(plain)
    table = [
        ("sqlite3 executemany (parsed rows)", baseline),
        ("  same, tuned like crmbot's loader", min(tuned)),
        ("crmbot import orders (CSV file)", min(imports)),
        ("crmbot re-import, nothing changed", min(reimports)),
    ]
    print(
        f"{'method':<36} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'ratio':>6} "
        f"{'CPU s':>6} {'rows/CPU s':>10}"
    )
    for label, (wall, cpu) in table:
        print(
            f"{label:<36} {rows:>8} {wall:>8.3f} {rows / wall:>9,.0f} "
            f"{wall / baseline[0]:>6.2f} {cpu:>6.3f} {rows / cpu:>10,.0f}"
        )
    speed = rows / min(imports)[0]
    verdict = "meets" if speed >= TARGET_ROWS_PER_SECOND else "misses"
    print(
        f"\nimport speed {speed:,.0f} rows/s (wall clock, best of {args.repeat}) {verdict} the "
        f"target of {TARGET_ROWS_PER_SECOND:,} rows/s. On a shared machine the CPU columns "
        "are the steadier measure."
    )


if __name__ == "__main__":
    main()
