"""Slash commands under load while a retrain runs on the same SQLite database.

    python benchmarks/load.py                                  # 500 requests, 50 at a time
    python benchmarks/load.py --requests 120 --concurrency 20 --customers 300
    python benchmarks/load.py --database path/to/trained.db    # a copy of it is used

What it does, end to end, all on loopback:

1. A trained sample company in a SQLite file (generated, imported and trained here, or a
   copy of --database).
2. `crmbot run` in a subprocess: uvicorn serving the Bolt app, SLACK_API_BASE_URL pointing
   at a local fake of the Slack Web API (tests/slack_fake.py) that records every
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
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from slack_fake import SlackFake  # noqa: E402
from slack_requests import command_body, signed_headers  # noqa: E402

from crmbot.reply.format import money  # noqa: E402

SECRET = "load-signing-secret-0123456789"
TOKEN = "xoxb-0000-load-test-token"
ACK_DEADLINE_SECONDS = 3.0
CRMBOT = str(Path(sys.executable).parent / "crmbot")
# Words that must never reach a user.
FORBIDDEN_IN_REPLIES = ("database is locked", "not reachable", "failed on my side", "Traceback")
FOOTER = re.compile(r"Model run (\d+), data as of")


# ---------------------------------------------------------------------------------------
# The database


def build_company(directory: Path, *, customers: int, seed: int) -> tuple[Path, date]:
    """Generate, import and train a sample company into `directory/crm.db`."""
    from crmbot.core.config import Settings
    from crmbot.core.db import connect
    from crmbot.demo import generate_company, load_demo
    from crmbot.runs import train

    truth = generate_company(directory / "csv", customers=customers, seed=seed)
    database = directory / "crm.db"
    engine = connect(f"sqlite:///{database}")
    load_demo(engine, directory / "csv")
    settings = Settings(_env_file=None, database_url=f"sqlite:///{database}")  # type: ignore[call-arg]
    result = train(engine, settings, truth.as_of)
    engine.dispose()
    if result.status != "succeeded":
        raise SystemExit(f"training the sample company failed: {result.error}")
    return database, truth.as_of


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, even one in use (WAL): SQLite's backup."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def active_run(database: Path) -> tuple[int, date]:
    with sqlite3.connect(database) as connection:
        run_id, as_of = connection.execute(
            "SELECT r.id, r.as_of FROM active_run a JOIN model_run r ON r.id = a.run_id "
            "WHERE a.slot = 'scores'"
        ).fetchone()
    return int(run_id), date.fromisoformat(str(as_of)[:10])


@dataclass(frozen=True)
class Score:
    name: str
    segment: str | None
    clv: float | None


def scores_of_run(database: Path, run_id: int) -> dict[str, Score]:
    """customer_id -> what the customer card of that run shows."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT c.customer_id, c.name, s.segment, s.clv FROM customer_score s "
            "JOIN customer c ON c.id = s.customer_pk WHERE s.run_id = ? AND c.erased_at IS NULL",
            (run_id,),
        ).fetchall()
    return {str(cid): Score(str(name), segment, clv) for cid, name, segment, clv in rows}


def audit_counts(database: Path, prefix: str) -> tuple[Counter[str], Counter[str]]:
    """Audit rows per request id, and their outcomes, for ids starting with `prefix`."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT request_id, outcome FROM audit_log WHERE request_id LIKE ?", (prefix + "%",)
        ).fetchall()
    return Counter(r for r, _ in rows), Counter(o for _, o in rows)


# ---------------------------------------------------------------------------------------
# The processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_environment(database: Path, workdir: Path, slack: SlackFake) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "DATABASE_URL": f"sqlite:///{database}",
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_BASE_URL": slack.base_url,
        "CRMBOT_CHART_DIR": str(workdir / "charts"),
    }


class Bot:
    """`crmbot run` serving HTTP on a free loopback port; output kept in a file."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "crmbot-run.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [CRMBOT, "run", "--host", "127.0.0.1", "--port", str(self.port), "--no-scheduler"],
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"crmbot run exited:\n{self.output()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"crmbot run did not answer /healthz:\n{self.output()}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class Retrain:
    """`crmbot train --force` in a subprocess; its stage lines are timestamped as read."""

    def __init__(self, env: dict[str, str], workdir: Path, as_of: date) -> None:
        self.started = time.monotonic()
        self.stages: dict[str, float] = {}
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [CRMBOT, "train", "--as-of", as_of.isoformat(), "--force"],
            cwd=workdir,
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.finished: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip())
                found = re.search(r"✓ (\w+)", line)
                if found:
                    self.stages[found.group(1)] = time.monotonic()
                self._changed.notify_all()
        self.process.wait()
        with self._changed:
            self.finished = time.monotonic()
            self._changed.notify_all()

    def wait_for_stage(self, stage: str, timeout: float = 300.0) -> None:
        with self._changed:
            done = self._changed.wait_for(
                lambda: stage in self.stages or self.finished is not None, timeout
            )
        if not done or stage not in self.stages:
            raise RuntimeError(f"the retrain never finished stage {stage!r}:\n{self.output()}")

    def running(self) -> bool:
        return self.finished is None

    def wait(self, timeout: float = 300.0) -> int:
        self._reader.join(timeout)
        return self.process.wait(timeout=1)

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# ---------------------------------------------------------------------------------------
# The requests


