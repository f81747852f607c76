"""crmbot's benchmark suite: import, training, BG/NBD, commands, HTTP and digests, each
figure beside its target.

    python benchmarks/run.py --customers 10000,100000,1000000 [--postgres] [--out results.json]

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
  API faked locally (tests/slack_fake.py), signed slash commands at --concurrency; time to
  the acknowledgement, errors, and whether every deferred answer reached its response_url;
* digests: time to build the at-risk and influencer digests.

With --postgres the 100k size (or the smallest size asked for) is imported and trained on
PostgreSQL too (TEST_POSTGRES_URL or the local server), and the summary query is timed there.

Nothing here is a test: figures depend on the machine and its load. One VM trained the 10k
company in 3.9 s and, an hour later with no slower code, in 5.9 s; so each size also times a
fixed workload just before training ("machine reference": Python, numpy and SQLite work that
no crmbot change touches), and figures from runs whose references differ are not comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SEED = 7
AS_OF = date(2026, 6, 30)
SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-bench-token-0123456789"
BENCH_USER = "UBENCH"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KINDS = ["customers", "products", "orders", "order-lines", "tickets", "feedback", "referrals"]
# The stage names beside the training run's step names.
STAGES = [
    ("load", "load data"),
    ("features", "features"),
    ("segments", "segments"),
    ("clusters", "clusters"),
    ("clv", "CLV"),
    ("satisfaction", "satisfaction"),
    ("churn", "churn"),
    ("graph", "graph"),
    ("recommend", "rules"),
    ("write", "writing scores"),
]

TARGETS = {
    "import_rows_per_second": 200_000,
    "import_vs_executemany": 2.0,
    "train_seconds_1m": 120.0,
    "train_peak_gb_1m": 4.0,
    "train_seconds_100k": 15.0,
    "bgnbd_speedup": 3.0,
    "customer_p99_ms_1m": 10.0,
    "http_p99_ms": 100.0,
}


# ---------------------------------------------------------------------------------------
# Small helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (nearest-rank on the sorted samples)."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        return ordered[index] * 1000

    return {
        "p50_ms": rank(50),
        "p95_ms": rank(95),
        "p99_ms": rank(99),
        "max_ms": ordered[-1] * 1000,
        "count": len(ordered),
    }


def peak_rss_kib() -> int:
    """This process's RSS high-water mark (VmHWM) in KiB."""
    match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def child(mode: str, args: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh Python process; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    command = [PYTHON, __file__, "--child", mode, "--child-args", json.dumps(args)]
    command += ["--child-result", str(result_path)]
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        result_path.unlink(missing_ok=True)
        return {"error": f"did not finish within {timeout:.0f} s"}
    wall = time.perf_counter() - started
    if completed.returncode != 0 or not result_path.stat().st_size:
        result_path.unlink(missing_ok=True)
        return {"error": f"child {mode} exited with {completed.returncode}"}
    result = json.loads(result_path.read_text())
    result_path.unlink(missing_ok=True)
    result.setdefault("wall_seconds", wall)
    return result


def settings_for(url: str, **extra: Any) -> Any:
    from crmbot.core.config import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        admin_users=[BENCH_USER],
        log_level="WARNING",
        **extra,
    )


# ---------------------------------------------------------------------------------------
# Children: each runs in its own process so its memory is its own


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


