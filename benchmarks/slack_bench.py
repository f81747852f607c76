"""Server-side latency of `/crm customer` (and friends) through the real Slack transport.

    python -m benchmarks.slack_bench                         # a fresh sample company
    python -m benchmarks.slack_bench --database-url sqlite:///crmbot.db --requests 400
    python -m benchmarks.slack_bench --http                  # through uvicorn on loopback

Builds (or opens) a trained sample company, starts the Bolt app against a local stand-in
for the Slack Web API (it answers `auth.test`/`users.info` and records the response_url
posts with their arrival time), and sends signed `/crm customer <...>` requests — one
after another, or `--concurrency` at a time — by customer id, by email, by exact name and
by a misspelt name. For each request it measures

* ack: until the HTTP response (what Slack's 3-second deadline applies to), and
* answer: until the reply reached the response_url — all the server's work: the lazy
  listener, the lookup through the active run, Block Kit rendering and the POST,

and prints p50 / p95 / max per kind of lookup. With `--http` the requests go over real
HTTP to the same server `crmbot run` starts (Bolt's ASGI adapter under uvicorn).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_bolt import BoltRequest
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from crmbot.core.config import Settings
from crmbot.core.db import connect, read_session
from crmbot.core.models import Customer
from crmbot.slack.app import build_app
from crmbot.slack.http import BackgroundServer

SECRET = "bench-signing-secret"


class SlackStandIn:
    """Answers the Web API calls the bot makes and timestamps every response_url post."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.startswith("/respond/"):
                    stand_in.arrivals[self.path] = time.perf_counter()
                    stand_in.bodies[self.path] = json.loads(raw or b"{}")
                    body = b"ok"
                elif self.path.endswith("auth.test"):
                    body = json.dumps(
                        {"ok": True, "user_id": "UBOT", "team_id": "T1", "bot_id": "B1"}
                    ).encode()
                elif self.path.endswith("users.info"):
                    body = json.dumps({"ok": True, "user": {"id": "U1", "profile": {}}}).encode()
                else:
                    body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def sample_company(customers: int, folder: Path) -> str:
    from crmbot.demo import generate_company, load_demo
    from crmbot.runs import train

    url = f"sqlite:///{folder / 'crm.db'}"
    truth = generate_company(folder / "csv", customers=customers, seed=7)
    engine = connect(url)
    load_demo(engine, folder / "csv")
    started = time.perf_counter()
    run = train(engine, Settings(_env_file=None, database_url=url), truth.as_of)  # type: ignore[call-arg]
    print(
        f"sample company: {customers:,} customers, trained in {time.perf_counter() - started:.1f}s "
        f"({run.status})"
    )
    engine.dispose()
    return url


def queries_for(url: str, count: int, seed: int) -> list[tuple[str, str]]:
    engine = connect(url)
    with read_session(engine) as session:
        rows = session.execute(
            select(Customer.customer_id, Customer.email, Customer.name).where(
                Customer.erased_at.is_(None)  # type: ignore[union-attr]
            )
        ).all()
    engine.dispose()
    rng = random.Random(seed)
    names: dict[str, int] = {}
    for row in rows:
        names[row.name] = names.get(row.name, 0) + 1
    unique = [r for r in rows if r.name and names[r.name] == 1]
    picks: list[tuple[str, str]] = []
    for i in range(count):
        row = rng.choice(unique)
        kind = ["id", "email", "name", "typo"][i % 4]
        if kind == "id":
            picks.append((kind, row.customer_id))
        elif kind == "email":
            picks.append((kind, row.email or row.customer_id))
        elif kind == "name":
            picks.append((kind, row.name))
        else:
            name = row.name
            cut = rng.randrange(1, len(name) - 1)
            picks.append((kind, name[:cut] + name[cut + 1 :]))  # one letter dropped
    return picks


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a trained crmbot database (default: build one)")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--http", action="store_true", help="send over HTTP to uvicorn")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight at once (default 1)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crmbot-bench-") as folder:
        url = args.database_url or sample_company(args.customers, Path(folder))
        picks = queries_for(url, args.requests, args.seed)
        slack = SlackStandIn()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            slack_bot_token="xoxb-bench-token",
            slack_signing_secret=SECRET,
            chart_dir=str(Path(folder) / "charts"),
        )
        engine = connect(url)
        app = build_app(
            settings, engine, WebClient(token="xoxb-bench", base_url=f"{slack.url}/api/")
        )
        server = BackgroundServer(app, engine).start() if args.http else None
        verifier = SignatureVerifier(SECRET)
        results: dict[str, list[tuple[float, float]]] = {}
        cards = 0
        lock = threading.Lock()

        def one(n: int, kind: str, query: str) -> None:
            nonlocal cards
            path = f"/respond/{n}"
            body = urlencode(
                {
                    "command": "/crm",
                    "text": f"customer {query}",
                    "user_id": "UAM1",
                    "channel_id": "C1",
                    "team_id": "T1",
                    "trigger_id": f"{n}.bench",
                    "response_url": f"{slack.url}{path}",
                }
            )
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/x-www-form-urlencoded",
                "x-slack-request-timestamp": stamp,
                "x-slack-signature": verifier.generate_signature(timestamp=stamp, body=body) or "",
            }
            started = time.perf_counter()
            if server is not None:
                request = urllib.request.Request(
                    f"{server.url}/slack/events", data=body.encode(), headers=headers
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
            else:
                assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200
            acked = time.perf_counter()
            while path not in slack.arrivals:
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"no answer for {query!r}")
                time.sleep(0.0005)
            answer = slack.arrivals[path]
            with lock:
                cards += "Why?" in json.dumps(slack.bodies[path])
                results.setdefault(kind, []).append(
                    ((acked - started) * 1000, (answer - started) * 1000)
                )

        wall = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for future in [
                pool.submit(one, n, kind, query) for n, (kind, query) in enumerate(picks, start=1)
            ]:
                future.result()
        wall = time.perf_counter() - wall
        if server is not None:
            server.stop()
        engine.dispose()

    transport = "HTTP (uvicorn, loopback)" if args.http else "App.dispatch (in process)"
    print(
        f"/crm customer, {args.requests} requests, {args.concurrency} at a time, via "
        f"{transport}: {wall:.1f}s, {cards} answered with a customer card"
    )
    print(
        f"{'lookup':<8}{'n':>5}{'ack p50':>10}{'ack p95':>10}{'ack max':>10}{'answer p50':>12}"
        f"{'answer p95':>12}{'answer max':>12}   (ms)"
    )
    everything: list[tuple[float, float]] = []

    def line(label: str, rows: list[tuple[float, float]]) -> str:
        acks = [a for a, _ in rows]
        answers = [b for _, b in rows]
        return (
            f"{label:<8}{len(rows):>5}{percentile(acks, 0.5):>10.1f}"
            f"{percentile(acks, 0.95):>10.1f}{max(acks):>10.1f}"
            f"{percentile(answers, 0.5):>12.1f}{percentile(answers, 0.95):>12.1f}"
            f"{max(answers):>12.1f}"
        )

    for kind in ("id", "email", "name", "typo"):
        rows = results.get(kind, [])
        everything += rows
        print(line(kind, rows))
    print(line("all", everything))
    answers = [b for _, b in everything]
    print(f"mean answer {statistics.mean(answers):.1f} ms")


if __name__ == "__main__":
    main()
