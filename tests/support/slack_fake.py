"""A local fake of the Slack Web API for tests: a real HTTP server on 127.0.0.1, port 0.

Point a `slack_sdk.WebClient` (or a Bolt app) at `fake.base_url` and every call is answered
here: by default like Slack answers (`ok: true`, a fresh `ts`), or by responses a test
scripts per method — rate limits with Retry-After, 5xx, API errors, dropped connections,
a connection dropped *after* the message was accepted, slow answers.

    with SlackFake() as slack:
        slack.script("chat.postMessage", Reply(429, headers={"Retry-After": "1"}), Reply(500))
        client = WebClient(token="xoxb-test", base_url=slack.base_url)
        ...
        assert len(slack.messages("C123")) == 1

Every request is recorded (`slack.requests`, `slack.calls(method)`), so a test can also
scan everything that was posted, e.g. for PII. Paths outside /api/ (Bolt's `response_url`,
file upload URLs) are recorded and answered 200 "ok", unless a test scripts answers for
that path (`slack.script("/respond/3", Reply(429, headers={"Retry-After": "0"}))`).
users.info / users.lookupByEmail answer from `user_emails` and `user_names`,
conversations.list from `channels`, conversations.replies from the messages posted with
a `thread_ts`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

# Methods that store a message the fake can later return from conversations.history.
POSTING_METHODS = {"chat.postMessage", "chat.postEphemeral", "chat.update"}


@dataclass
class Reply:
    """A scripted answer to one call: an HTTP status, a JSON body, headers."""

    status: int = 200
    body: dict[str, Any] | None = None  # None: the default answer for the method
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (e.g. past the client's timeout)


@dataclass(frozen=True)
class Drop:
    """Close the connection without any answer.

    `accepted=True` first does what the call asks (a message is posted), then drops: the
    client cannot tell whether Slack acted on the request.
    """

    accepted: bool = False


DROP = Drop()
ACCEPT_THEN_DROP = Drop(accepted=True)


@dataclass
class Recorded:
    method: str  # "chat.postMessage", or the path for non-API requests
    path: str
    headers: dict[str, str]
    params: dict[str, Any]  # JSON body, form fields, or query parameters
    answered: int | str  # the status sent, or "dropped"
    at: float


class SlackFake:
    """A threaded HTTP server speaking enough of the Slack Web API for crmbot's tests."""

    def __init__(self, *, bot_user_id: str = "UBOT", team_id: str = "T0001") -> None:
        self.bot_user_id = bot_user_id
        self.team_id = team_id
        # What users.info answers as each user's email (unknown users: no email), and
        # their display name; users.lookupByEmail finds a user by that email.
        self.user_emails: dict[str, str] = {}
        self.user_names: dict[str, str] = {}
        # conversations.list: channel id -> name (the bot is a member of each).
        self.channels: dict[str, str] = {}
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Reply | Drop]] = defaultdict(deque)
        self._messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What `WebClient(base_url=...)` / SLACK_API_BASE_URL should be."""
        return f"{self.url}/api/"

    def start(self) -> SlackFake:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SlackFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and inspection ----------------------------------------------------

    def script(self, method: str, *answers: Reply | Drop) -> None:
        """Answer the next calls of `method` with `answers`, in order; then the default."""
        with self._lock:
            self._scripts[method].extend(answers)

    def fail_always(self, method: str, answer: Reply | Drop, times: int = 50) -> None:
        self.script(method, *([answer] * times))

    def calls(self, method: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages the fake accepted (posted), optionally in one channel."""
        with self._lock:
            if channel is not None:
                return list(self._messages.get(channel, []))
            return [m for msgs in self._messages.values() for m in msgs]

    def posted_text(self) -> str:
        """Everything any request carried, as one string (for PII scans)."""
        with self._lock:
            return "\n".join(json.dumps(r.params, default=str) for r in self.requests)

    # -- answering -------------------------------------------------------------------

    def _next_answer(self, method: str) -> Reply | Drop | None:
        with self._lock:
            queue = self._scripts.get(method)
            return queue.popleft() if queue else None

    def _new_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def _accept(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """What Slack does and answers for `method` when all goes well."""
        if method in POSTING_METHODS:
            channel = str(params.get("channel", ""))
            if channel.startswith(("U", "W")):
                channel = self._dm_channel(channel)
            ts = str(params.get("ts") or self._new_ts())
            message = {
                "type": "message",
                "user": self.bot_user_id,
                "bot_id": "B0001",
                "ts": ts,
                "text": params.get("text", ""),
                "blocks": _maybe_json(params.get("blocks")),
                "metadata": _maybe_json(params.get("metadata")),
            }
            if params.get("thread_ts"):
                message["thread_ts"] = str(params["thread_ts"])
            with self._lock:
                self._messages[channel].append(message)
            if method == "chat.postEphemeral":
                return {"ok": True, "message_ts": ts}
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "conversations.history":
            return self._history(params)
        if method == "conversations.replies":
            return self._replies(params)
        if method == "conversations.list":
            listed = [{"id": c, "name": n, "is_member": True} for c, n in self.channels.items()]
            return {"ok": True, "channels": listed, "response_metadata": {"next_cursor": ""}}
        if method == "users.lookupByEmail":
            wanted = str(params.get("email", "")).lower()
            for user, email in self.user_emails.items():
                if email.lower() == wanted:
                    return {"ok": True, "user": self._user(user)}
            return {"ok": False, "error": "users_not_found"}
        if method == "conversations.open":
            users = str(params.get("users", "")).split(",")[0]
            return {"ok": True, "channel": {"id": self._dm_channel(users)}}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://fake.slack.test/",
                "team": "Fake",
                "user": "crmbot",
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "bot_id": "B0001",
            }
        if method == "users.info":
            return {"ok": True, "user": self._user(str(params.get("user", "")))}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts)}"
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = _maybe_json(params.get("files")) or []
            uploaded = [{"id": f.get("id"), "title": f.get("title")} for f in files]
            return {"ok": True, "files": uploaded}
        if method == "views.publish":
            return {"ok": True, "view": {"id": "V0001", "type": "home"}}
        return {"ok": True}

    def _user(self, user: str) -> dict[str, Any]:
        name = self.user_names.get(user, "")
        profile = {"email": self.user_emails.get(user, ""), "display_name": name}
        return {"id": user, "name": user.lower(), "real_name": name, "profile": profile}

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent and the messages posted with its thread_ts."""
        channel, ts = str(params.get("channel", "")), str(params.get("ts", ""))
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [
                dict(m)
                for m in self._messages.get(channel, [])
                if m["ts"] == ts or m.get("thread_ts") == ts
            ]
        if not with_metadata:
            for message in found:
                message.pop("metadata", None)
        return {"ok": True, "messages": found, "has_more": False}

    @staticmethod
    def _dm_channel(user_id: str) -> str:
        return f"D{user_id[1:]}" if user_id else "D0"

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        with self._lock:
            found = [dict(m) for m in self._messages.get(channel, []) if float(m["ts"]) > oldest]
        if not with_metadata:
            for message in found:
                message.pop("metadata", None)
        return {"ok": True, "messages": list(reversed(found)), "has_more": False}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # tests read `fake.requests`, not stderr

            def do_GET(self) -> None:  # noqa: N802
                self._serve()

            def do_POST(self) -> None:  # noqa: N802
                self._serve()

            def _serve(self) -> None:
                parsed = urlparse(self.path)
                params: dict[str, Any] = {k: v[0] for k, v in parse_qs(parsed.query).items() if v}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parsed.path.startswith("/upload/"):
                    # A file's bytes (files_upload_v2 sends them with urllib's default
                    # form content type): kept whole, as `_raw`, for tests to read.
                    params["_raw"] = raw.decode("utf-8", errors="replace")
                else:
                    params.update(_parse_body(raw, self.headers.get("Content-Type", "")))
                api = parsed.path.startswith("/api/")
                method = parsed.path[len("/api/") :] if api else parsed.path
                # A response_url (any path outside /api/) may be scripted by its path.
                answer = fake._next_answer(method)
                record = Recorded(
                    method=method,
                    path=parsed.path,
                    headers=dict(self.headers.items()),
                    params=params,
                    answered="",
                    at=time.monotonic(),
                )
                with fake._lock:
                    fake.requests.append(record)
                if isinstance(answer, Drop):
                    if answer.accepted:
                        fake._accept(method, params)
                    record.answered = "dropped"
                    self.close_connection = True
                    # Close without a status line: the client sees RemoteDisconnected.
                    self.connection.shutdown(2)
                    return
                if answer is not None and answer.delay:
                    time.sleep(answer.delay)
                if not api and (answer is None or answer.status == 200):
                    record.answered = 200
                    self._send(200, b"ok", "text/plain", {})
                    return
                if answer is None or (answer.status == 200 and answer.body is None):
                    body = fake._accept(method, params)
                    status, headers = 200, (answer.headers if answer else {})
                else:
                    status, headers = answer.status, answer.headers
                    body = answer.body if answer.body is not None else _status_body(status)
                record.answered = status
                self._send(status, json.dumps(body).encode(), "application/json", headers)

            def _send(
                self, status: int, data: bytes, content_type: str, headers: dict[str, str]
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", f"{content_type}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _status_body(status: int) -> dict[str, Any]:
    if status == 429:
        return {"ok": False, "error": "ratelimited"}
    if status >= 500:
        return {"ok": False, "error": "internal_error"}
    return {"ok": False, "error": f"http_{status}"}


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            body = json.loads(text)
        except ValueError:
            return {"_raw": text}
        return body if isinstance(body, dict) else {"_json": body}
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(text).items()}
    return {"_raw": text}