def child_train(args: dict[str, Any]) -> dict[str, Any]:
    from crmbot.core.db import make_engine, read_session
    from crmbot.core.models import ModelRun
    from crmbot.runs import train
    from crmbot.training.pipeline import StageEvent

    url = args["url"]
    engine = make_engine(url)
    stage_peaks: dict[str, float] = {}
    # CPU seconds (every thread of the process) per stage: on a shared machine the wall
    # clock says as much about the neighbours as about crmbot.
    stage_cpu: dict[str, float] = {}
    stage_cpu_started: dict[str, float] = {}
    can_reset = reset_peak_rss()

    def progress(event: StageEvent) -> None:
        if event.state == "start":
            reset_peak_rss()
            stage_cpu_started[event.step] = time.process_time()
        elif event.state in ("done", "failed"):
            stage_peaks[event.step] = peak_rss_kib() / 1024
            if event.step in stage_cpu_started:
                stage_cpu[event.step] = time.process_time() - stage_cpu_started[event.step]

    started = time.perf_counter()
    cpu_started = time.process_time()
    from crmbot.analytics.sql_summary import summary_in_database

    settings = settings_for(url, summary_in_database=args.get("summary_in_database", "auto"))
    in_database = summary_in_database(engine, settings.summary_in_database)
    result = train(engine, settings, date.fromisoformat(args["as_of"]), progress=progress)
    seconds = time.perf_counter() - started
    stage_cpu["total"] = time.process_time() - cpu_started
    with read_session(engine) as session:
        run = session.get(ModelRun, result.run_id)
        stored_timings = dict(run.timings or {}) if run is not None else {}
    engine.dispose()
    peak_total = max(stage_peaks.values(), default=peak_rss_kib() / 1024)
    return {
        "status": result.status,
        "error": result.error,
        "summaries": "database" if in_database else "pandas over every order",
        "seconds": seconds,
        "timings": stored_timings,
        "stage_peak_rss_mib": stage_peaks if can_reset else {},
        "stage_cpu_seconds": stage_cpu,
        "peak_rss_mib": peak_total,
        "row_counts": result.row_counts,
        "clv_params": result.params.get("clv"),
    }


def child_summary(args: dict[str, Any]) -> dict[str, Any]:
    """The BG/NBD summary from the database (SQL), saved for the fits."""
    import numpy as np

    from crmbot.analytics.sql_summary import sql_customer_summary
    from crmbot.core.db import make_engine

    engine = make_engine(args["url"])
    started = time.perf_counter()
    summary = sql_customer_summary(engine, date.fromisoformat(args["as_of"]))
    sql_seconds = time.perf_counter() - started
    engine.dispose()
    buyers = summary[summary["frequency"] > 0]
    np.savez(
        args["npz"],
        x=buyers["repeat_purchases"].to_numpy(dtype=float),
        t_x=buyers["t_x_days"].to_numpy(dtype=float),
        T=buyers["age_days"].to_numpy(dtype=float),
    )
    result: dict[str, Any] = {
        "sql_summary_seconds": sql_seconds,
        "customers": len(summary),
        "buyers": len(buyers),
        "peak_rss_mib": peak_rss_kib() / 1024,
    }
    if args.get("compare_pandas"):
        from crmbot.analytics.base import load_training_data
        from crmbot.analytics.features import customer_summary

        engine = make_engine(args["url"])
        started = time.perf_counter()
        data = load_training_data(engine, date.fromisoformat(args["as_of"]))
        loaded = time.perf_counter() - started
        pandas_summary = customer_summary(data)
        result["pandas_load_seconds"] = loaded
        result["pandas_summary_seconds"] = time.perf_counter() - started
        engine.dispose()
        del data
        import pandas as pd

        pd.testing.assert_frame_equal(
            summary, pandas_summary.sort_index(), check_dtype=False, rtol=1e-9, atol=1e-9
        )
        result["equal_to_pandas"] = True
    return result


