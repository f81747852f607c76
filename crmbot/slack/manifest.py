"""The Slack app manifest, generated from the command registry and settings.

`crmbot manifest` prints it; pasting it at https://api.slack.com/apps -> "Create New App"
-> "From a manifest" creates the app with the slash command, the App Home, interactivity
and the events crmbot listens to, and only the scopes it uses (each one says why below).
"""

from __future__ import annotations

from typing import Any

import yaml

from crmbot.chat.registry import Command, load_commands
from crmbot.core.config import Settings
from crmbot.reply.links import unfurl_domain
from crmbot.slack.acting import LOOKUP_SHORTCUT

# Every bot scope crmbot asks for, and why. Nothing else: no channel reading, no user
# tokens, no admin scopes.
BOT_SCOPES: dict[str, str] = {
    "commands": "the slash command and the 'Look up a customer' shortcut",
    "chat:write": "replies, ephemeral answers, digests, alerts and follow-up DMs",
    "app_mentions:read": "answering @crmbot in channels",
    "im:history": "answering direct messages (message.im events)",
    "im:write": "its DM with each user: charts, App Home answers, telling it from other DMs",
    "files:write": "uploading charts (segment sizes, order history)",
    "users:read": "account owners and the asker by name (users.info)",
    "users:read.email": "account owners recorded by email (users.lookupByEmail)",
    "channels:history": "a retry first looks for the digest or reply it would repeat",
    "groups:history": "the same check when a digest channel is private",
    "channels:read": "finding a channel typed as #name (/crm schedule channel)",
    "groups:read": "the same for a private channel the bot is in",
    "links:read": "seeing links to your CRM pasted where the bot is (link_shared)",
    "links:write": "unfurling them as a masked customer card (chat.unfurl)",
}
BOT_EVENTS = ["app_home_opened", "app_mention", "link_shared", "message.im"]
DESCRIPTION = "Customer value, churn risk and influence, answered in Slack."
LONG_DESCRIPTION = (
    "crmbot keeps your customers, orders, tickets, surveys and referrals in SQL, learns from "
    "them on a schedule (RFM segments, clusters, CLV, churn risk with reasons, "
    "satisfaction, influence, next best product) and answers account managers in Slack: "
    "/crm customer, /crm at-risk, /crm segment, /crm influencers and more. Replies are "
    "private by default; shared replies mask emails and phone numbers."
)
USAGE_HINT_MAX = 100
DESCRIPTION_MAX = 100


def usage_hint(commands: dict[str, Command]) -> str:
    """The hint under the slash command: the most used commands, within Slack's limit."""
    preferred = ["customer", "at-risk", "segment", "influencers", "help"]
    parts = [commands[name].usage for name in preferred if name in commands]
    hint = ""
    for part in parts:
        candidate = f"{hint} · {part}" if hint else part
        if len(candidate) > USAGE_HINT_MAX:
            break
        hint = candidate
    return hint or "help"


def build_manifest(
    settings: Settings,
    *,
    request_url: str | None = None,
    socket_mode: bool | None = None,
    name: str = "crmbot",
) -> dict[str, Any]:
    """The manifest as a dict. HTTP mode needs `request_url` (https://host/slack/events)."""
    if socket_mode is None:
        socket_mode = bool(settings.slack_app_token) or not request_url
    commands = load_commands()
    slash: dict[str, Any] = {
        "command": settings.slash_command,
        "description": "Ask crmbot about customers: customer, at-risk, segment, help"[
            :DESCRIPTION_MAX
        ],
        "usage_hint": usage_hint(commands),
        "should_escape": False,
    }
    event_subscriptions: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    # Links to the company's CRM unfurl as customer cards (CRMBOT_CUSTOMER_URL_TEMPLATE).
    domain = unfurl_domain(settings.customer_url_template)
    unfurl: dict[str, Any] = {"unfurl_domains": [domain]} if domain else {}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if not socket_mode:
        if not request_url:
            raise ValueError("HTTP mode needs the public request URL (…/slack/events)")
        slash["url"] = request_url
        event_subscriptions["request_url"] = request_url
        interactivity["request_url"] = request_url
    return {
        "display_information": {
            "name": name,
            "description": DESCRIPTION,
            "long_description": LONG_DESCRIPTION,
            "background_color": "#1d3557",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": name, "always_online": True},
            # From Slack's shortcut menu anywhere: opens the lookup form (crmbot.slack.acting).
            "shortcuts": [
                {
                    "name": "Look up a customer",
                    "type": "global",
                    "callback_id": LOOKUP_SHORTCUT,
                    "description": "Open a customer's card: churn risk, value, last touch",
                }
            ],
            "slash_commands": [slash],
            **unfurl,
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": event_subscriptions,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(
    settings: Settings,
    *,
    request_url: str | None = None,
    socket_mode: bool | None = None,
    name: str = "crmbot",
) -> str:
    """The manifest as YAML, with a comment per scope saying why crmbot needs it."""
    manifest = build_manifest(settings, request_url=request_url, socket_mode=socket_mode, name=name)
    text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        scope = stripped[2:] if stripped.startswith("- ") else None
        if scope in BOT_SCOPES:
            line = f"{line}  # {BOT_SCOPES[scope]}"
        lines.append(line)
    mode = (
        "Socket Mode (SLACK_APP_TOKEN)"
        if manifest["settings"]["socket_mode_enabled"]
        else (f"HTTP mode at {request_url}")
    )
    header = [
        "# crmbot's Slack app manifest — paste at https://api.slack.com/apps",
        "# -> Create New App -> From a manifest. Generated by `crmbot manifest`.",
        f"# Mode: {mode}.",
    ]
    return "\n".join(header + lines) + "\n"
