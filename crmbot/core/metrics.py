"""What an operator counts: Prometheus metrics, defined once, below every transport.

The dispatcher, training and the digests count here without knowing who serves them;
the HTTP server (`crmbot.slack.http`) exposes them at `GET /metrics` in Prometheus' text
format, beside the process metrics (memory, CPU, open files) prometheus-client collects.
Label values come from fixed sets (registered command names, outcomes, stage names),
never from what a user typed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Chat answers: from a few milliseconds to the statement timeout and beyond.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120)
# Acknowledgements must leave within Slack's 3 seconds.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)
# A training stage: under a second on a small book, many minutes at millions of customers.
STAGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)

REQUESTS = Counter(
    "crmbot_requests",
    "Chat requests answered, by command, transport and outcome "
    "(ok, usage, not_found, denied, error, timeout, busy, ...)",
    ["command", "transport", "outcome"],
)
REQUEST_SECONDS = Histogram(
    "crmbot_request_duration_seconds",
    "Time from a chat request reaching the dispatcher to its reply, by command",
    ["command"],
    buckets=REQUEST_BUCKETS,
)
ERRORS = Counter(
    "crmbot_errors",
    "Requests that ended in an error, by kind: command (a failure on crmbot's side), "
    "timeout (statements past CRMBOT_STATEMENT_TIMEOUT_SECONDS), database_unavailable, "
    "listener (outside any command)",
    ["kind"],
)
ACKS = Counter(
    "crmbot_acks",
    "Slack deliveries acknowledged, by kind (command, event)",
    ["kind"],
)
ACK_SECONDS = Histogram(
    "crmbot_ack_duration_seconds",
    "Time from a Slack request arriving over HTTP to its acknowledgement being sent",
    buckets=ACK_BUCKETS,
)
HTTP_REFUSED = Counter(
    "crmbot_http_refused",
    "Requests refused before Slack's app saw them, by HTTP status (400, 401, 413)",
    ["status"],
)
TRAINING_RUNS = Counter(
    "crmbot_training_runs",
    "Model runs trained, by status (succeeded, rejected, failed)",
    ["status"],
)
TRAINING_STAGE_SECONDS = Histogram(
    "crmbot_training_stage_duration_seconds",
    "Time each step of a model run took: load, each model stage, write, total",
    ["stage"],
    buckets=STAGE_BUCKETS,
)
DIGESTS = Counter(
    "crmbot_digests",
    "Digests sent, by kind and status (posted, already_posted, failed, no_model, ...)",
    ["kind", "status"],
)
ACTIVE_RUN_AGE = Gauge(
    "crmbot_active_run_age_seconds",
    "Seconds since the live model run finished training, as last read from the database "
    "(NaN when no run is live or it has not been read yet)",
)
DATABASE_UP = Gauge(
    "crmbot_database_up",
    "The last health probe of the database: 1 answered in time, 0.5 slow, 0 unreachable",
)

_run_finished_at: float | None = None


def _active_run_age() -> float:
    if _run_finished_at is None:
        return float("nan")
    return max(0.0, time.time() - _run_finished_at)


ACTIVE_RUN_AGE.set_function(_active_run_age)


def request_answered(command: str, transport: str, outcome: str, seconds: float) -> None:
    """Count one chat request and its latency."""
    REQUESTS.labels(command=command, transport=transport, outcome=outcome).inc()
    REQUEST_SECONDS.labels(command=command).observe(seconds)


def training_finished(status: str, timings: Mapping[str, float]) -> None:
    """Count one model run and how long each of its steps took."""
    TRAINING_RUNS.labels(status=status).inc()
    for stage, seconds in timings.items():
        TRAINING_STAGE_SECONDS.labels(stage=stage).observe(seconds)


def digest_sent(kind: str, status: str) -> None:
    DIGESTS.labels(kind=kind, status=status).inc()


def active_run_finished(finished_at: datetime | None) -> None:
    """Remember when the live run finished (naive UTC, as stored); None: no live run."""
    global _run_finished_at
    if finished_at is None:
        _run_finished_at = None
        return
    from datetime import UTC

    moment = finished_at if finished_at.tzinfo else finished_at.replace(tzinfo=UTC)
    _run_finished_at = moment.timestamp()


def exposition() -> tuple[bytes, str]:
    """Every metric in Prometheus' text format, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
