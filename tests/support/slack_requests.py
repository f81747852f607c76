"""Build the HTTP requests Slack sends — slash commands, events, button clicks — signed
with a signing secret exactly as Slack signs them (v0 HMAC-SHA256 over
`v0:{timestamp}:{body}`), for tests that drive the real Bolt app or the HTTP server.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

TEAM_ID = "T0001"
_ids = itertools.count(1)


def signed_headers(
    secret: str,
    body: str,
    *,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature or "",
    }
    headers.update(extra or {})
    return headers


def command_body(
    text: str,
    *,
    user_id: str = "UAM1",
    channel_id: str = "C0CRM",
    response_url: str,
    command: str = "/crm",
    trigger_id: str | None = None,
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token-value",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": "crm",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0001",
            "response_url": response_url,
            "trigger_id": trigger_id or f"{next(_ids)}.{TEAM_ID}.trigger",
        }
    )


def event_body(event: dict[str, Any], *, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "token": "legacy-verification-token-value",
            "team_id": TEAM_ID,
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(_ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": "UBOT", "is_bot": True}],
        }
    )


def action_body(
    action_id: str,
    value: str,
    *,
    user_id: str = "UAM1",
    channel_id: str | None = "C0CRM",
    response_url: str | None = None,
    trigger_id: str | None = None,
    message_ts: str | None = None,
    thread_ts: str | None = None,
    reply_count: int = 0,
) -> str:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user_id, "team_id": TEAM_ID},
        "api_app_id": "A0001",
        "token": "legacy-verification-token-value",
        "trigger_id": trigger_id or f"{next(_ids)}.{TEAM_ID}.trigger",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if channel_id is not None:
        payload["channel"] = {"id": channel_id, "name": "crm"}
        payload["container"] = {"type": "message", "channel_id": channel_id}
        if message_ts is not None:
            payload["container"]["message_ts"] = message_ts
            payload["message"] = {"type": "message", "ts": message_ts}
            if reply_count:
                payload["message"].update(thread_ts=message_ts, reply_count=reply_count)
        if thread_ts is not None:  # the message is itself a reply in a thread
            payload["container"]["thread_ts"] = thread_ts
            payload.setdefault("message", {"type": "message"})["thread_ts"] = thread_ts
    else:
        payload["container"] = {"type": "view", "view_id": "V0001"}
        payload["view"] = {"id": "V0001", "type": "home"}
    if response_url is not None:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    view: dict[str, Any], values: dict[str, dict[str, Any]], *, user_id: str = "UAM1"
) -> str:
    """A modal's submission: `view` as views.open sent it (callback id, private metadata)
    with an id, and `values` as Slack reports them, by block id (each element's action id
    is "value"), e.g. {"kind": {"type": "static_select", "selected_option": {"value": "call"}}}."""
    submitted = {
        "id": view.get("id") or f"V{next(_ids):06d}",
        "type": "modal",
        "callback_id": view.get("callback_id"),
        "private_metadata": view.get("private_metadata", ""),
        "state": {"values": {block: {"value": element} for block, element in values.items()}},
        "hash": f"{next(_ids)}.hash",
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user_id, "team_id": TEAM_ID},
        "api_app_id": "A0001",
        "token": "legacy-verification-token-value",
        "trigger_id": f"{next(_ids)}.{TEAM_ID}.trigger",
        "view": submitted,
    }
    return urlencode({"payload": json.dumps(payload)})


def shortcut_body(callback_id: str, *, user_id: str = "UAM1") -> str:
    """A global shortcut, as Slack sends it when someone picks it from the shortcut menu."""
    payload = {
        "type": "shortcut",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "user": {"id": user_id, "team_id": TEAM_ID},
        "api_app_id": "A0001",
        "token": "legacy-verification-token-value",
        "callback_id": callback_id,
        "trigger_id": f"{next(_ids)}.{TEAM_ID}.trigger",
        "action_ts": f"{time.time():.6f}",
    }
    return urlencode({"payload": json.dumps(payload)})
