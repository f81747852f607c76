"""crmbot's benchmark suite: import, training, BG/NBD, commands, HTTP and digests, each
figure beside its target.

    python -m benchmarks.run --customers 10000,100000,1000000 [--postgres] [--out results.json]

For each size it generates the sample company (`crmbot.demo.generate_company`, seeded; about
7 orders and 14 order lines per customer) as the CSV files a user imports, then measures:

* import: every file through `crmbot.ingest.import_file` (what `crmbot import` runs) into a
  fresh SQLite file; the orders file beside a plain sqlite3 `executemany` of the same rows,
  already parsed, into a copy of the same database (the floor a Python loader cannot beat);
* training: `crmbot.runs.train` in a child process; seconds per stage from the run's
  `ModelRun.timings`, peak memory (RSS) per stage from the child's high-water mark, reset
  between stages through /proc/self/clear_refs (Linux), and the child's overall peak;
* BG/NBD: the per-customer summary read from the database (`sql_customer_summary`), then
  crmbot's `fit_bgnbd` beside the `lifetimes` package's `BetaGeoFitter` (the `bench` extra)
  on the same (x, t_x, T), with both parameter sets;
* commands: server-side latency of `/crm customer`, `/crm at-risk`, `/crm ask` through the
  `Dispatcher` (what every transport calls), --requests each (--ask-requests for ask);
* HTTP: `crmbot run --http` (uvicorn) in a child process on a free loopback port, Slack's Web
  API faked locally (tests/support/slack_fake.py), signed slash commands at --concurrency;
  time to the acknowledgement, errors, and whether every deferred answer reached its
  response_url;
* digests: time to build the at-risk and influencer digests.

With --postgres each size of --postgres-customers (default: 100k, or the smallest size
asked for) is imported and trained on PostgreSQL too, in a scratch database
`crmbot_bench_<size>` created on the server of --postgres-url (TEST_POSTGRES_URL or the
local server) and dropped when the size is done; the summary query is timed there.
--training-only stops each size after training (no BG/NBD fits, commands, HTTP or digests).
After the per-size tables, one table sets every database and size side by side: seconds,
CPU seconds and peak memory per training stage, the machine reference of each, and the
growth ratio between consecutive sizes of the same database.

Nothing here is a test: figures depend on the machine and its load. One VM trained the 10k
company in 3.9 s and, an hour later with no slower code, in 5.9 s; so each size also times a
fixed workload just before training ("machine reference": Python, numpy and SQLite work that
no crmbot change touches), and figures from runs whose references differ are not comparable.

Run it from the project root. Each measurement in a child process is this module again
(`python -m benchmarks.run --child <mode>`); the parts live beside it: `run_common` (shared
helpers), `run_data` (generate, import), `run_machine` (the machine, its reference work),
`run_training` (training, summary, fits), `run_bot` (commands, HTTP, digests) and
`run_report` (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.run_bot import (
    child_slack,
    measure_commands,
    measure_digests,
    measure_http,
    measure_mix,
)
from benchmarks.run_common import AS_OF, child, log, sqlite_url
from benchmarks.run_data import child_generate, child_import
from benchmarks.run_machine import child_reference, machine
from benchmarks.run_report import (
    TARGETS,
    markdown_table,
    print_table,
    print_training_comparison,
)
from benchmarks.run_training import child_fit, child_summary, child_train

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# What `--child <mode>` runs: each in a fresh process, so its memory is its own.
CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": child_generate,
    "import": child_import,
    "train": child_train,
    "summary": child_summary,
    "fit": child_fit,
    "reference": child_reference,
    "slack": child_slack,
}


# ---------------------------------------------------------------------------------------
# One size


def run_size(
    customers: int, workdir: Path, args: argparse.Namespace, *, postgres_url: str | None = None
) -> dict[str, Any]:
    label = f"{customers:,}" + (" (PostgreSQL)" if postgres_url else "")
    result: dict[str, Any] = {
        "customers": customers,
        "database": "postgresql" if postgres_url else "sqlite",
    }
    csv_folder = workdir / f"company-{customers}"
    if not (csv_folder / "truth.json").exists():
        log(f"{label}: generating the sample company")
        result["generate"] = child("generate", {"folder": str(csv_folder), "customers": customers})
        if "error" in result["generate"]:
            return result
    else:
        result["generate"] = {"reused": str(csv_folder)}
    truth = json.loads((csv_folder / "truth.json").read_text())
    result["rows"] = truth.get("row_counts", {})

    if postgres_url:
        url = postgres_url
    else:
        database = workdir / f"crm-{customers}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        url = sqlite_url(database)
    log(f"{label}: importing")
    result["import"] = child(
        "import",
        {
            "folder": str(csv_folder),
            "url": url,
            "baseline_db": None if postgres_url else str(workdir / f"plain-{customers}.db"),
        },
    )
    if "error" in result["import"]:
        return result

    postgres = postgres_url is not None
    measure_training(result, url, label, postgres=postgres)
    if args.training_only:
        return result
    measure_bgnbd(result, url, workdir, args, label, postgres=postgres)
    if result["train"].get("status") == "succeeded":
        measure_bot(result, url, workdir, args, label, postgres=postgres)
    return result


def measure_training(result: dict[str, Any], url: str, label: str, *, postgres: bool) -> None:
    """The machine reference, then training (on PostgreSQL, also loading every order)."""
    result["reference"] = child("reference", {})
    log(f"{label}: training")
    result["train"] = child("train", {"url": url, "as_of": AS_OF.isoformat()})
    log(
        f"  training: {result['train'].get('seconds', float('nan')):.1f} s, "
        f"peak {result['train'].get('peak_rss_mib', float('nan')):.0f} MiB, "
        f"{result['train'].get('status') or result['train'].get('error')}"
    )

    if postgres:
        # The same training loading every order (CRMBOT_SUMMARY_IN_DATABASE=never), beside.
        log(f"{label}: training again, loading every order")
        result["train_loading_orders"] = child(
            "train",
            {"url": url, "as_of": AS_OF.isoformat(), "summary_in_database": "never"},
        )


def measure_bgnbd(
    result: dict[str, Any],
    url: str,
    workdir: Path,
    args: argparse.Namespace,
    label: str,
    *,
    postgres: bool,
) -> None:
    """The summary in SQL, then (on SQLite) crmbot's and lifetimes' BG/NBD fits of it."""
    customers = result["customers"]
    npz = workdir / f"summary-{customers}-{result['database']}.npz"
    log(f"{label}: BG/NBD summary in SQL")
    result["summary"] = child(
        "summary",
        {
            "url": url,
            "as_of": AS_OF.isoformat(),
            "npz": str(npz),
            "compare_pandas": customers <= args.compare_pandas_up_to,
        },
    )
    if "error" not in result["summary"] and not postgres:
        log(f"{label}: BG/NBD fits")
        result["bgnbd"] = {
            "crmbot": child("fit", {"npz": str(npz), "which": "crmbot"}),
            "lifetimes": child(
                "fit", {"npz": str(npz), "which": "lifetimes"}, timeout=args.lifetimes_timeout
            ),
        }
    npz.unlink(missing_ok=True)


def measure_bot(
    result: dict[str, Any],
    url: str,
    workdir: Path,
    args: argparse.Namespace,
    label: str,
    *,
    postgres: bool,
) -> None:
    """Commands through the Dispatcher, HTTP end to end (SQLite only), digests."""
    log(f"{label}: commands through the Dispatcher")
    result["commands"] = measure_commands(url, args.requests, args.ask_requests)
    if not postgres:
        log(f"{label}: HTTP end to end")
        try:
            result["http"] = measure_http(url, args.http_requests, args.concurrency, workdir)
        except RuntimeError as exc:
            result["http"] = {"error": str(exc)}
    log(f"{label}: digests")
    result["digests"] = measure_digests(url)


# ---------------------------------------------------------------------------------------
# PostgreSQL


def scratch_database_name(customers: int) -> str:
    return f"crmbot_bench_{customers}"


def _admin_statement(admin_url: str, statement: str) -> None:
    from sqlalchemy import text

    from crmbot.core.db import make_engine

    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def prepare_postgres(admin_url: str, customers: int) -> str | None:
    """A fresh database `crmbot_bench_<size>` on the server; its URL (None: unreachable)."""
    from sqlalchemy.engine import make_url

    name = scratch_database_name(customers)
    try:
        _admin_statement(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _admin_statement(admin_url, f'CREATE DATABASE "{name}"')
    except Exception as exc:
        log(f"PostgreSQL not available ({exc}); skipping")
        return None
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(admin_url: str, customers: int) -> None:
    """Drop the scratch database of `prepare_postgres`: a run leaves none behind."""
    name = scratch_database_name(customers)
    try:
        _admin_statement(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        log(f"could not drop the scratch database {name} ({exc}); drop it by hand")


def postgres_sizes(args: argparse.Namespace, sizes: list[int]) -> list[int]:
    """--postgres-customers, or (as before it existed) 100k when asked for, else the
    smallest size."""
    if args.postgres_customers:
        return parse_sizes(args.postgres_customers)
    return [100_000 if 100_000 in sizes or not sizes else min(sizes)]


def parse_sizes(text: str) -> list[int]:
    return [int(s.strip().replace("_", "")) for s in text.split(",") if s.strip()]


def postgres_version(url: str) -> str:
    from sqlalchemy import text

    from crmbot.core.db import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
    engine.dispose()
    return version


# ---------------------------------------------------------------------------------------
# The mix of issue #19 on an existing database

MIX_TARGETS_MS = {"ask": 300.0, "at-risk <segment>": 10.0, "customer <misspelt name>": 300.0}


def run_mix(args: argparse.Namespace) -> None:
    """`--mix URL`: the issue's mix on a database built and trained beforehand (e.g. by
    `crmbot demo --customers 1000000 --no-shell`); `--code DIR` runs another checkout."""
    if args.code:
        sys.path.insert(0, str(args.code.resolve()))
    import crmbot

    code = str(Path(crmbot.__file__).resolve().parent.parent)
    asks = args.ask_requests or args.requests
    log(f"mix on {args.mix}: crmbot from {code}, {args.requests} requests a kind ({asks} ask)")
    results = measure_mix(args.mix, args.requests, args.ask_requests)
    record = {
        "command": " ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]]),
        "code": code,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "mix": results,
    }
    args.out.write_text(json.dumps(record, indent=2, default=str))
    lines = [
        f"crmbot from {code}",
        "| measure | p50 ms | p99 ms | max ms | n | target | verdict |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for kind, figures in results.items():
        target = MIX_TARGETS_MS.get(kind)
        verdict = "" if target is None else ("met" if figures["p99_ms"] <= target else "NOT met")
        lines.append(
            f"| {kind} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | "
            f"{figures['max_ms']:.1f} | {figures['count']} | "
            f"{f'p99 <= {target:.0f} ms' if target else ''} | {verdict} |"
        )
    print("\n".join(lines))
    for kind, figures in results.items():
        print(
            f"{kind}: outcomes {figures['outcomes']}; slowest {figures['slowest']}; "
            f"first call of each text (ms): {figures.get('first_call_ms')}"
        )
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------
# The command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--customers",
        default="10000,100000",
        help="sizes on SQLite, comma-separated (empty: none)",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also run on PostgreSQL, at --postgres-customers",
    )
    parser.add_argument(
        "--postgres-customers",
        metavar="SIZES",
        help="with --postgres: sizes on PostgreSQL, comma-separated, e.g. 100000,1000000 "
        "(default: 100k, or the smallest of --customers)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a server database to connect to; each size gets its own scratch database "
        "there (crmbot_bench_<size>), dropped when the size is done",
    )
    parser.add_argument(
        "--training-only",
        action="store_true",
        help="stop each size after training: no BG/NBD fits, commands, HTTP or digests",
    )
    parser.add_argument("--out", type=Path, default=Path("results.json"))
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown here")
    parser.add_argument("--workdir", type=Path, help="keep data here (default: a temp dir)")
    parser.add_argument("--requests", type=int, default=1000, help="per command")
    parser.add_argument(
        "--ask-requests",
        type=int,
        help="for /crm ask only (default: --requests; at 1M one question takes seconds)",
    )
    parser.add_argument("--http-requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--lifetimes-timeout", type=float, default=1800)
    parser.add_argument(
        "--compare-pandas-up-to",
        type=int,
        default=100_000,
        help="check the SQL summary equals the pandas one up to this size",
    )
    parser.add_argument(
        "--mix",
        metavar="DATABASE_URL",
        help="only time the issue's mix (ask with typos, at-risk <segment|region>, customer "
        "<misspelt name>) on this trained database, --requests of each",
    )
    parser.add_argument(
        "--code",
        type=Path,
        help="with --mix: run another checkout's crmbot (its directory goes first on the path)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-args", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()

    if args.child:
        outcome = CHILDREN[args.child](json.loads(args.child_args))
        Path(args.child_result).write_text(json.dumps(outcome, default=str))
        return

    if args.mix:
        run_mix(args)
        return

    sizes = parse_sizes(args.customers)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmbot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "targets": TARGETS,
        "sizes": [],
    }

    def save() -> None:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        args.out.write_text(json.dumps(results, indent=2, default=str))
        if args.markdown:
            args.markdown.write_text(markdown_table(results))

    for customers in sizes:
        results["sizes"].append(run_size(customers, workdir, args))
        save()
    if args.postgres:
        for pg_size in postgres_sizes(args, sizes):
            pg_url = prepare_postgres(args.postgres_url, pg_size)
            if not pg_url:
                break
            try:
                results["machine"]["postgresql"] = postgres_version(pg_url)
                results["sizes"].append(run_size(pg_size, workdir, args, postgres_url=pg_url))
            finally:
                drop_postgres(args.postgres_url, pg_size)
            save()
    save()
    print_table(results)
    print_training_comparison(results)
    print(f"\nresults: {args.out}   data: {workdir}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
