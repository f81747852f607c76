"""Misspelt lookups against a big book: 12 at once, and one lookup by id behind them.

    python -m benchmarks.lookup_bench --customers 100000 [--rounds 3] [--code DIR]

The real Bolt app serves signed slash commands over HTTP on loopback (its four listener
threads, a local fake of Slack's Web API), against a SQLite file of N customers built once
in --workdir. Each round sends 12 `/crm customer <misspelt name>` from 12 users at once and
then `/crm customer <id>` from another user, and times each answer from the POST to its
arrival at the response_url. Memory is the process's resident set: idle (served, before
the rounds), the peak during them, and what stays after.

`--code DIR` runs another checkout's crmbot against the same database (e.g. one from
before the name index; build the database with the current code first): its directory
goes first on the import path.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECRET = "lookup-bench-secret"
SYLLABLES = ["ba", "ko", "mir", "den", "sul", "tav", "pel", "gro", "vin", "zu", "lan", "ret",
             "som", "hak", "fi", "nor"]  # fmt: skip
CONCURRENT = 12


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def surname(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


def people(count: int, seed: int = 11) -> list[tuple[str, str, str, str, str, str]]:
    """(customer_id, name, email, company, region, owner): half the surnames from the demo's
    common ones, half made up (as a real book's long tail)."""
    from crmbot.demo import catalog

    rng = random.Random(seed)
    companies = [
        f"{a} {b} {k}"
        for a in catalog.COMPANY_WORDS_A
        for b in catalog.COMPANY_WORDS_B
        for k in catalog.COMPANY_KINDS
    ]
    rows = []
    for i in range(count):
        first = rng.choice(catalog.FIRST_NAMES)
        last = rng.choice(catalog.LAST_NAMES) if rng.random() < 0.5 else surname(rng)
        rows.append(
            (
                f"B{i:07d}",
                f"{first} {last}",
                f"b{i}@example.com",
                rng.choice(companies),
                rng.choice(["EMEA", "AMER", "APAC", "LATAM"]),
                f"U{i % 50:03d}",
            )
        )
    return rows


def build(path: Path, count: int) -> None:
    from crmbot.core.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO customer (customer_id, name, email, company, region, owner) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            people(count),
        )


def index_if_needed(engine: Any) -> str:
    """Build the name index when this crmbot has one and the database lacks it."""
    import crmbot

    if not (Path(crmbot.__file__).parent / "core" / "name_index.py").exists():
        return "none (this crmbot has no name index)"
    from crmbot.core import name_index

    with engine.connect() as connection:
        from sqlalchemy import text

        if connection.execute(text("SELECT count(*) FROM name_token")).scalar():
            return "present"
    started = time.perf_counter()
    name_index.rebuild_all(engine)
    return f"built in {time.perf_counter() - started:.1f} s"


def misspell(name: str, rng: random.Random) -> str:
    """One typo per word of 4 letters or more: a letter dropped, or two swapped."""
    words = []
    for word in name.split():
        if len(word) >= 4:
            i = rng.randint(1, len(word) - 2)
            if rng.random() < 0.5:
                word = word[:i] + word[i + 1 :]
            else:
                word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        words.append(word)
    return " ".join(words)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def serving_parts() -> tuple[Any, Any, Any, Any, str]:
    """Settings, make_engine, build_app, BackgroundServer and the events path of whichever
    crmbot is on the path (the modules moved when the packages were laid out by layer)."""
    try:
        from crmbot.core.config import Settings
        from crmbot.core.db import make_engine
        from crmbot.slack.app import build_app
        from crmbot.slack.http import EVENTS_PATH, BackgroundServer
    except ImportError:
        from crmbot.chat.http import EVENTS_PATH, BackgroundServer  # type: ignore[no-redef]
        from crmbot.chat.slack import build_app  # type: ignore[no-redef]
        from crmbot.config import Settings  # type: ignore[no-redef]
        from crmbot.db import make_engine  # type: ignore[no-redef]
    return Settings, make_engine, build_app, BackgroundServer, EVENTS_PATH