@dataclass
class Sent:
    index: int
    text: str
    kind: str  # customer | why | at-risk | influencers | model
    customer_id: str | None
    path: str  # the response_url path the answer goes to
    request_id: str  # what the bot audits it under
    phase: str  # before | burst | trickle | after
    user: str = "UAM1"
    started: float = 0.0
    ack_seconds: float | None = None
    status: int | None = None
    body: str = ""
    error: str | None = None


def command_mix(customers: list[str], rng: random.Random) -> tuple[str, str, str | None]:
    """One command as account managers type them: mostly lookups, some lists."""
    roll = rng.random()
    customer = rng.choice(customers)
    if roll < 0.55:
        return f"customer {customer}", "customer", customer
    if roll < 0.80:
        return f"why {customer}", "why", customer
    if roll < 0.90:
        return "at-risk", "at-risk", None
    if roll < 0.95:
        return "influencers", "influencers", None
    return "model", "model", None


def send(bot_url: str, slack: SlackFake, request: Sent) -> Sent:
    trigger = request.request_id.removeprefix("cmd:")
    body = command_body(
        request.text,
        user_id=request.user,
        response_url=f"{slack.url}{request.path}",
        trigger_id=trigger,
    )
    headers = signed_headers(SECRET, body)
    host, port = bot_url.removeprefix("http://").split(":")
    request.started = time.monotonic()
    try:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", "/slack/events", body=body.encode(), headers=headers)
        response = connection.getresponse()
        request.body = response.read().decode(errors="replace")
        request.status = response.status
        connection.close()
    except OSError as exc:
        request.error = f"{type(exc).__name__}: {exc}"
    request.ack_seconds = time.monotonic() - request.started
    return request


# ---------------------------------------------------------------------------------------
# The run


@dataclass
class LoadResult:
    requests: list[Sent]
    replies: dict[str, list[dict[str, Any]]]  # response_url path -> what was posted there
    answered_at: dict[str, float]
    old_run: int
    new_run: int | None
    served_by: Counter[int]
    wrong: list[str]
    audit_rows: Counter[str]
    audit_outcomes: Counter[str]
    bot_output: str
    retrain_output: str
    retrain_status: int | None
    load_started: float
    burst_ended: float
    flip_at: float | None  # when the retrain printed that the new run went live
    retrain_seconds: float | None
    problems: list[str] = field(default_factory=list)

    def acked(self) -> list[Sent]:
        return [r for r in self.requests if r.status == 200 and r.error is None]

    def ack_latencies(self, phase: str | None = None) -> list[float]:
        return sorted(
            r.ack_seconds
            for r in self.requests
            if r.ack_seconds is not None and (phase is None or r.phase == phase)
        )

    def answer_latencies(self) -> list[float]:
        return sorted(
            self.answered_at[r.path] - r.started
            for r in self.requests
            if r.path in self.answered_at
        )


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(share * 1000) - 1]


def reply_text(posts: list[dict[str, Any]]) -> str:
    return "\n".join(
        json.dumps(p.get("blocks"), ensure_ascii=False) + str(p.get("text", "")) for p in posts
    )


