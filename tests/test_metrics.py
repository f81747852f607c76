"""Operational visibility: Prometheus metrics at GET /metrics, and JSON logs."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk import WebClient

from crmbot.core.config import Settings
from crmbot.core.db import make_engine, upgrade
from crmbot.digests import send_digest
from crmbot.runs import train
from crmbot.slack.app import build_app
from crmbot.slack.http import EVENTS_PATH, BackgroundServer
from tests.support.http_serving import wait_until_healthy
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import command_body, signed_headers
from tests.support.small_crm import seed
from tests.support.value_data import END, build_company, insert_company
from tests.test_http import CRMBOT, SECRET, crmbot_env, free_port, get, post, wait_for_path


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_commands_acks_errors_training_and_digests(
    settings: Settings, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    upgrade(engine)
    insert_company(engine, build_company())
    before = {
        "ok": value("crmbot_requests_total", command="customer", transport="slack", outcome="ok"),
        "unknown": value(
            "crmbot_requests_total", command="unknown", transport="slack", outcome="usage"
        ),
        "acks": value("crmbot_acks_total", kind="command"),
        "ack_seconds": value("crmbot_ack_duration_seconds_count"),
        "runs": value("crmbot_training_runs_total", status="succeeded"),
        "clv": value("crmbot_training_stage_duration_seconds_count", stage="clv"),
        "digests": value("crmbot_digests_total", kind="at-risk", status="dry_run"),
        "refused": value("crmbot_http_refused_total", status="401"),
    }
    assert train(engine, settings, END).status == "succeeded"
    assert send_digest(engine, settings, None, "at-risk", "", dry_run=True).status == "dry_run"
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)
        with BackgroundServer(app, engine) as server:
            for n, text in enumerate(["customer C001", "customer C002", "frobnicate now"]):
                body = command_body(text, response_url=f"{slack.url}/respond/{n}")
                assert (
                    post(f"{server.url}{EVENTS_PATH}", body, signed_headers(SECRET, body))[0] == 200
                )
                wait_for_path(slack, f"/respond/{n}")
            unsigned = post(f"{server.url}{EVENTS_PATH}", "x=1", {"content-type": "text/plain"})
            assert unsigned[0] == 401
            deadline = time.monotonic() + 5  # the audit row is written after the answer
            while (
                value(
                    "crmbot_requests_total", command="unknown", transport="slack", outcome="usage"
                )
                < before["unknown"] + 1
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            status, exposition = get(f"{server.url}/metrics")
    engine.dispose()
    assert status == 200
    samples = scraped(exposition)

    def sample(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert (
        sample("crmbot_requests_total", command="customer", transport="slack", outcome="ok")
        == before["ok"] + 2
    )
    # A command nobody registered is counted as "unknown", never under what was typed.
    assert (
        sample("crmbot_requests_total", command="unknown", transport="slack", outcome="usage")
        == before["unknown"] + 1
    )
    assert not [key for key in samples if ("command", "frobnicate") in key[1]]
    assert sample("crmbot_acks_total", kind="command") >= before["acks"] + 3
    assert sample("crmbot_ack_duration_seconds_count") >= before["ack_seconds"] + 3
    assert sample("crmbot_request_duration_seconds_count", command="customer") >= 2
    assert sample("crmbot_http_refused_total", status="401") == before["refused"] + 1
    assert sample("crmbot_training_runs_total", status="succeeded") == before["runs"] + 1
    assert sample("crmbot_training_stage_duration_seconds_count", stage="clv") == (
        before["clv"] + 1
    )
    assert sample("crmbot_digests_total", kind="at-risk", status="dry_run") == (
        before["digests"] + 1
    )
    age = sample("crmbot_active_run_age_seconds")
    assert not math.isnan(age) and 0 <= age < 600  # the run trained a moment ago
    assert sample("crmbot_database_up") == 1.0
    assert sample("process_resident_memory_bytes") > 0


def test_crmbot_run_writes_json_logs(tmp_path: Path) -> None:
    database = tmp_path / "crm.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    seed(engine)
    engine.dispose()
    port = free_port()
    with SlackFake() as slack:
        env = crmbot_env(
            tmp_path,
            DATABASE_URL=f"sqlite:///{database}",
            SLACK_BOT_TOKEN="xoxb-0000-live-looking-token",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_BASE_URL=slack.base_url,
            CRMBOT_LOG_FORMAT="json",
        )
        # The console's words for a person go to stdout; the log, to stderr.
        process = subprocess.Popen(
            [CRMBOT, "run", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until_healthy(process, port)
            body = command_body("customer C001", response_url=f"{slack.url}/respond/json")
            url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
            assert post(url, body, signed_headers("wrong-secret", body))[0] == 401
        finally:
            process.send_signal(signal.SIGTERM)
            _, output = process.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, output
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    refused = [r for r in records if "Invalid request signature" in r["message"]]
    assert refused and refused[0]["level"] == "WARNING"
    assert any(
        r["logger"].startswith("uvicorn") and "Shutting down" in r["message"] for r in records
    )
