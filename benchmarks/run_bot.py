"""The bot under measurement, in the parent process: `/crm` commands through the
`Dispatcher`; `crmbot run --http` in a child process on a free loopback port, with Slack's
Web API faked locally (`tests.support.slack_fake`, in a process of its own), at
--concurrency; and the digests."""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.lookup_bench import misspell
from benchmarks.run_common import (
    BENCH_USER,
    BOT_TOKEN,
    PYTHON,
    ROOT,
    SEED,
    SIGNING_SECRET,
    child_command,
    free_port,
    log,
    percentiles,
    settings_for,
)


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


# The mix of `--mix` (`measure_mix`): what account managers type, typos included. "{name}"
# is a customer's name with one typo per word (`misspell`), a different customer each time.
MIX_ASK = [
    *ASK_QUESTIONS,
    "how many customers are in the At risk segment?",
    "customers in APAC with churn risk over 70%",
    "average order value of Hibernating customers",
    "top 10 custmers by CLV in EMAE",
    "chapmions in LATAM with churn risk over 50%",
    "what should I offer {name}",
    "what should I offer {name}?",
]
MIX_AT_RISK_SEGMENT = [
    "at-risk Champions",
    "at-risk At risk",
    "at-risk cant lose",
    "at-risk hibernating",
    "at-risk 20 Loyal",
    "at-risk need attention",
]
MIX_AT_RISK_REGION = ["at-risk EMEA", "at-risk apac", "at-risk 20 LATAM", "at-risk NA"]


def sample_names(engine: Any, count: int, seed: int = SEED) -> list[str]:
    """Names of `count` customers picked at random (by surrogate id), as stored."""
    from sqlalchemy import func, select

    from crmbot.core.models import Customer

    with engine.connect() as connection:
        highest = connection.execute(select(func.max(Customer.id))).scalar_one()
        rng = random.Random(seed + 1)
        pks = {rng.randint(1, highest) for _ in range(count * 2)}
        names = connection.execute(
            select(Customer.name).where(Customer.id.in_(pks), Customer.name.is_not(None))  # type: ignore[union-attr]
        ).scalars()
        return [name for name in names if name][:count]


def measure_mix(
    url: str, requests: int, ask_requests: int | None = None, seed: int = SEED
) -> dict[str, Any]:
    """Server-side latency of the issue's mix through the Dispatcher, `requests` of each
    kind (`ask_requests` of ask): `/crm ask` over MIX_ASK (misspelt names and words
    included), `/crm at-risk <segment>`, `/crm at-risk <region>`, `/crm customer <misspelt
    name>`. The kinds take turns request by request, so a slow stretch of the machine
    falls on all of them."""
    from crmbot.chat.dispatch import Dispatcher
    from crmbot.core.db import make_engine
    from crmbot.slack.http import freeze_start_up_objects

    engine = make_engine(url)
    dispatcher = Dispatcher(engine, settings_for(url))
    # What the bot's server does once it has started (before any request).
    freeze_start_up_objects()
    rng = random.Random(seed)
    names = sample_names(engine, 2 * max(requests, ask_requests or 0), seed)
    typed = iter([misspell(name, rng) for name in names] * 2)
    texts: dict[str, list[str]] = {"ask": [], "at-risk <segment>": [], "at-risk <region>": []}
    texts["customer <misspelt name>"] = []
    asks = ask_requests or requests
    for number in range(max(requests, asks)):
        if number < asks:
            question = MIX_ASK[number % len(MIX_ASK)]
            texts["ask"].append("ask " + question.replace("{name}", next(typed)))
        if number >= requests:
            continue
        texts["at-risk <segment>"].append(MIX_AT_RISK_SEGMENT[number % len(MIX_AT_RISK_SEGMENT)])
        texts["at-risk <region>"].append(MIX_AT_RISK_REGION[number % len(MIX_AT_RISK_REGION)])
        texts["customer <misspelt name>"].append(f"customer {next(typed)}")
    # Warm up: the first call of each kind loads the registry, the vocabularies and the
    # caches; each at-risk text once, since a segment's ranking is read on its first use
    # in a run (those first calls are reported apart, as "first call").
    first_calls: dict[str, list[float]] = {}
    for kind, variants in texts.items():
        for text in dict.fromkeys(variants if kind.startswith("at-risk") else variants[:1]):
            started = time.perf_counter()
            dispatcher.handle(text, user_id=BENCH_USER, channel_id="CBENCH")
            first_calls.setdefault(kind, []).append(time.perf_counter() - started)
    samples: dict[str, list[float]] = {kind: [] for kind in texts}
    outcomes: dict[str, dict[str, int]] = {kind: {} for kind in texts}
    slowest: dict[str, tuple[float, str]] = {kind: (0.0, "") for kind in texts}
    for number in range(max(requests, asks)):
        for kind, variants in texts.items():
            if number >= len(variants):
                continue
            text = variants[number]
            started = time.perf_counter()
            reply = dispatcher.handle(text, user_id=BENCH_USER, channel_id="CBENCH")
            took = time.perf_counter() - started
            samples[kind].append(took)
            outcomes[kind][reply.outcome] = outcomes[kind].get(reply.outcome, 0) + 1
            if took > slowest[kind][0]:
                slowest[kind] = (took, text)
    engine.dispose()
    results = {
        kind: {
            **percentiles(samples[kind]),
            "outcomes": outcomes[kind],
            "slowest": f"{slowest[kind][0] * 1000:.0f} ms: {slowest[kind][1]}",
            "first_call_ms": [round(t * 1000, 1) for t in first_calls.get(kind, [])],
        }
        for kind in texts
    }
    return results


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