def check_reply(
    request: Sent, posts: list[dict[str, Any]], scores: dict[int, dict[str, Score]]
) -> tuple[str | None, int | None]:
    """What is wrong with the answer to `request` (None: nothing), and the run it came from."""
    if not posts:
        return "no answer arrived", None
    text = reply_text(posts)
    for word in FORBIDDEN_IN_REPLIES:
        if word in text:
            return f"says {word!r}: {text[:200]}", None
    runs = {int(n) for n in FOOTER.findall(text)}
    if request.kind == "model":
        found = re.search(r"Model run (\d+)", text)
        run = int(found.group(1)) if found else None
        return (None if run in scores else f"names no known model run: {text[:200]}"), run
    if len(runs) != 1 or next(iter(runs)) not in scores:
        return f"footer names runs {sorted(runs)}, expected one of {sorted(scores)}", None
    run = next(iter(runs))
    if request.kind == "at-risk" and "accounts at risk" not in text:
        return f"not an at-risk list: {text[:200]}", run
    if request.kind == "influencers" and "Top 10 influencers" not in text:
        return f"not an influencer list: {text[:200]}", run
    if request.customer_id is not None:
        score = scores[run].get(request.customer_id)
        if score is None:
            return f"run {run} has no score for {request.customer_id}", run
        expected = [f"{score.name} ({request.customer_id})", money(score.clv)]
        if score.segment:
            expected.append(score.segment)
        missing = [part for part in expected if part not in text]
        if missing:
            return f"run {run} footer but {missing} missing (a mix of runs?): {text[:300]}", run
    return None, run


def run_load(
    database: Path,
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
    with sqlite3.connect(database) as connection:
        # Customers the retrain (a week earlier) scores too: signed up by then.
        known = {
            str(cid)
            for (cid,) in connection.execute(
                "SELECT customer_id FROM customer WHERE signed_up_at <= ?",
                (retrain_as_of.isoformat(),),
            )
        }
    customers = sorted(c for c in old_scores if c in known)
    rng = random.Random(seed)
    nonce = f"{os.getpid()}x{int(time.time())}"
    counter = iter(range(1, 1_000_000))
    users = [f"UAM{n}" for n in range(1, 9)]

    def make(phase: str) -> Sent:
        index = next(counter)
        text, kind, customer = command_mix(customers, rng)
        return Sent(
            index=index,
            text=text,
            kind=kind,
            customer_id=customer,
            path=f"/respond/{index}",
            request_id=f"cmd:{index}.load{nonce}",
            phase=phase,
            user=rng.choice(users),
        )

    sent: list[Sent] = []
    with SlackFake() as slack:
        env = bot_environment(database, workdir, slack)
        bot = Bot(env, workdir)
        retrain: Retrain | None = None
        try:
            bot.wait_until_healthy()
            # A few commands before the retrain starts: answered by the old run for sure.
            first = [make("before") for _ in range(min(concurrency, 10))]
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                sent += pool.map(lambda r: send(bot.url, slack, r), first)
            retrain = Retrain(env, workdir, retrain_as_of)
            retrain.wait_for_stage(start_after)
            load_started = time.monotonic()
            burst = [make("burst") for _ in range(requests)]
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                sent += pool.map(lambda r: send(bot.url, slack, r), burst)
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
            with ThreadPoolExecutor(max_workers=concurrency) as pool:
                sent += pool.map(lambda r: send(bot.url, slack, r), last)

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
        finally:
            if retrain is not None:
                retrain.stop()
            bot.stop()
        bot_output = bot.output()

    new_run: int | None = None
    scores: dict[int, dict[str, Score]] = {old_run: old_scores}
    current, _ = active_run(database)
    if current != old_run:
        new_run = current
        scores[new_run] = scores_of_run(database, new_run)

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
    rows, outcomes = audit_counts(database, "cmd:")
    rows = Counter({k: v for k, v in rows.items() if k.endswith(f".load{nonce}")})

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
        retrain_status=retrain_status,
        load_started=load_started,
        burst_ended=burst_ended,
        flip_at=retrain.stages.get("activate") if retrain else None,
        retrain_seconds=(retrain.finished - retrain.started)
        if retrain and retrain.finished
        else None,
    )
    result.problems = find_problems(result)
    return result


