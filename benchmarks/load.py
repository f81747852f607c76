"""Slash commands under load while a retrain runs on the same database.

    python -m benchmarks.load                                  # 500 requests, 50 at a time
    python -m benchmarks.load --requests 120 --concurrency 20 --customers 300
    python -m benchmarks.load --database path/to/trained.db    # a copy of it is used
    python -m benchmarks.load --database-url postgresql+psycopg://postgres@127.0.0.1:5432/crmbot_load

What it does, end to end, all on loopback:

1. A trained sample company in a SQLite file (generated, imported and trained here, or a
   copy of --database), or, with --database-url, in that PostgreSQL or MariaDB database:
   created when the server has none of that name, otherwise taken as it is; the sample
   company is imported into it through crmbot's import (an upsert) and trained, and its
   run made live. The benchmark leaves its runs and audit rows there.
2. `crmbot run` in a subprocess: uvicorn serving the Bolt app, SLACK_API_BASE_URL pointing
   at a local fake of the Slack Web API (tests/support/slack_fake.py) that records every
   response_url post.
3. `crmbot train --force --as-of <a week earlier>` in another subprocess on the same
   database. Once it has finished the stage named by --start-after (default: churn, the
   slowest; the last two small stages, the score writes and the flip of the active run are
   still ahead, so they happen during the burst), the load starts: --requests signed `/crm`
   commands (customer cards, why, at-risk, influencers, model), at most --concurrency in
   flight. Until the retrain exits, a trickle of further commands keeps requests in flight
   across the flip; a last burst then checks that the new run is served (and a few commands
   sent before the retrain started, that the old one was).
4. Checks every request: acknowledged (HTTP 200, empty body) within 3 s; its reply arrived
   on its response_url and is right — a customer card names the customer, and shows the
   segment and CLV *of the model run its own footer names* (a reply mixing two runs
   fails); no reply says "database is locked", "not reachable" or "failed on my side", and
   the bot's log has no "database is locked", no traceback and no secret; the audit log
   holds exactly one row per request id.

Prints a table: ack latency p50/p90/p99/max, answer latency, errors, wrong replies, audit
rows, how many replies each model run served, and when the flip happened. Exit status 1
when any check failed. `tests/test_reliability_load.py` runs a smaller version in CI.

Run it from the project root. The parts live beside it: `load_setup` (the database and the
processes) and `load_checks` (the requests, the checks and the table).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.load_checks import (
    LoadResult,
    Sent,
    check_reply,
    command_mix,
    find_problems,
    send,
    table,
)
from benchmarks.load_setup import (
    Bot,
    Database,
    Retrain,
    Score,
    active_run,
    audit_counts,
    bot_environment,
    build_company,
    copy_database,
    ensure_server_database,
    scores_of_run,
    signed_up_by,
)
from tests.support.slack_fake import SlackFake


class Commands:
    """Numbered commands in the mix account managers type (`command_mix`), each with its
    own response_url path and request id; `nonce` tells this run's audit rows apart.

    Each comes from its own user: 50 commands in flight are 50 people asking, not a few
    people each asking several things at once, which the bot answers "one at a time,
    please" (CRMBOT_REQUESTS_PER_USER)."""

    def __init__(self, customers: list[str], seed: int) -> None:
        self.customers = customers
        self.rng = random.Random(seed)
        self.nonce = f"{os.getpid()}x{int(time.time())}"
        self.counter = iter(range(1, 1_000_000))

    def make(self, phase: str) -> Sent:
        index = next(self.counter)
        text, kind, customer = command_mix(self.customers, self.rng)
        return Sent(
            index=index,
            text=text,
            kind=kind,
            customer_id=customer,
            path=f"/respond/{index}",
            request_id=f"cmd:{index}.load{self.nonce}",
            phase=phase,
            user=f"UAM{index}",
        )


@dataclass
class Traffic:
    """What was sent once the retrain had reached its stage, and when."""

    sent: list[Sent]
    load_started: float
    burst_ended: float
    retrain_status: int | None