def post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from slack_sdk import WebClient

    from tests.support.slack_fake import SlackFake
    from tests.support.slack_requests import command_body, signed_headers

    if args.code:  # the fake Slack above is this checkout's; crmbot is the other one's
        sys.path.insert(0, str(Path(args.code).resolve()))
    Settings, make_engine, build_app, BackgroundServer, EVENTS_PATH = serving_parts()

    path = Path(args.workdir) / f"lookup-{args.customers}.db"
    if not path.exists():
        if args.code:
            sys.exit(f"{path} is missing: build it with the current code first (no --code)")
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        build(path, args.customers)
        print(f"built {path} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    engine = make_engine(f"sqlite:///{path}")
    index = index_if_needed(engine)
    rng = random.Random(5)
    with sqlite3.connect(path) as connection:
        sample = connection.execute(
            "SELECT customer_id, name FROM customer ORDER BY random() LIMIT ?",
            (CONCURRENT * args.rounds + args.rounds,),
        ).fetchall()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{path}",
        slack_bot_token="xoxb-bench",
        slack_signing_secret=SECRET,
    )
    id_waits: list[float] = []
    misspelt_waits: list[float] = []
    peak = 0.0
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)
        with BackgroundServer(app, engine) as server:
            url = f"{server.url}{EVENTS_PATH}"

            def send(text: str, user: str, answer_path: str) -> float:
                body = command_body(text, user_id=user, response_url=f"{slack.url}{answer_path}")
                sent = time.monotonic()
                status = post(url, body, signed_headers(SECRET, body))
                assert status == 200, status
                return sent

            send("help", "UWARM", "/warm")  # the first request loads what every one needs
            wait_for(slack, ["/warm"], timeout=120)
            idle = rss_mb()
            stop = threading.Event()

            def watch() -> None:
                nonlocal peak
                while not stop.is_set():
                    peak = max(peak, rss_mb())
                    time.sleep(0.02)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            for round_ in range(args.rounds):
                batch = sample[round_ * CONCURRENT : (round_ + 1) * CONCURRENT]
                sent: dict[str, float] = {}

                def typo(
                    n: int, name: str, sent: dict[str, float] = sent, round_: int = round_
                ) -> None:
                    path_ = f"/r{round_}/typo{n}"
                    sent[path_] = send(f"customer {misspell(name, rng)}", f"UTYPO{n}", path_)

                threads = [
                    threading.Thread(target=typo, args=(n, name))
                    for n, (_cid, name) in enumerate(batch)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                by_id = f"/r{round_}/byid"
                customer_id = sample[CONCURRENT * args.rounds + round_][0]
                sent[by_id] = send(f"customer {customer_id}", "UBYID", by_id)
                arrived = wait_for(slack, list(sent), timeout=args.timeout)
                id_waits.append(arrived[by_id] - sent[by_id])
                misspelt_waits += [arrived[p] - sent[p] for p in sent if p != by_id]
            stop.set()
            watcher.join()
            after = rss_mb()
    engine.dispose()
    return {
        "code": args.code or "current",
        "customers": args.customers,
        "index": index,
        "id_median": statistics.median(id_waits),
        "id_max": max(id_waits),
        "typo_median": statistics.median(misspelt_waits),
        "typo_p95": percentile(misspelt_waits, 0.95),
        "idle": idle,
        "peak": peak,
        "after": after,
    }


def wait_for(slack: Any, paths: list[str], *, timeout: float) -> dict[str, float]:
    """{path: when its answer arrived (monotonic)}."""
    deadline = time.monotonic() + timeout
    while True:
        arrived = {r.path: r.at for r in list(slack.requests) if r.path in paths}
        if len(arrived) == len(paths):
            return arrived
        if time.monotonic() > deadline:
            missing = sorted(set(paths) - set(arrived))
            raise SystemExit(f"no answer within {timeout} s for {missing}")
        time.sleep(0.01)


def table(result: dict[str, Any]) -> str:
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("code", lambda r: str(r["code"])),
        ("customers", lambda r: f"{r['customers']:,}"),
        ("name index", lambda r: str(r["index"])),
        ("lookup by id, median / max", lambda r: f"{r['id_median']:.3f} s / {r['id_max']:.3f} s"),
        (
            "misspelt lookups, median / p95",
            lambda r: f"{r['typo_median']:.3f} s / {r['typo_p95']:.3f} s",
        ),  # fmt: skip
        (
            "memory idle / peak / after",
            lambda r: f"{r['idle']:.0f} / {r['peak']:.0f} / {r['after']:.0f} MB",
        ),  # fmt: skip
        ("peak above idle", lambda r: f"{r['peak'] - r['idle']:.0f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {show(result)} |" for name, show in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/crmbot-lookup-bench")
    parser.add_argument("--code", default="", help="another checkout's directory to run")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait per round")
    print(table(run(parser.parse_args())))


if __name__ == "__main__":
    main()
