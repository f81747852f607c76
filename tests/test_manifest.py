"""The Slack app manifest: generated from the registry, valid YAML, least privilege — every
Web API method the bot calls is covered by a scope it asks for, and nothing else is asked."""

from __future__ import annotations

import json
import re
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


# -- Slack's manifest rules -----------------------------------------------------------------
#
# The documented constraints of Slack's app manifest, as data: the manifest reference
# (https://docs.slack.dev/reference/app-manifest, formerly
# https://api.slack.com/reference/manifests) and the schema Slack publishes beside it
# (https://github.com/slackapi/manifest-schema). No package ships that schema, so the rules
# crmbot's manifest touches are written out here and `manifest_problems` checks them. A
# path is dotted; `[]` means every item of a list.

# The keys each object may hold (Slack rejects any other); "" is the top level.
MANIFEST_KEYS: dict[str, set[str]] = {
    "": {"_metadata", "display_information", "features", "oauth_config", "settings"},
    "display_information": {"name", "description", "long_description", "background_color"},
    "features": {
        "app_home",
        "bot_user",
        "shortcuts",
        "slash_commands",
        "unfurl_domains",
        "workflow_steps",
        "assistant_view",
    },
    "features.app_home": {
        "home_tab_enabled",
        "messages_tab_enabled",
        "messages_tab_read_only_enabled",
    },
    "features.bot_user": {"display_name", "always_online"},
    "features.shortcuts[]": {"name", "type", "callback_id", "description"},
    "features.slash_commands[]": {"command", "url", "description", "usage_hint", "should_escape"},
    "oauth_config": {"redirect_urls", "scopes", "token_management_enabled", "pkce_enabled"},
    "oauth_config.scopes": {"bot", "user", "bot_optional", "user_optional"},
    "settings": {
        "allowed_ip_address_ranges",
        "event_subscriptions",
        "incoming_webhooks",
        "interactivity",
        "org_deploy_enabled",
        "socket_mode_enabled",
        "token_rotation_enabled",
        "is_hosted",
        "function_runtime",
    },
    "settings.event_subscriptions": {
        "request_url",
        "bot_events",
        "user_events",
        "metadata_subscriptions",
    },
    "settings.interactivity": {"is_enabled", "request_url", "message_menu_options_url"},
}
# The keys an object must have, when the object is there.
MANIFEST_REQUIRED: dict[str, set[str]] = {
    "": {"display_information"},
    "display_information": {"name"},
    "features.bot_user": {"display_name"},
    "features.shortcuts[]": {"name", "type", "callback_id", "description"},
    "features.slash_commands[]": {"command", "description"},
    "settings.interactivity": {"is_enabled"},
}
# Text lengths, (least, most) characters.
MANIFEST_LENGTHS: dict[str, tuple[int, int]] = {
    "display_information.name": (1, 35),
    "display_information.description": (1, 140),
    "display_information.long_description": (175, 4000),
    "display_information.background_color": (4, 7),
    "features.bot_user.display_name": (1, 80),
    "features.shortcuts[].name": (1, 24),
    "features.shortcuts[].callback_id": (1, 255),
    "features.shortcuts[].description": (1, 150),
    "features.slash_commands[].command": (2, 32),
    "features.slash_commands[].description": (1, 2000),
    "features.slash_commands[].usage_hint": (1, 1000),
    "features.slash_commands[].url": (1, 3000),
    "features.unfurl_domains[]": (1, 255),
    "oauth_config.scopes.bot[]": (1, 50),
    "settings.event_subscriptions.bot_events[]": (1, 50),
    "settings.event_subscriptions.request_url": (1, 3500),
    "settings.interactivity.request_url": (1, 3500),
}
# Patterns a text must match.
MANIFEST_PATTERNS: dict[str, str] = {
    "display_information.background_color": r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?",
    "features.slash_commands[].command": r"/\S+",
    "features.slash_commands[].url": r"https?://\S+",
    "features.unfurl_domains[]": r"(?![.-])[-a-z0-9.]+[a-z0-9]",
    "settings.event_subscriptions.request_url": r"https?://\S+",
    "settings.interactivity.request_url": r"https?://\S+",
}
# Lists: (least, most) items, and whether they must be unique.
MANIFEST_LISTS: dict[str, tuple[int, int]] = {
    "features.shortcuts": (1, 10),
    "features.slash_commands": (1, 50),
    "features.unfurl_domains": (1, 5),
    "oauth_config.scopes.bot": (0, 255),
    "settings.event_subscriptions.bot_events": (0, 100),
}
MANIFEST_CHOICES: dict[str, set[object]] = {
    "features.shortcuts[].type": {"global", "message"},
    **{
        path: {True, False}
        for path in (
            "features.app_home.home_tab_enabled",
            "features.app_home.messages_tab_enabled",
            "features.app_home.messages_tab_read_only_enabled",
            "features.bot_user.always_online",
            "features.slash_commands[].should_escape",
            "settings.interactivity.is_enabled",
            "settings.org_deploy_enabled",
            "settings.socket_mode_enabled",
            "settings.token_rotation_enabled",
        )
    },
}
# Slack's bot token scopes (https://docs.slack.dev/reference/scopes), the ones a
# manifest's oauth_config.scopes.bot may name.
SLACK_BOT_SCOPES = frozenset(
    {
        "app_mentions:read",
        "assistant:write",
        "bookmarks:read",
        "bookmarks:write",
        "calls:read",
        "calls:write",
        "canvases:read",
        "canvases:write",
        "channels:history",
        "channels:join",
        "channels:manage",
        "channels:read",
        "channels:write.invites",
        "channels:write.topic",
        "chat:write",
        "chat:write.customize",
        "chat:write.public",
        "commands",
        "conversations.connect:manage",
        "conversations.connect:read",
        "conversations.connect:write",
        "dnd:read",
        "emoji:read",
        "files:read",
        "files:write",
        "groups:history",
        "groups:read",
        "groups:write",
        "groups:write.invites",
        "groups:write.topic",
        "im:history",
        "im:read",
        "im:write",
        "im:write.topic",
        "incoming-webhook",
        "links.embed:write",
        "links:read",
        "links:write",
        "metadata.message:read",
        "mpim:history",
        "mpim:read",
        "mpim:write",
        "mpim:write.topic",
        "pins:read",
        "pins:write",
        "reactions:read",
        "reactions:write",
        "reminders:read",
        "reminders:write",
        "remote_files:read",
        "remote_files:share",
        "remote_files:write",
        "team.billing:read",
        "team.preferences:read",
        "team:read",
        "usergroups:read",
        "usergroups:write",
        "users.profile:read",
        "users:read",
        "users:read.email",
        "users:write",
        "workflow.steps:execute",
    }
)
# Slack's Events API event types a bot may subscribe to (https://docs.slack.dev/reference/events),
# each with the scope Slack requires for it (None: none).
SLACK_BOT_EVENTS: dict[str, str | None] = {
    "app_home_opened": None,
    "app_mention": "app_mentions:read",
    "app_uninstalled": None,
    "assistant_thread_started": "assistant:write",
    "channel_created": "channels:read",
    "channel_rename": "channels:read",
    "emoji_changed": "emoji:read",
    "file_shared": "files:read",
    "link_shared": "links:read",
    "member_joined_channel": "channels:read",
    "message.app_home": None,
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "reaction_added": "reactions:read",
    "team_join": "users:read",
    "tokens_revoked": None,
    "user_change": "users:read",
}