def child_reference(_args: dict[str, Any]) -> dict[str, Any]:
    """The same fixed work on every run (best of five): how fast the machine is right now."""
    import numpy as np

    def best(work: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    numbers = np.random.default_rng(SEED).random(2_000_000)
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    database.executemany("INSERT INTO t VALUES (?, ?)", ((n, str(n)) for n in range(200_000)))
    return {
        "python_ms": best(lambda: sum(i * i for i in range(1_000_000))),
        "numpy_ms": best(lambda: np.sort(numbers)),
        "sqlite_ms": best(lambda: database.execute("SELECT * FROM t").fetchall()),
    }


def child_fit(args: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    data = np.load(args["npz"])
    x, t_x, T = data["x"], data["t_x"], data["T"]
    if args["which"] == "crmbot":
        from crmbot.analytics.clv import fit_bgnbd

        started = time.perf_counter()
        params = fit_bgnbd(x, t_x, T)
        seconds = time.perf_counter() - started
        fitted = {"r": params.r, "alpha": params.alpha, "a": params.a, "b": params.b}
        extra = {"log_likelihood": params.log_likelihood, "distinct_rows": params.distinct_rows}
    else:
        import warnings

        from lifetimes import BetaGeoFitter
        from lifetimes import __version__ as lifetimes_version

        fitter = BetaGeoFitter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            fitter.fit(x, t_x, T)
            seconds = time.perf_counter() - started
        fitted = {k: float(v) for k, v in fitter.params_.items()}
        extra = {"version": lifetimes_version}
    return {"seconds": seconds, "params": fitted, "customers": len(x), **extra}


# ---------------------------------------------------------------------------------------
# In the parent: commands, HTTP, digests


def sample_customer_ids(engine: Any, count: int, seed: int = SEED) -> list[str]:
    from sqlalchemy import func, select

    from crmbot.core.models import Customer

    with engine.connect() as connection:
        highest = connection.execute(select(func.max(Customer.id))).scalar_one()
        rng = random.Random(seed)
        pks = [rng.randint(1, highest) for _ in range(count)]
        ids = dict(
            connection.execute(
                select(Customer.id, Customer.customer_id).where(Customer.id.in_(set(pks)))  # type: ignore[union-attr]
            ).all()
        )
    return [ids[pk] for pk in pks if pk in ids]


ASK_QUESTIONS = [
    "top 10 customers by CLV in EMEA",
    "which champions in EMEA have churn risk over 50%?",
    "compare churn risk by region",
    "5 riskiest customers in LATAM",
    "total spend of Champions",
    "how many orders last month?",
]


def measure_commands(url: str, requests: int, ask_requests: int | None = None) -> dict[str, Any]:
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.core.db import make_engine

    engine = make_engine(url)
    dispatcher = Dispatcher(engine, settings_for(url))
    customer_ids = sample_customer_ids(engine, requests)
    texts: dict[str, list[str]] = {
        "customer": [f"customer {cid}" for cid in customer_ids],
        "at-risk": ["at-risk", "at-risk 20", "at-risk EMEA", "at-risk Champions"],
        "ask": [f"ask {question}" for question in ASK_QUESTIONS],
    }
    results: dict[str, Any] = {}
    for name, variants in texts.items():
        # Warm up: the first call loads the command registry, vocabularies and caches.
        dispatcher.handle(variants[0], user_id=BENCH_USER, channel_id="CBENCH")
        samples: list[float] = []
        outcomes: dict[str, int] = {}
        count = ask_requests if name == "ask" and ask_requests else requests
        for number in range(count):
            text = variants[number % len(variants)]
            started = time.perf_counter()
            reply = dispatcher.handle(text, user_id=BENCH_USER, channel_id="CBENCH")
            samples.append(time.perf_counter() - started)
            outcomes[reply.outcome] = outcomes.get(reply.outcome, 0) + 1
        results[name] = {**percentiles(samples), "outcomes": outcomes}
        log(
            f"  /crm {name}: p50 {results[name]['p50_ms']:.1f} ms, "
            f"p99 {results[name]['p99_ms']:.1f} ms {outcomes}"
        )
    engine.dispose()
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_slack(args: dict[str, Any]) -> dict[str, Any]:
    """The local fake of Slack's Web API (tests/slack_fake.py), in its own process so its
    work does not share a GIL with the load generator; reports answers received."""
    sys.path.insert(0, str(ROOT / "tests"))
    from slack_fake import SlackFake  # type: ignore[import-not-found]

    status = Path(args["status"])
    stop = Path(args["stop"])
    with SlackFake() as fake:
        while True:
            answered = len({r.path for r in list(fake.requests) if r.path.startswith("/respond/")})
            state = {"base_url": fake.base_url, "url": fake.url, "answered": answered}
            status.with_suffix(".tmp").write_text(json.dumps(state))
            status.with_suffix(".tmp").replace(status)
            if stop.exists():
                return state
            time.sleep(0.2)


class SlackFakeProcess:
    """`child_slack` running beside the benchmark; `.base_url`, `.url`, `.answered()`."""

    def __init__(self, workdir: Path) -> None:
        self.status = workdir / "slack-fake.json"
        self.stop = workdir / "slack-fake.stop"
        self.status.unlink(missing_ok=True)
        self.stop.unlink(missing_ok=True)
        arguments = json.dumps({"status": str(self.status), "stop": str(self.stop)})
        command = [PYTHON, __file__, "--child", "slack", "--child-args", arguments]
        command += ["--child-result", str(workdir / "slack-fake.result.json")]
        self.process = subprocess.Popen(command, cwd=ROOT)
        deadline = time.monotonic() + 30
        while not self.status.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the local Slack fake did not start")
            time.sleep(0.05)
        state = json.loads(self.status.read_text())
        self.base_url: str = state["base_url"]
        self.url: str = state["url"]

    def answered(self) -> int:
        return int(json.loads(self.status.read_text())["answered"])

    def close(self) -> None:
        self.stop.write_text("stop")
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def slack_fake(workdir: Path) -> Iterator[SlackFakeProcess]:
    fake = SlackFakeProcess(workdir)
    try:
        yield fake
    finally:
        fake.close()


@contextlib.contextmanager
def running_bot(url: str, slack_base_url: str, workdir: Path) -> Iterator[int]:
    """`crmbot run --http` on a free loopback port, until the block ends."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_BASE_URL=slack_base_url,
        CRMBOT_ADMIN_USERS=BENCH_USER,
        CRMBOT_LOG_LEVEL="WARNING",
    )
    env.pop("SLACK_APP_TOKEN", None)
    crmbot = str(Path(PYTHON).with_name("crmbot"))
    command = [crmbot, "run", "--http", "--no-scheduler", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    logfile = (workdir / "crmbot-run.log").open("w")
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=logfile, stderr=logfile)
    try:
        deadline = time.monotonic() + 60
        import http.client

        while True:
            if process.poll() is not None:
                raise RuntimeError(f"crmbot run exited; see {workdir / 'crmbot-run.log'}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("crmbot run did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logfile.close()


def measure_http(url: str, requests: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    import http.client

    from crmbot.core.db import make_engine

    sys.path.insert(0, str(ROOT / "tests"))
    from slack_requests import command_body, signed_headers  # type: ignore[import-not-found]

    engine = make_engine(url)
    customer_ids = sample_customer_ids(engine, requests, seed=SEED + 1)
    engine.dispose()
    texts = [f"customer {cid}" for cid in customer_ids]
    texts = [t if n % 10 else "at-risk" for n, t in enumerate(texts)]
    with slack_fake(workdir) as fake, running_bot(url, fake.base_url, workdir) as port:
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        counter = iter(range(len(texts)))

        def worker() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            while True:
                with lock:
                    number = next(counter, None)
                if number is None:
                    break
                body = command_body(
                    texts[number], user_id=BENCH_USER, response_url=f"{fake.url}/respond/{number}"
                )
                headers = signed_headers(SIGNING_SECRET, body)
                started = time.perf_counter()
                try:
                    connection.request("POST", "/slack/events", body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    elapsed = time.perf_counter() - started
                    with lock:
                        latencies.append(elapsed)
                        if response.status != 200:
                            errors.append(f"HTTP {response.status}")
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.close()

        # Warm up one request so start-up costs are not in the figures.
        warm = command_body("help", user_id=BENCH_USER, response_url=f"{fake.url}/respond/warm")
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        first.request(
            "POST", "/slack/events", body=warm, headers=signed_headers(SIGNING_SECRET, warm)
        )
        first.getresponse().read()
        first.close()
        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        # The answers themselves go to response_url from lazy listeners: wait for them.
        deadline = time.monotonic() + 120
        answered = 0
        while time.monotonic() < deadline:
            answered = fake.answered()
            if answered >= len(texts) + 1:
                break
            time.sleep(0.25)
        last_answer = time.perf_counter() - started
    return {
        **percentiles(latencies),
        "requests": len(texts),
        "concurrency": concurrency,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "acks_per_second": len(latencies) / wall if wall else None,
        "answers_delivered": max(0, answered - 1),
        "all_answers_seconds": last_answer,
    }


def measure_digests(url: str, repeat: int = 5) -> dict[str, Any]:
    from crmbot.core.db import make_engine
    from crmbot.digests import build_at_risk_digest, build_influencer_digest

    engine = make_engine(url)
    settings = settings_for(url)
    builders: dict[str, Callable[[], Any]] = {
        "at-risk": lambda: build_at_risk_digest(engine, settings, channel="CBENCH", period="bench"),
        "influencers": lambda: build_influencer_digest(
            engine, settings, channel="CBENCH", period="bench"
        ),
    }
    results: dict[str, Any] = {}
    for name, build in builders.items():
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            digest = build()
            samples.append(time.perf_counter() - started)
        results[name] = {
            "median_ms": statistics.median(samples) * 1000,
            "max_ms": max(samples) * 1000,
            "built": digest is not None,
        }
    engine.dispose()
    return results


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

    result["reference"] = child("reference", {})
    log(f"{label}: training")
    result["train"] = child("train", {"url": url, "as_of": AS_OF.isoformat()})
    log(
        f"  training: {result['train'].get('seconds', float('nan')):.1f} s, "
        f"peak {result['train'].get('peak_rss_mib', float('nan')):.0f} MiB, "
        f"{result['train'].get('status') or result['train'].get('error')}"
    )

    if postgres_url:
        # The same training loading every order (CRMBOT_SUMMARY_IN_DATABASE=never), beside.
        log(f"{label}: training again, loading every order")
        result["train_loading_orders"] = child(
            "train",
            {"url": url, "as_of": AS_OF.isoformat(), "summary_in_database": "never"},
        )

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
    if "error" not in result["summary"] and not postgres_url:
        log(f"{label}: BG/NBD fits")
        result["bgnbd"] = {
            "crmbot": child("fit", {"npz": str(npz), "which": "crmbot"}),
            "lifetimes": child(
                "fit", {"npz": str(npz), "which": "lifetimes"}, timeout=args.lifetimes_timeout
            ),
        }
    npz.unlink(missing_ok=True)

    if result["train"].get("status") == "succeeded":
        log(f"{label}: commands through the Dispatcher")
        result["commands"] = measure_commands(url, args.requests, args.ask_requests)
        if not postgres_url:
            log(f"{label}: HTTP end to end")
            try:
                result["http"] = measure_http(url, args.http_requests, args.concurrency, workdir)
            except RuntimeError as exc:
                result["http"] = {"error": str(exc)}
        log(f"{label}: digests")
        result["digests"] = measure_digests(url)
    return result


# ---------------------------------------------------------------------------------------
# The report


def same_to_3_sf(first: dict[str, float], second: dict[str, float]) -> bool:
    def sf(value: float) -> str:
        return f"{value:.2e}"

    return all(sf(first[k]) == sf(second[k]) for k in ("r", "alpha", "a", "b"))


def verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "met" if ok else "NOT met"


def rows_for(size: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) rows for one size."""
    customers = size["customers"]
    rows: list[tuple[str, str, str, str]] = []
    counts = size.get("rows", {})
    if counts:
        rows.append(
            (
                "data",
                f"{counts.get('customers', 0):,} customers, {counts.get('orders', 0):,} orders, "
                f"{counts.get('order-lines', 0):,} lines",
                "",
                "",
            )
        )
    gen = size.get("generate", {})
    if "seconds" in gen:
        rows.append(
            ("generate CSVs", f"{gen['seconds']:.1f} s, {gen['peak_rss_mib']:.0f} MiB", "", "")
        )
    reference = size.get("reference", {})
    if "python_ms" in reference:
        rows.append(
            (
                "machine reference (fixed work)",
                f"Python {reference['python_ms']:.0f} ms, numpy {reference['numpy_ms']:.0f} ms, "
                f"SQLite {reference['sqlite_ms']:.0f} ms",
                "",
                "",
            )
        )
    imp = size.get("import", {})
    if "error" in imp:
        rows.append(("import", imp["error"], "", "NOT met"))
    elif imp:
        orders = imp["kinds"]["orders"]
        speed = orders["rows_per_second"]
        rows.append(
            (
                "import orders (crmbot import)",
                f"{speed:,.0f} rows/s ({orders['seconds']:.1f} s)",
                f">= {TARGETS['import_rows_per_second']:,} rows/s",
                verdict(speed >= TARGETS["import_rows_per_second"])
                if size["database"] == "sqlite"
                else "",
            )
        )
        base = imp.get("executemany")
        if base:
            ratio = orders["seconds"] / base["seconds"]
            rows.append(
                (
                    "  vs plain sqlite3 executemany",
                    f"{base['rows_per_second']:,.0f} rows/s; ratio {ratio:.2f}x",
                    f"<= {TARGETS['import_vs_executemany']:.0f}x",
                    verdict(ratio <= TARGETS["import_vs_executemany"]),
                )
            )
        total_rows = sum(k["rows"] for k in imp["kinds"].values())
        total_seconds = sum(k["seconds"] for k in imp["kinds"].values())
        rows.append(
            (
                "import all 7 files",
                f"{total_rows:,} rows in {total_seconds:.1f} s "
                f"({total_rows / total_seconds:,.0f}/s)",
                "",
                "",
            )
        )
    train = size.get("train", {})
    if train and train.get("status") != "succeeded":
        rows.append(("training", str(train.get("error")), "", "NOT met"))
    elif train:
        timings = train.get("timings", {})
        peaks = train.get("stage_peak_rss_mib", {})
        cpu = train.get("stage_cpu_seconds", {})
        for step, name in STAGES:
            if step in timings:
                used = f" (CPU {cpu[step]:.2f} s)" if step in cpu else ""
                peak = f", peak {peaks[step]:,.0f} MiB" if step in peaks else ""
                rows.append((f"  train: {name}", f"{timings[step]:.2f} s{used}{peak}", "", ""))
        seconds = timings.get("total", train["seconds"])
        peak_gb = train["peak_rss_mib"] / 1024
        if customers >= 1_000_000:
            target, ok = (
                f"<= {TARGETS['train_seconds_1m']:.0f} s",
                seconds <= TARGETS["train_seconds_1m"],
            )
        elif customers >= 100_000:
            target, ok = (
                f"<= {TARGETS['train_seconds_100k']:.0f} s",
                seconds <= TARGETS["train_seconds_100k"],
            )
        else:
            target, ok = "", None
        used = f" (CPU {cpu['total']:.1f} s)" if "total" in cpu else ""
        how = f"; summaries: {train['summaries']}" if "summaries" in train else ""
        rows.append(("training total", f"{seconds:.1f} s{used}{how}", target, verdict(ok)))
        rows.append(
            (
                "training peak memory",
                f"{peak_gb:.2f} GB",
                f"<= {TARGETS['train_peak_gb_1m']:.0f} GB" if customers >= 1_000_000 else "",
                verdict(peak_gb <= TARGETS["train_peak_gb_1m"]) if customers >= 1_000_000 else "",
            )
        )
    other = size.get("train_loading_orders", {})
    if "seconds" in other:
        other_seconds = other.get("timings", {}).get("total", other["seconds"])
        rows.append(
            (
                "training, loading every order",
                f"{other_seconds:.1f} s, peak {other['peak_rss_mib'] / 1024:.2f} GB "
                f"({other.get('status') or other.get('error')})",
                "",
                "",
            )
        )
    summary = size.get("summary", {})
    if "sql_summary_seconds" in summary:
        note = f"{summary['sql_summary_seconds']:.2f} s for {summary['customers']:,} customers"
        if "pandas_summary_seconds" in summary:
            pandas_only = summary["pandas_summary_seconds"] - summary["pandas_load_seconds"]
            note += (
                f" (pandas: load {summary['pandas_load_seconds']:.1f} s + summary "
                f"{pandas_only:.1f} s; equal)"
            )
        rows.append(("summary in SQL", note, "", ""))
    bgnbd = size.get("bgnbd")
    if bgnbd:
        ours, theirs = bgnbd["crmbot"], bgnbd["lifetimes"]

        def fmt(params: dict[str, float]) -> str:
            return ", ".join(f"{k}={params[k]:.4g}" for k in ("r", "alpha", "a", "b"))

        if "error" in ours:
            rows.append(("BG/NBD crmbot", ours["error"], "", "NOT met"))
        else:
            rows.append(
                ("BG/NBD crmbot", f"{ours['seconds']:.2f} s: {fmt(ours['params'])}", "", "")
            )
        if "error" in theirs:
            rows.append(("BG/NBD lifetimes", theirs["error"], "", ""))
        elif "error" not in ours:
            speedup = theirs["seconds"] / ours["seconds"]
            same = same_to_3_sf(ours["params"], theirs["params"])
            rows.append(
                ("BG/NBD lifetimes", f"{theirs['seconds']:.2f} s: {fmt(theirs['params'])}", "", "")
            )
            at_1m = customers >= 1_000_000
            rows.append(
                (
                    "  speed-up, same params (3 s.f.)",
                    f"{speedup:.1f}x, {'same' if same else 'different'}",
                    f">= {TARGETS['bgnbd_speedup']:.0f}x, same" if at_1m else "",
                    verdict(speedup >= TARGETS["bgnbd_speedup"] and same) if at_1m else "",
                )
            )
    for name, figures in size.get("commands", {}).items():
        target, ok = "", None
        if name == "customer" and customers >= 1_000_000:
            target = f"p99 <= {TARGETS['customer_p99_ms_1m']:.0f} ms"
            ok = figures["p99_ms"] <= TARGETS["customer_p99_ms_1m"]
        rows.append(
            (
                f"/crm {name} (server side)",
                f"p50 {figures['p50_ms']:.1f} / p95 {figures['p95_ms']:.1f} / "
                f"p99 {figures['p99_ms']:.1f} ms (n={figures['count']})",
                target,
                verdict(ok),
            )
        )
    http = size.get("http")
    if http:
        if "error" in http:
            rows.append(("HTTP end to end", http["error"], "", "NOT met"))
        else:
            ok = http["p99_ms"] <= TARGETS["http_p99_ms"] and http["errors"] == 0
            rows.append(
                (
                    f"HTTP ack, concurrency {http['concurrency']}",
                    f"p50 {http['p50_ms']:.1f} / p99 {http['p99_ms']:.1f} ms, "
                    f"{http['errors']} errors, {http['acks_per_second']:.0f} req/s, "
                    f"{http['answers_delivered']}/{http['requests']} answers delivered",
                    f"p99 <= {TARGETS['http_p99_ms']:.0f} ms, 0 errors",
                    verdict(ok),
                )
            )
    for name, figures in size.get("digests", {}).items():
        rows.append((f"digest: {name}", f"{figures['median_ms']:.1f} ms (median of 5)", "", ""))
    return rows


def machine() -> dict[str, Any]:
    memory_kib = 0
    with contextlib.suppress(OSError):
        match = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        memory_kib = int(match.group(1)) if match else 0
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
    }


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    for size in results["sizes"]:
        title = f"{size['customers']:,} customers on {size['database']}"
        table = Table(title=title, show_lines=False)
        table.add_column("measure")
        table.add_column("figure")
        table.add_column("target")
        table.add_column("verdict")
        for measure, figure, target, mark in rows_for(size):
            style = "red" if mark == "NOT met" else ("green" if mark == "met" else None)
            table.add_row(measure, figure, target, mark, style=style)
        console.print(table)


def markdown_table(results: dict[str, Any]) -> str:
    lines = []
    for size in results["sizes"]:
        lines.append(f"\n**{size['customers']:,} customers, {size['database']}**\n")
        lines.append("| measure | figure | target | verdict |")
        lines.append("|---|---|---|---|")
        for row in rows_for(size):
            lines.append("| " + " | ".join(cell.strip() or " " for cell in row) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--customers", default="10000,100000", help="sizes, comma-separated")
    parser.add_argument("--postgres", action="store_true", help="also run 100k on PostgreSQL")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-args", help=argparse.SUPPRESS)
    parser.add_argument("--child-result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        children = {
            "generate": child_generate,
            "import": child_import,
            "train": child_train,
            "summary": child_summary,
            "fit": child_fit,
            "reference": child_reference,
            "slack": child_slack,
        }
        outcome = children[args.child](json.loads(args.child_args))
        Path(args.child_result).write_text(json.dumps(outcome, default=str))
        return

    sizes = [int(s.replace("_", "")) for s in args.customers.split(",") if s.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmbot-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
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
        pg_size = 100_000 if 100_000 in sizes or not sizes else min(sizes)
        pg_url = prepare_postgres(args.postgres_url, pg_size)
        if pg_url:
            results["machine"]["postgresql"] = postgres_version(pg_url)
            results["sizes"].append(run_size(pg_size, workdir, args, postgres_url=pg_url))
            save()
    save()
    print_table(results)
    print(f"\nresults: {args.out}   data: {workdir}")
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


def prepare_postgres(admin_url: str, customers: int) -> str | None:
    """A fresh database `crmbot_bench_<size>` on the server; its URL (None: unreachable)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from crmbot.core.db import make_engine

    name = f"crmbot_bench_{customers}"
    try:
        admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as exc:
        log(f"PostgreSQL not available ({exc}); skipping")
        return None
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def postgres_version(url: str) -> str:
    from sqlalchemy import text

    from crmbot.core.db import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        version = str(connection.execute(text("SHOW server_version")).scalar_one())
    engine.dispose()
    return version


if __name__ == "__main__":
    main()
