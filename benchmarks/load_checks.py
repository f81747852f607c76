"""The requests of the load benchmark (`benchmarks.load`) and what is checked of them: the
command mix, sending one signed command, whether its reply is right (and from which model
run), the result's broken promises, and the table."""

from __future__ import annotations

import http.client
import json
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load_setup import SECRET, TOKEN, Score
from crmbot.reply.format import money
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers

ACK_DEADLINE_SECONDS = 3.0
# Words that must never reach a user.
FORBIDDEN_IN_REPLIES = ("database is locked", "not reachable", "failed on my side", "Traceback")
FOOTER = re.compile(r"Model run (\d+), data as of")


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
# The result and what is wrong with it


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
        return (
            f"footer names runs {sorted(runs)}, expected one of {sorted(scores)}: {text[:200]}",
            None,
        )
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