def _at(document: object, path: str) -> list[object]:
    """Every value at a dotted `path` of the manifest; `[]` steps into each list item."""
    found: list[object] = [document]
    for step in [s for s in path.split(".") if s]:
        each = step.endswith("[]")
        key = step.removesuffix("[]")
        found = [d[key] for d in found if isinstance(d, dict) and key in d]
        if each:
            found = [item for value in found if isinstance(value, list) for item in value]
    return found


def manifest_problems(manifest: dict[str, object]) -> list[str]:
    """What in `manifest` breaks Slack's documented rules, one line each; [] when none."""
    problems: list[str] = []
    for path, allowed in MANIFEST_KEYS.items():
        for value in _at(manifest, path):
            if isinstance(value, dict):
                problems += [
                    f"{path or 'top level'}: unknown key {k!r}" for k in value if k not in allowed
                ]
    for path, required in MANIFEST_REQUIRED.items():
        for value in _at(manifest, path):
            missing = required - set(value) if isinstance(value, dict) else required
            problems += [f"{path or 'top level'}: {k!r} is required" for k in sorted(missing)]
    for path, (least, most) in MANIFEST_LENGTHS.items():
        for value in _at(manifest, path):
            if not isinstance(value, str) or not least <= len(value) <= most:
                problems.append(f"{path}: {value!r} must be text of {least} to {most} characters")
    for path, pattern in MANIFEST_PATTERNS.items():
        problems += [
            f"{path}: {value!r} does not match {pattern}"
            for value in _at(manifest, path)
            if not isinstance(value, str) or re.fullmatch(pattern, value) is None
        ]
    for path, (least, most) in MANIFEST_LISTS.items():
        for value in _at(manifest, path):
            if not isinstance(value, list) or not least <= len(value) <= most:
                problems.append(f"{path}: must be a list of {least} to {most} items")
            elif len({json.dumps(v) for v in value}) != len(value):
                problems.append(f"{path}: items must be unique")
    for path, choices in MANIFEST_CHOICES.items():
        problems += [
            f"{path}: {value!r} is not one of {sorted(map(str, choices))}"
            for value in _at(manifest, path)
            if not any(value is c or (type(value) is type(c) and value == c) for c in choices)
        ]
    scopes = set(map(str, _at(manifest, "oauth_config.scopes.bot[]")))
    problems += [f"scope {s!r} is not a Slack bot scope" for s in sorted(scopes - SLACK_BOT_SCOPES)]
    for event in map(str, _at(manifest, "settings.event_subscriptions.bot_events[]")):
        if event not in SLACK_BOT_EVENTS:
            problems.append(f"bot event {event!r} is not a Slack event")
        elif (needed := SLACK_BOT_EVENTS[event]) is not None and needed not in scopes:
            problems.append(f"bot event {event!r} needs the {needed} scope")
    features = _at(manifest, "features")
    if (_at(manifest, "features.slash_commands[]") or _at(manifest, "features.shortcuts[]")) and (
        "commands" not in scopes
    ):
        problems.append("slash commands and shortcuts need the commands scope")
    if _at(manifest, "features.shortcuts[]") and True not in _at(
        manifest, "settings.interactivity.is_enabled"
    ):
        problems.append("shortcuts need settings.interactivity.is_enabled")
    if scopes and features and not _at(manifest, "features.bot_user"):
        problems.append("bot scopes need features.bot_user")
    # Socket Mode receives everything over its WebSocket: no request URLs. Without it,
    # Slack needs a URL for each thing it sends: events, interactivity, each command.
    socket = True in _at(manifest, "settings.socket_mode_enabled")
    urls = {
        "settings.event_subscriptions.request_url": bool(
            _at(manifest, "settings.event_subscriptions.bot_events[]")
        ),
        "settings.interactivity.request_url": True
        in _at(manifest, "settings.interactivity.is_enabled"),
        "features.slash_commands[].url": False,
    }
    for path, wanted in urls.items():
        present = _at(manifest, path)
        if socket and present:
            problems.append(f"{path}: Socket Mode takes no request URL")
        if not socket and wanted and not present:
            problems.append(f"{path}: needed without Socket Mode")
    if not socket:
        commands = _at(manifest, "features.slash_commands[]")
        problems += [
            f"slash command {c.get('command')!r} needs a url without Socket Mode"
            for c in commands
            if isinstance(c, dict) and "url" not in c
        ]
    return problems


