"""The Slack app manifest: generated from the registry, valid YAML, least privilege — every
Web API method the bot calls is covered by a scope it asks for, and nothing else is asked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from slack_bolt import BoltRequest
from slack_sdk import WebClient
from sqlmodel import SQLModel

from crmbot.core.config import Settings
from crmbot.core.db import make_engine
from crmbot.slack.acting import LOOKUP_SHORTCUT
from crmbot.slack.app import build_app
from crmbot.slack.manifest import BOT_EVENTS, BOT_SCOPES, build_manifest, manifest_yaml
from tests.support.slack_fake import SlackFake
from tests.support.slack_requests import (
    action_body,
    command_body,
    event_body,
    shortcut_body,
    signed_headers,
)
from tests.support.small_crm import seed

# The scope each Web API method needs (Slack's method reference). None: no scope needed.
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "views.publish": None,
    "views.open": None,
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "conversations.open": "im:write",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "conversations.list": "channels:read",
    "chat.unfurl": "links:write",
}
# Scopes no Web API method needs but Slack requires for a feature.
FEATURE_SCOPES = {
    "commands": "slash commands",
    "app_mentions:read": "app_mention events",
    "im:history": "message.im events",
    "users:read.email": "the email in users.info",
    "groups:history": "conversations.history in private channels",
    "groups:read": "conversations.list of private channels",
    "links:read": "link_shared events",
}


def test_socket_mode_manifest(settings: Settings) -> None:
    manifest = yaml.safe_load(manifest_yaml(settings))
    assert manifest["settings"]["socket_mode_enabled"] is True
    slash = manifest["features"]["slash_commands"][0]
    assert slash["command"] == settings.slash_command and "url" not in slash
    assert len(slash["usage_hint"]) <= 100 and "customer" in slash["usage_hint"]
    assert manifest["settings"]["event_subscriptions"] == {"bot_events": BOT_EVENTS}
    assert manifest["settings"]["interactivity"] == {"is_enabled": True}
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)
    assert "user" not in manifest["oauth_config"]["scopes"]  # no user token
    assert manifest["features"]["shortcuts"] == [
        {
            "name": "Look up a customer",
            "type": "global",
            "callback_id": LOOKUP_SHORTCUT,
            "description": "Open a customer's card: churn risk, value, last touch",
        }
    ]


def test_http_mode_manifest_points_every_request_at_one_url(settings: Settings) -> None:
    url = "https://crm.example.com/slack/events"
    manifest = build_manifest(settings, request_url=url, socket_mode=False)
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["features"]["slash_commands"][0]["url"] == url
    assert manifest["settings"]["event_subscriptions"]["request_url"] == url
    assert manifest["settings"]["interactivity"]["request_url"] == url
    with pytest.raises(ValueError):
        build_manifest(settings, socket_mode=False)


def test_a_custom_slash_command_name_is_used(settings: Settings) -> None:
    settings.slash_command = "/customers"
    manifest = yaml.safe_load(manifest_yaml(settings))
    assert manifest["features"]["slash_commands"][0]["command"] == "/customers"


def test_each_scope_says_why_and_is_needed(settings: Settings) -> None:
    text = manifest_yaml(settings)
    for scope, reason in BOT_SCOPES.items():
        assert f"- {scope}  # {reason}" in text
        needed_by_a_method = scope in METHOD_SCOPES.values()
        assert needed_by_a_method or scope in FEATURE_SCOPES, f"{scope} is not needed"


def test_every_api_method_the_bot_calls_is_covered(settings: Settings, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    SQLModel.metadata.create_all(engine)
    seed(engine)
    secret = settings.slack_signing_secret
    settings = settings.model_copy(
        update={"customer_url_template": "https://crm.example.com/customers/{id}"}
    )
    with SlackFake() as slack:
        client = WebClient(token=settings.slack_bot_token, base_url=slack.base_url)
        app = build_app(settings, engine, client=client)

        def send(body: str, content_type: str = "application/x-www-form-urlencoded") -> None:
            headers = signed_headers(secret, body, content_type=content_type)
            assert app.dispatch(BoltRequest(body=body, headers=headers)).status == 200

        respond = f"{slack.url}/respond/1"
        for text in ["customer C001", "segment --share", "history C001", "at-risk mine"]:
            send(command_body(text, response_url=respond))
        send(
            event_body(
                {
                    "type": "app_mention",
                    "user": "UAM1",
                    "channel": "C1",
                    "text": "<@UBOT> model",
                    "ts": "1.1",
                }
            ),
            "application/json",
        )
        send(
            event_body(
                {
                    "type": "message",
                    "channel_type": "im",
                    "user": "UAM1",
                    "channel": "D1",
                    "text": "help",
                    "ts": "1.2",
                }
            ),
            "application/json",
        )
        send(
            event_body({"type": "app_home_opened", "user": "UAM1", "tab": "home"}),
            "application/json",
        )
        send(action_body("crm_why", "C002", channel_id=None))
        # A channel typed by name, an owner known by email, a pasted link to the CRM.
        send(
            command_body("schedule channel at-risk #sales", user_id="UADMIN", response_url=respond)
        )
        send(command_body("customer C003", response_url=respond))
        send(
            event_body(
                {
                    "type": "link_shared",
                    "user": "UAM1",
                    "channel": "C1",
                    "message_ts": "1.3",
                    "links": [
                        {
                            "url": "https://crm.example.com/customers/C001",
                            "domain": "crm.example.com",
                        }
                    ],
                }
            ),
            "application/json",
        )
        send(shortcut_body(LOOKUP_SHORTCUT))
        deadline = time.monotonic() + 10
        wanted = {
            "views.publish",
            "files.completeUploadExternal",
            "chat.postEphemeral",
            "views.open",
            "chat.unfurl",
            "conversations.list",
            "users.lookupByEmail",
        }
        while not wanted <= {r.method for r in slack.requests}:
            assert time.monotonic() < deadline, [r.method for r in slack.requests]
            time.sleep(0.02)
        time.sleep(0.3)
        called = {r.method for r in slack.requests if r.path.startswith("/api/")}
    engine.dispose()
    granted = set(BOT_SCOPES)
    for method in called:
        assert method in METHOD_SCOPES, f"the bot calls {method}; add its scope"
        scope = METHOD_SCOPES[method]
        assert scope is None or scope in granted, f"{method} needs {scope}"


def test_the_manifest_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from crmbot.cli.main import app
    from crmbot.core.config import get_settings

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("CRMBOT_SLASH_COMMAND", "/crm")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        socket = runner.invoke(app, ["manifest"])
        http = runner.invoke(app, ["manifest", "--url", "https://crm.example.com"])
        plain = runner.invoke(app, ["manifest", "--url", "http://crm.example.com"])
    finally:
        get_settings.cache_clear()
    assert socket.exit_code == 0, socket.output
    assert yaml.safe_load(socket.stdout)["settings"]["socket_mode_enabled"] is True
    assert http.exit_code == 0, http.output
    document = yaml.safe_load(http.stdout)
    assert document["settings"]["interactivity"]["request_url"] == (
        "https://crm.example.com/slack/events"
    )
    assert plain.exit_code == 1 and "https://" in plain.output
    json.dumps(document)  # plain data all the way down
