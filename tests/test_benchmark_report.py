"""The benchmark suite's table of every database and size: per stage seconds, CPU and peak
memory, the machine reference, and the growth between sizes of one database."""

from __future__ import annotations

from typing import Any

from benchmarks.run import build_parser, postgres_sizes
from benchmarks.run_report import markdown_table, training_comparison


def _size(database: str, customers: int, seconds: float, peak: float) -> dict[str, Any]:
    return {
        "customers": customers,
        "database": database,
        "reference": {"python_ms": 57.0, "numpy_ms": 16.0, "sqlite_ms": 117.0},
        "train": {
            "status": "succeeded",
            "seconds": seconds + 0.5,
            "timings": {"load": seconds / 4, "churn": seconds / 2, "total": seconds},
            "stage_cpu_seconds": {"load": seconds / 8, "churn": seconds / 2, "total": seconds},
            "stage_peak_rss_mib": {"load": peak / 2, "churn": peak},
            "peak_rss_mib": peak,
        },
    }


def test_every_database_and_size_side_by_side_with_the_growth_between_sizes() -> None:
    results = {
        "sizes": [
            _size("postgresql", 1_000_000, 120.0, 1500.0),
            _size("sqlite", 100_000, 15.0, 660.0),
            _size("postgresql", 100_000, 20.0, 600.0),
            {"customers": 3_000_000, "database": "postgresql", "train": {"status": "failed"}},
        ]
    }
    header, rows = training_comparison(results)
    assert header == [
        "stage",
        "postgresql 100k",
        "postgresql 1M",
        "postgresql 1M / 100k (customers 10x)",
        "sqlite 100k",
    ]
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["load data"] == [
        "5.00 s, CPU 2.50 s, 300 MiB",
        "30.00 s, CPU 15.00 s, 750 MiB",
        "6.00x",
        "3.75 s, CPU 1.88 s, 330 MiB",
    ]
    assert by_name["training total"][2] == "6.00x"
    assert by_name["training peak memory"] == ["600 MiB", "1,500 MiB", "2.50x", "660 MiB"]
    reference = "Python 57 ms, numpy 16 ms, SQLite 117 ms"
    assert by_name["machine reference (fixed work)"] == [reference, reference, "", reference]
    assert "features" not in by_name  # no size measured it
    assert "**Training, every database and size**" in markdown_table(results)


def test_postgres_sizes_come_from_the_option_or_default_to_100k() -> None:
    parser = build_parser()
    args = parser.parse_args(["--postgres", "--postgres-customers", "100_000, 1000000"])
    assert postgres_sizes(args, [10_000]) == [100_000, 1_000_000]
    args = parser.parse_args(["--postgres"])
    assert postgres_sizes(args, [10_000, 100_000]) == [100_000]
    assert postgres_sizes(args, [10_000, 50_000]) == [10_000]
