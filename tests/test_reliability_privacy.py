"""One working session — slash commands private and shared, a mention, a DM, a button, App
Home, a forged request, then the at-risk digest (with owner DMs) and the influencer
digest — through the real Bolt app against the local Slack fake, with every logger at
DEBUG. Afterwards everything Slack received that others can see, and every log record,
is scanned for emails, phone numbers and secrets.

tests/slack/test_slack_safety.py checks channel replies of commands and the logs of one lookup;
tests/test_digests.py checks digests' text. This is the sweep over all of it at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_bolt import BoltRequest
from slack_sdk import WebClient
from sqlmodel import SQLModel

from crmbot import digests
from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.core.privacy import EMAIL_PATTERN, PHONE_PATTERN, contains_pii
from crmbot.slack.app import build_app
from crmbot.slack.delivery import slack_poster
from tests.support.slack_fake import Recorded, SlackFake
from tests.support.slack_requests import action_body, command_body, event_body, signed_headers
from tests.support.small_crm import PEOPLE, TODAY, seed

SECRET = "test-signing-secret"
LLM_KEY = "sk-test-llm-key-0123456789abcdef"
LEGACY_TOKEN = "legacy-verification-token-value"  # what slack_requests puts in bodies
CUSTOMER_EMAILS = [person[2] for person in PEOPLE if person[2]]
CUSTOMER_PHONES = [person[3] for person in PEOPLE if person[3]]


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        fake.user_emails["UMARIA"] = "maria@crm.example"
        yield fake


def _public(recorded: Recorded) -> bool:
    """Whether people other than the asker can see what this request carried."""
    if recorded.path.startswith("/upload/"):
        return False  # PNG bytes; the file's title and channel go in files.complete...
    if recorded.path.startswith("/respond/"):
        return recorded.params.get("response_type") != "ephemeral"
    if recorded.method == "chat.postEphemeral":
        return False
    if recorded.method in ("chat.postMessage", "chat.update"):
        # A command answered in the asker's DM is theirs alone; channels are shared.
        return not str(recorded.params.get("channel", "")).startswith(("D", "U"))
    return recorded.method in ("files.completeUploadExternal", "views.publish")


def test_a_session_of_commands_and_digests_leaks_no_pii_and_no_secret(
    tmp_path: Path, settings: Settings, slack: SlackFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    seed(engine)
    session_settings = settings.model_copy(
        update={
            "slack_api_base_url": slack.base_url,
            "llm_api_key": LLM_KEY,
            "at_risk_channel": "CRISK",
            "influencer_channel": "CINFL",
            "digest_dm_owners": True,
            "digest_size": 10,
        }
    )
    client = WebClient(token=session_settings.slack_bot_token, base_url=slack.base_url)
    app = build_app(session_settings, engine, client=client, today=lambda: TODAY)
    answers: list[str] = []

    def dispatch(body: str, secret: str = SECRET, json_body: bool = False) -> int:
        kind = "application/json" if json_body else "application/x-www-form-urlencoded"
        headers = signed_headers(secret, body, content_type=kind)
        return app.dispatch(BoltRequest(body=body, headers=headers)).status

    def command(text: str, user: str = "UAM1") -> None:
        path = f"/respond/{len(answers) + 1}"
        answers.append(path)
        assert dispatch(command_body(text, user_id=user, response_url=f"{slack.url}{path}")) == 200

    # -- the account manager's day ------------------------------------------------------
    for text in [
        "customer ada@analytical.example",
        "customer C002",
        "why C003",
        "similar C001",
        "history C001",
        "at-risk",
        "segment",
        "influencers",
        "model",
        "customer C001 --share",
        "why C002 --share",
        "at-risk --share",
        "similar C003 --share",
        "history C003 --share",
        "influencers --share",
        "customer grace --share",
    ]:
        command(text)
    command("audit", user="UADMIN")
    command("customer alan@bletchley.example", user="UMARIA")
    for n, text in enumerate(["<@UBOT> customer grace --share", "<@UBOT> customer grace"]):
        event = {"type": "app_mention", "user": "UAM1", "channel": "C0CRM", "text": text}
        assert dispatch(event_body({**event, "ts": f"5.00000{n}"}), json_body=True) == 200
    direct = {
        "type": "message",
        "channel_type": "im",
        "user": "UAM1",
        "channel": "DAM1",
        "text": "customer C004",
        "ts": "6.000001",
    }
    assert dispatch(event_body(direct), json_body=True) == 200
    click = action_body("crm_why", "C002", response_url=f"{slack.url}/respond/click")
    answers.append("/respond/click")
    assert dispatch(click) == 200
    home = {"type": "app_home_opened", "user": "UMARIA", "channel": "DMARIA", "tab": "home"}
    assert dispatch(event_body(home), json_body=True) == 200
    # A forged request carrying an email: Bolt logs the rejection (scrubbed), runs nothing.
    forged = command_body("customer kj@orbit.example", response_url=f"{slack.url}/respond/x")
    assert dispatch(forged, secret="wrong-secret") == 401

    # Three answers carry a chart (history twice, segment): uploaded after the answer.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = {r.path for r in list(slack.requests)}
        if (
            set(answers) <= seen
            and slack.calls("views.publish")
            and len(slack.calls("files.completeUploadExternal")) >= 3
        ):
            break
        time.sleep(0.05)
    assert set(answers) <= {r.path for r in slack.requests}
    assert len(slack.calls("files.completeUploadExternal")) >= 3
    time.sleep(0.3)

    # -- the scheduled digests -----------------------------------------------------------
    poster = slack_poster(engine, session_settings, timeout=5)
    for kind, channel in ((digests.AT_RISK, "CRISK"), (digests.INFLUENCERS, "CINFL")):
        outcome = digests.send_digest(engine, session_settings, poster, kind, channel)
        assert outcome.ok, outcome.describe()
    assert slack.messages("CRISK") and slack.messages("CINFL")
    owner_dms = [
        r for r in slack.calls("chat.postMessage") if str(r.params.get("channel")).startswith("U")
    ]
    assert owner_dms, "no owner received the at-risk digest by DM"

    # -- the sweep -----------------------------------------------------------------------
    recorded = list(slack.requests)
    public = [r for r in recorded if _public(r)] + owner_dms
    assert len(public) >= 12
    for request in public:
        text = json.dumps(request.params, ensure_ascii=False)
        assert not contains_pii(text), (request.method, request.path, text[:400])
        for value in CUSTOMER_EMAILS + CUSTOMER_PHONES:
            assert value not in text, (request.method, value)
    # Not a blind sweep: the private answers did carry the customers' emails and phones.
    private = "\n".join(json.dumps(r.params) for r in recorded if not _public(r))
    assert EMAIL_PATTERN.search(private) and PHONE_PATTERN.search(private)

    records = caplog.records
    assert any(r.name.startswith("slack_sdk") and r.levelno == logging.DEBUG for r in records)
    assert any("Invalid request signature" in r.getMessage() for r in records)
    logged = (
        "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records) + caplog.text
    )
    assert not EMAIL_PATTERN.search(logged), EMAIL_PATTERN.search(logged)
    for value in CUSTOMER_PHONES:
        assert value not in logged, value
    for secret in (
        SECRET,
        session_settings.slack_bot_token,
        LLM_KEY,
        LEGACY_TOKEN,
    ):
        assert secret not in logged, f"a secret reached the logs: {secret[:6]}…"
    engine.dispose()