HTTP_URL = "https://crm.example.com/slack/events"


@pytest.mark.parametrize("mode", ["socket", "http", "socket with unfurls", "http with unfurls"])
def test_the_manifest_keeps_slacks_manifest_rules(settings: Settings, mode: str) -> None:
    if "unfurls" in mode:
        settings = settings.model_copy(
            update={"customer_url_template": "https://crm.example.com/customers/{id}"}
        )
    http = mode.startswith("http")
    manifest = yaml.safe_load(
        manifest_yaml(settings, request_url=HTTP_URL if http else None, socket_mode=not http)
    )
    assert manifest_problems(manifest) == []
    assert ("unfurl_domains" in manifest["features"]) == ("unfurls" in mode)


def _broken(manifest: dict, path: str, value: object) -> dict:
    """A deep copy of `manifest` with `value` at the dotted `path` (`[0]` for a list item);
    `DELETE` removes the key."""
    document = json.loads(json.dumps(manifest))
    *parents, last = path.split(".")
    node = document
    for step in parents:
        node = node[int(step[1:-1])] if step.startswith("[") else node[step]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return document


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("display_information.name", "c" * 36, "1 to 35 characters"),
        ("display_information.description", "d" * 141, "1 to 140 characters"),
        ("display_information.background_color", "navy", "does not match"),
        ("display_information", DELETE, "'display_information' is required"),
        ("features.bot_user.display_name", "b" * 81, "1 to 80 characters"),
        ("features.slash_commands.[0].command", "crm", "does not match"),
        ("features.slash_commands.[0].command", "/" + "c" * 32, "2 to 32 characters"),
        ("features.slash_commands.[0].usage_hint", "u" * 1001, "1 to 1000 characters"),
        ("features.slash_commands.[0].description", "", "1 to 2000 characters"),
        ("features.shortcuts.[0].name", "Look up a customer, fast", None),  # 24: fine
        ("features.shortcuts.[0].name", "Look up a customer, quick", "1 to 24 characters"),
        ("features.shortcuts.[0].callback_id", "x" * 256, "1 to 255 characters"),
        ("features.shortcuts.[0].description", "x" * 151, "1 to 150 characters"),
        ("features.shortcuts.[0].type", "everywhere", "is not one of"),
        ("features.shortcuts.[0].callback_id", DELETE, "'callback_id' is required"),
        ("features.unfurl_domains", [f"crm{i}.example.com" for i in range(6)], "1 to 5 items"),
        ("features.unfurl_domains", ["https://crm.example.com"], "does not match"),
        ("features.unfurl_domains", ["crm.example.com", "crm.example.com"], "unique"),
        ("features.app_home.home_tab_enabled", "yes", "is not one of"),
        ("oauth_config.scopes.bot", [*BOT_SCOPES, "customers:read"], "not a Slack bot scope"),
        ("oauth_config.scopes.bot", ["chat:write", "commands"], "needs the app_mentions:read"),
        ("oauth_config.scopes.bot", ["chat:write"], "need the commands scope"),
        ("settings.event_subscriptions.bot_events", [*BOT_EVENTS, "deal_won"], "not a Slack"),
        ("settings.interactivity.is_enabled", False, "need settings.interactivity"),
        ("settings.interactivity.request_url", HTTP_URL, "Socket Mode takes no request URL"),
        ("settings.colour", "blue", "unknown key 'colour'"),
        ("features.bot_user", DELETE, "bot scopes need features.bot_user"),
        ("icons", {"image_64": "x.png"}, "top level: unknown key 'icons'"),
    ],
)
def test_each_manifest_rule_catches_what_breaks_it(
    settings: Settings, path: str, value: object, problem: str | None
) -> None:
    settings = settings.model_copy(
        update={"customer_url_template": "https://crm.example.com/customers/{id}"}
    )
    manifest = build_manifest(settings, socket_mode=True)
    found = manifest_problems(_broken(manifest, path, value))
    if problem is None:
        assert found == []
    else:
        assert any(problem in line for line in found), found


def test_http_mode_without_request_urls_breaks_the_rules(settings: Settings) -> None:
    manifest = build_manifest(settings, request_url=HTTP_URL, socket_mode=False)
    for path in (
        "settings.event_subscriptions.request_url",
        "settings.interactivity.request_url",
        "features.slash_commands.[0].url",
    ):
        found = manifest_problems(_broken(manifest, path, DELETE))
        assert any("without Socket Mode" in line for line in found), (path, found)
    assert manifest_problems(_broken(manifest, "features.slash_commands.[0].url", "ftp://x")) != []