def find_problems(result: LoadResult) -> list[str]:
    """Every broken promise, in words (empty: all held)."""
    problems: list[str] = []
    failed = [r for r in result.requests if r.status != 200 or r.error or r.body]
    if failed:
        sample = [(r.index, r.status, r.error, r.body[:80]) for r in failed[:5]]
        problems.append(f"{len(failed)} requests not acknowledged with an empty 200: {sample}")
    late = [r for r in result.requests if (r.ack_seconds or 0) >= ACK_DEADLINE_SECONDS]
    if late:
        problems.append(f"{len(late)} acknowledgements took {ACK_DEADLINE_SECONDS} s or more")
    problems += result.wrong[:20]
    if len(result.wrong) > 20:
        problems.append(f"... and {len(result.wrong) - 20} more wrong replies")
    for request in result.requests:
        if result.audit_rows.get(request.request_id, 0) != 1:
            problems.append(
                f"#{request.index} audited {result.audit_rows.get(request.request_id, 0)} times"
            )
    for word in ("database is locked", "Traceback", SECRET, TOKEN):
        if word in result.bot_output:
            problems.append(f"the bot's log contains {word[:20]!r}")
    if result.retrain_status != 0:
        problems.append(f"the retrain exited {result.retrain_status}:\n{result.retrain_output}")
    if result.new_run is None:
        problems.append("the retrain did not make a new run live")
    return problems


# ---------------------------------------------------------------------------------------
# The report


def table(result: LoadResult, *, concurrency: int) -> str:
    acks = result.ack_latencies()
    burst = result.ack_latencies("burst")
    answers = result.answer_latencies()
    errors = [r for r in result.requests if r.status != 200 or r.error]
    audited_once = sum(1 for r in result.requests if result.audit_rows.get(r.request_id) == 1)
    phases = Counter(r.phase for r in result.requests)
    flip = (
        f"{result.flip_at - result.load_started:.1f} s after the load started"
        f" (burst took {result.burst_ended - result.load_started:.1f} s)"
        if result.flip_at
        else "—"
    )
    locked = result.bot_output.count("database is locked") + sum(
        "database is locked" in reply_text(p) for p in result.replies.values()
    )

    def ms(value: float) -> str:
        return f"{value * 1000:,.0f} ms"

    rows = [
        (
            "requests",
            f"{len(result.requests)} (before the retrain {phases['before']}, burst "
            f"{phases['burst']} at concurrency {concurrency}, trickle {phases['trickle']}, "
            f"after the flip {phases['after']})",
        ),
        ("acknowledged < 3 s", f"{sum(1 for a in acks if a < ACK_DEADLINE_SECONDS)}"),
        (
            "ack latency (burst)",
            f"p50 {ms(percentile(burst, 0.5))}  p90 {ms(percentile(burst, 0.9))}  "
            f"p99 {ms(percentile(burst, 0.99))}  max {ms(max(burst or [0]))}",
        ),
        (
            "ack latency (all)",
            f"p50 {ms(percentile(acks, 0.5))}  p99 {ms(percentile(acks, 0.99))}  "
            f"max {ms(max(acks or [0]))}",
        ),
        (
            "answer latency",
            f"p50 {ms(percentile(answers, 0.5))}  p99 {ms(percentile(answers, 0.99))}  "
            f"max {ms(max(answers or [0]))}",
        ),
        ("errors", str(len(errors))),
        ("wrong or missing replies", str(len(result.wrong))),
        ("audited exactly once", f"{audited_once} of {len(result.requests)}"),
        ("'database is locked' seen", str(locked)),
        (
            "replies by model run",
            ", ".join(f"run {run}: {n}" for run, n in sorted(result.served_by.items())),
        ),
        (
            "retrain",
            f"{result.retrain_seconds or float('nan'):.1f} s, run {result.old_run} -> "
            f"{result.new_run}, flip {flip}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--customers", type=int, default=800, help="sample company size")
    parser.add_argument("--seed", type=int, default=7, help="sample company seed")
    parser.add_argument("--database", type=Path, help="a trained SQLite database to copy")
    parser.add_argument(
        "--start-after", default="churn", help="retrain stage after which load starts"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crmbot-load-") as tmp:
        workdir = Path(tmp)
        database = workdir / "load.db"
        started = time.perf_counter()
        if args.database:
            copy_database(args.database, database)
        else:
            built, _ = build_company(workdir / "company", customers=args.customers, seed=args.seed)
            copy_database(built, database)
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