def fire(bot_url: str, slack: SlackFake, requests: list[Sent], workers: int) -> list[Sent]:
    """Send `requests`, at most `workers` in flight; them, answered or not."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda r: send(bot_url, slack, r), requests))


def load_across_the_flip(
    bot: Bot,
    slack: SlackFake,
    retrain: Retrain,
    make: Callable[[str], Sent],
    *,
    requests: int,
    concurrency: int,
    after_flip: int | None,
) -> Traffic:
    """The burst, a trickle until the retrain has exited, then a burst after the flip."""
    load_started = time.monotonic()
    burst = [make("burst") for _ in range(requests)]
    sent = fire(bot.url, slack, burst, concurrency)
    burst_ended = time.monotonic()
    # Keep a few requests in flight until the retrain has flipped and exited.
    trickle_width = min(2, concurrency)
    with ThreadPoolExecutor(max_workers=trickle_width) as pool:
        while retrain.running():
            batch = [make("trickle") for _ in range(trickle_width)]
            sent += pool.map(lambda r: send(bot.url, slack, r), batch)
            time.sleep(0.1)
    retrain_status = retrain.wait()
    # Then a burst that must all be served by the new run.
    last = [make("after") for _ in range(after_flip or min(concurrency, 20))]
    sent += fire(bot.url, slack, last, concurrency)
    return Traffic(sent, load_started, burst_ended, retrain_status)


def collect_replies(
    slack: SlackFake, sent: list[Sent], answer_timeout: float
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    """Every post to a response_url (path -> what was posted) and when the first arrived,
    once every acknowledged request has an answer or `answer_timeout` has passed."""
    deadline = time.monotonic() + answer_timeout
    wanted = {r.path for r in sent if r.status == 200}
    while time.monotonic() < deadline:
        arrived = {r.path for r in list(slack.requests)}
        if wanted <= arrived:
            break
        time.sleep(0.1)
    time.sleep(0.3)  # anything answered twice would arrive now
    replies: dict[str, list[dict[str, Any]]] = {}
    answered_at: dict[str, float] = {}
    for recorded in list(slack.requests):
        if recorded.path.startswith("/respond/"):
            replies.setdefault(recorded.path, []).append(recorded.params)
            answered_at.setdefault(recorded.path, recorded.at)
    return replies, answered_at


def judge(
    sent: list[Sent],
    replies: dict[str, list[dict[str, Any]]],
    scores: dict[int, dict[str, Score]],
    old_run: int,
    new_run: int | None,
) -> tuple[list[str], Counter[int]]:
    """The wrong or missing replies, and how many replies each model run served."""
    wrong: list[str] = []
    served_by: Counter[int] = Counter()
    for request in sent:
        if request.status != 200:
            continue
        posts = replies.get(request.path, [])
        if len(posts) > 1:
            wrong.append(f"#{request.index} {request.text!r}: answered {len(posts)} times")
        problem, run = check_reply(request, posts, scores)
        if problem:
            wrong.append(f"#{request.index} {request.text!r} ({request.phase}): {problem}")
        if run is not None:
            served_by[run] += 1
            if request.phase == "after" and run != new_run:
                wrong.append(f"#{request.index} after the flip but served by run {run}")
            if request.phase == "before" and run != old_run:
                wrong.append(f"#{request.index} before the retrain but served by run {run}")
    return wrong, served_by


def runs_after(
    database: Database, old_run: int, old_scores: dict[str, Score]
) -> tuple[int | None, dict[int, dict[str, Score]]]:
    """The run live now when it is not `old_run` (None: no flip), and the scores of both."""
    new_run: int | None = None
    scores: dict[int, dict[str, Score]] = {old_run: old_scores}
    current, _ = active_run(database)
    if current != old_run:
        new_run = current
        scores[new_run] = scores_of_run(database, new_run)
    return new_run, scores


def run_load(
    database: Database,
    *,
    workdir: Path,
    requests: int = 500,
    concurrency: int = 50,
    retrain_days_earlier: int = 7,
    start_after: str = "churn",
    after_flip: int | None = None,
    answer_timeout: float = 120.0,
    seed: int = 11,
) -> LoadResult:
    """The whole scenario (see the module docstring) against `database`, which it changes."""
    old_run, old_as_of = active_run(database)
    retrain_as_of = old_as_of - timedelta(days=retrain_days_earlier)
    old_scores = scores_of_run(database, old_run)
    known = signed_up_by(database, retrain_as_of)
    commands = Commands(sorted(c for c in old_scores if c in known), seed)

    with SlackFake() as slack:
        env = bot_environment(database, workdir, slack)
        bot = Bot(env, workdir)
        retrain: Retrain | None = None
        try:
            bot.wait_until_healthy()
            # A few commands before the retrain starts: answered by the old run for sure.
            first = [commands.make("before") for _ in range(min(concurrency, 10))]
            sent = fire(bot.url, slack, first, concurrency)
            retrain = Retrain(env, workdir, retrain_as_of)
            retrain.wait_for_stage(start_after)
            traffic = load_across_the_flip(
                bot,
                slack,
                retrain,
                commands.make,
                requests=requests,
                concurrency=concurrency,
                after_flip=after_flip,
            )
            sent += traffic.sent
            replies, answered_at = collect_replies(slack, sent, answer_timeout)
        finally:
            if retrain is not None:
                retrain.stop()
            bot.stop()
        bot_output = bot.output()

    new_run, scores = runs_after(database, old_run, old_scores)
    wrong, served_by = judge(sent, replies, scores, old_run, new_run)
    rows, outcomes = audit_counts(database, "cmd:")
    rows = Counter({k: v for k, v in rows.items() if k.endswith(f".load{commands.nonce}")})

    result = LoadResult(
        requests=sent,
        replies=replies,
        answered_at=answered_at,
        old_run=old_run,
        new_run=new_run,
        served_by=served_by,
        wrong=wrong,
        audit_rows=rows,
        audit_outcomes=outcomes,
        bot_output=bot_output,
        retrain_output=retrain.output() if retrain else "",
        retrain_status=traffic.retrain_status,
        load_started=traffic.load_started,
        burst_ended=traffic.burst_ended,
        flip_at=retrain.stages.get("activate") if retrain else None,
        retrain_seconds=(retrain.finished - retrain.started)
        if retrain and retrain.finished
        else None,
    )
    result.problems = find_problems(result)
    return result


def prepare(args: argparse.Namespace, workdir: Path) -> Database:
    """The trained database the load runs against (see the module docstring, step 1)."""
    if args.database_url:
        from crmbot.core.db import shown_url

        created = ensure_server_database(args.database_url)
        print(f"{shown_url(args.database_url)}: {'created' if created else 'exists, taken'}")
        database, _ = build_company(
            workdir / "company", customers=args.customers, seed=args.seed, url=args.database_url
        )
        return database
    database = workdir / "load.db"
    if args.database:
        copy_database(args.database, database)
    else:
        built, _ = build_company(workdir / "company", customers=args.customers, seed=args.seed)
        assert isinstance(built, Path)
        copy_database(built, database)
    return database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--customers", type=int, default=800, help="sample company size")
    parser.add_argument("--seed", type=int, default=7, help="sample company seed")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database", type=Path, help="a trained SQLite database to copy")
    where.add_argument(
        "--database-url",
        help="a PostgreSQL or MariaDB database to load the sample company into and run "
        "against (created if missing), e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/crmbot_load",
    )
    parser.add_argument(
        "--start-after", default="churn", help="retrain stage after which load starts"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmbot-load-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        database = prepare(args, workdir)
        print(f"trained sample company ready in {time.perf_counter() - started:.1f} s")
        result = run_load(
            database,
            workdir=workdir,
            requests=args.requests,
            concurrency=args.concurrency,
            start_after=args.start_after,
        )
        print(table(result, concurrency=args.concurrency))
        if result.problems:
            print("\nPROBLEMS:")
            for problem in result.problems:
                print(f"  - {problem}")
            raise SystemExit(1)
        print("\nall checks passed")


if __name__ == "__main__":
    main()