def child_slack(args: dict[str, Any]) -> dict[str, Any]:
    """The local fake of Slack's Web API (tests/support/slack_fake.py), in its own process so
    its work does not share a GIL with the load generator; reports answers received."""
    from tests.support.slack_fake import SlackFake

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
        command = child_command("slack", arguments, workdir / "slack-fake.result.json")
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


class CommandLoad:
    """Signed `/crm` commands POSTed to the bot by `concurrency` threads, one connection
    each; the acknowledgement latencies and the errors."""

    def __init__(self, port: int, fake_url: str, texts: list[str]) -> None:
        self.port = port
        self.fake_url = fake_url
        self.texts = texts
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.counter = iter(range(len(texts)))

    def warm_up(self) -> None:
        """One request first, so start-up costs are not in the figures."""
        import http.client

        from tests.support.slack_requests import command_body, signed_headers

        warm_url = f"{self.fake_url}/respond/warm"
        warm = command_body("help", user_id=BENCH_USER, response_url=warm_url)
        first = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        first.request(
            "POST", "/slack/events", body=warm, headers=signed_headers(SIGNING_SECRET, warm)
        )
        first.getresponse().read()
        first.close()

    def run(self, concurrency: int) -> None:
        threads = [threading.Thread(target=self.worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def worker(self) -> None:
        import http.client

        from tests.support.slack_requests import command_body, signed_headers

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while True:
            with self.lock:
                number = next(self.counter, None)
            if number is None:
                break
            body = command_body(
                self.texts[number],
                user_id=BENCH_USER,
                response_url=f"{self.fake_url}/respond/{number}",
            )
            headers = signed_headers(SIGNING_SECRET, body)
            started = time.perf_counter()
            try:
                connection.request("POST", "/slack/events", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with self.lock:
                    self.latencies.append(elapsed)
                    if response.status != 200:
                        self.errors.append(f"HTTP {response.status}")
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.errors.append(type(exc).__name__)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.close()


def measure_http(url: str, requests: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    from crmbot.core.db import make_engine

    engine = make_engine(url)
    customer_ids = sample_customer_ids(engine, requests, seed=SEED + 1)
    engine.dispose()
    texts = [f"customer {cid}" for cid in customer_ids]
    texts = [t if n % 10 else "at-risk" for n, t in enumerate(texts)]
    with slack_fake(workdir) as fake, running_bot(url, fake.base_url, workdir) as port:
        load = CommandLoad(port, fake.url, texts)
        load.warm_up()
        started = time.perf_counter()
        load.run(concurrency)
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
        **percentiles(load.latencies),
        "requests": len(texts),
        "concurrency": concurrency,
        "errors": len(load.errors),
        "error_kinds": sorted(set(load.errors)),
        "acks_per_second": len(load.latencies) / wall if wall else None,
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
