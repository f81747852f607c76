"""Serving the Bolt app: HTTP (Bolt's ASGI adapter under uvicorn) or Socket Mode.

HTTP mode answers Slack at `POST /slack/events` (slash commands, events and interactivity
all use that one URL), `GET /healthz` for load balancers and `GET /metrics` for Prometheus
(`crmbot.core.metrics`). Bolt's ASGI handler calls the synchronous `App.dispatch` on the
event loop; here it runs on a worker thread instead, so one request verifying its
signature never holds up another.

`/healthz` answers within a second whatever the database does: one probe at a time reads
the live run on a thread of its own, and a probe that has not answered in
`HEALTH_WAIT_SECONDS` is reported as `"database": "degraded"` (200: the replica still
acknowledges and answers, if only "that took too long"); a database that refuses the
connection is `"unreachable"` (503).

Nothing parses a body Slack did not sign: the size is bounded while it is read (413), the
signature and its timestamp are checked next (401), and only then does Bolt parse it (a
signed body that is not what Slack sends: 400). Each refusal is a short text answer and
one warning line in the log, never a traceback.

Socket Mode (SLACK_APP_TOKEN set) opens an outgoing WebSocket to Slack: no public URL and
no signing secret needed, the same app and listeners.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import uvicorn
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.adapter.asgi import SlackRequestHandler
from slack_bolt.adapter.asgi.http_request import AsgiHttpRequest
from slack_bolt.adapter.asgi.http_response import AsgiHttpResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.core import metrics
from crmbot.core.models import ActiveRun, ModelRun
from crmbot.core.timeouts import StatementTimeout, statement_deadline

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# How long /healthz waits for the database before answering "degraded"; the probe itself
# gives up a little later (its statement timeout), so one probe never outlives the next.
HEALTH_WAIT_SECONDS = 0.8
PROBE_TIMEOUT_SECONDS = 2.0
# Slack's payloads are a few kilobytes; anything far larger is not from Slack.
MAX_BODY_BYTES = 1_000_000
DISPATCH_THREADS = 32
# Slack signs `v0:{timestamp}:{body}`; a request older than this is refused (a replay).
MAX_SIGNATURE_AGE_SECONDS = 5 * 60
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class _Refused(Exception):
    """A request answered before Bolt sees it: `status`, and why (for the log)."""

    def __init__(self, status: int, answer: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.answer = answer
        self.reason = reason


class CrmbotRequestHandler(SlackRequestHandler):
    """Bolt's ASGI handler, dispatching on a thread pool, with a health check, a body size
    limit and the signature checked before anything parses the body.

    `signing_secret` defaults to the one the Bolt app was built with; without one every
    request to the events path is refused (401).
    """

    def __init__(
        self,
        app: App,
        engine: Engine | None = None,
        path: str = EVENTS_PATH,
        *,
        signing_secret: str | None = None,
    ) -> None:
        super().__init__(app, path=path)
        self.engine = engine
        secret = _app_signing_secret(app) if signing_secret is None else signing_secret
        self.verifier = SignatureVerifier(secret) if secret.strip() else None
        if self.verifier is None:
            log.warning("no Slack signing secret: every request to %s will be refused", path)
        self.executor = ThreadPoolExecutor(
            max_workers=DISPATCH_THREADS, thread_name_prefix="crmbot-http"
        )
        self.probe = DatabaseProbe(engine) if engine is not None else None

    async def dispatch(self, request: AsgiHttpRequest) -> BoltResponse:
        arrived = time.perf_counter()
        headers = request.get_headers()
        body = self._verify(await _read_body(request), headers)
        try:
            bolt_request = BoltRequest(body=body, query=request.query_string, headers=headers)
        except Exception as exc:  # parsing a signed body that is not what Slack sends
            raise _Refused(400, "Bad Request", f"unparsable body ({type(exc).__name__})") from None
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self.executor, self.app.dispatch, bolt_request)
        metrics.ACK_SECONDS.observe(time.perf_counter() - arrived)
        return response

    def _verify(self, body: bytes, headers: dict[str, Any]) -> str:
        """The body as text, or refused (401): not signed by Slack with our secret, or
        signed more than five minutes ago (a replay). A bad signature is logged in Bolt's
        own words ("Invalid request signature"), the line operators already search for."""
        if self.verifier is None:
            raise _Refused(401, "Unauthorized", "no signing secret is configured")
        timestamp = str(headers.get("x-slack-request-timestamp") or "")
        signature = str(headers.get("x-slack-signature") or "")
        if not _TIMESTAMP.match(timestamp):
            raise _Refused(401, "Unauthorized", "missing or non-numeric timestamp")
        if abs(time.time() - int(timestamp)) > MAX_SIGNATURE_AGE_SECONDS:
            raise _Refused(401, "Unauthorized", "stale timestamp")
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(401, "Unauthorized", "Invalid request signature") from None
        if not self.verifier.is_valid(body=text_body, timestamp=timestamp, signature=signature):
            raise _Refused(401, "Unauthorized", "Invalid request signature")
        return text_body

    async def _get_http_response(
        self, method: str, path: str, request: AsgiHttpRequest
    ) -> AsgiHttpResponse:
        if method == "GET" and path == HEALTH_PATH:
            return await self._health()
        if method == "GET" and path == METRICS_PATH:
            return await self._metrics()
        try:
            return await super()._get_http_response(method, path, request)
        except _Refused as refused:
            log.warning("refused %s %s: %s (%s)", method, path, refused.status, refused.reason)
            metrics.HTTP_REFUSED.labels(status=str(refused.status)).inc()
            return AsgiHttpResponse(
                status=refused.status,
                headers={"content-type": ["text/plain; charset=utf-8"]},
                body=refused.answer,
            )

    async def _health(self) -> AsgiHttpResponse:
        database = "not checked"
        if self.probe is not None:
            database = await self.probe.check(HEALTH_WAIT_SECONDS)
        status = 503 if database == "unreachable" else 200
        body = json.dumps({"ok": database in ("ok", "not checked"), "database": database})
        return AsgiHttpResponse(
            status=status, headers={"content-type": ["application/json"]}, body=body
        )

    async def _metrics(self) -> AsgiHttpResponse:
        if self.probe is not None and self.probe.stale():
            await self.probe.check(HEALTH_WAIT_SECONDS)  # refreshes the run's age
        body, content_type = metrics.exposition()
        return AsgiHttpResponse(
            status=200, headers={"content-type": [content_type]}, body=body.decode()
        )


class DatabaseProbe:
    """Reads the live run's finish time, one probe at a time on a thread of its own: the
    health check (may the replica take traffic?) and the run's age for /metrics.

    `check` waits at most `wait` seconds. A probe still running from an earlier check is
    never doubled; it is reported as "degraded" until it ends, so a hung database costs one
    thread, not one per health check.
    """

    def __init__(self, engine: Engine, *, max_age_seconds: float = 15.0) -> None:
        self.engine = engine
        self.max_age = max_age_seconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmbot-probe")
        self._running: asyncio.Future[str] | None = None
        self._checked_at = 0.0

    def stale(self) -> bool:
        return time.monotonic() - self._checked_at > self.max_age

    async def check(self, wait: float) -> str:
        """ok | degraded (no answer within `wait`) | unreachable."""
        if self._running is None or self._running.done():
            loop = asyncio.get_running_loop()
            self._running = asyncio.ensure_future(loop.run_in_executor(self._executor, self._probe))
        try:
            state = await asyncio.wait_for(asyncio.shield(self._running), timeout=wait)
        except TimeoutError:
            state = "degraded"
        metrics.DATABASE_UP.set({"ok": 1.0, "degraded": 0.5}.get(state, 0.0))
        return state

    def _probe(self) -> str:
        try:
            with statement_deadline(PROBE_TIMEOUT_SECONDS), self.engine.connect() as connection:
                finished = connection.execute(
                    select(col(ModelRun.finished_at))
                    .join(ActiveRun, col(ActiveRun.run_id) == col(ModelRun.id))
                    .limit(1)
                ).scalar_one_or_none()
        except StatementTimeout:
            log.warning("health check: the database did not answer in %ss", PROBE_TIMEOUT_SECONDS)
            return "degraded"
        except Exception as exc:
            log.warning("health check: database unreachable: %s", exc)
            return "unreachable"
        self._checked_at = time.monotonic()
        metrics.active_run_finished(finished if isinstance(finished, datetime) else None)
        return "ok"


def _app_signing_secret(app: App) -> str:
    """The secret the Bolt app verifies with (Bolt keeps it on the app, unexported)."""
    return str(getattr(app, "_signing_secret", "") or "")


async def _read_body(request: AsgiHttpRequest) -> bytes:
    chunks = bytearray()
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise _Refused(400, "Bad Request", "the client went away")
        chunks.extend(message.get("body", b""))
        if len(chunks) > MAX_BODY_BYTES:
            raise _Refused(413, "Payload Too Large", f"more than {MAX_BODY_BYTES} bytes")
        if not message.get("more_body", False):
            return bytes(chunks)


def asgi_app(
    app: App, engine: Engine | None = None, *, signing_secret: str | None = None
) -> CrmbotRequestHandler:
    """The ASGI application uvicorn (or any ASGI server) serves."""
    return CrmbotRequestHandler(app, engine, signing_secret=signing_secret)


def _config(
    app: App,
    engine: Engine | None,
    host: str,
    port: int,
    log_level: str,
    *,
    json_logs: bool = False,
) -> Any:
    extra: dict[str, Any] = {}
    if json_logs:
        # uvicorn's own records (start-up, access lines) go to the root logger's JSON
        # handler instead of the handlers uvicorn would install.
        extra["log_config"] = None
    return uvicorn.Config(
        asgi_app(app, engine),
        host=host,
        port=port,
        log_level=log_level.lower(),
        lifespan="off",
        **extra,
        # Slack closes idle connections itself; keep-alive just saves handshakes.
        timeout_keep_alive=30,
        server_header=False,
    )


def freeze_start_up_objects() -> None:
    """Move the objects of start-up (pandas, scikit-learn, the app) out of the collector's
    sight: full collections over them otherwise stall every thread, acknowledgements
    included (ack p99 at concurrency 20, 4 listener threads: 110-165 ms without, 80-90 ms
    with; `/crm at-risk` at 1M: the slowest of 300 at 90-130 ms without, 13-15 ms with)."""
    gc.collect()
    gc.freeze()


def serve_http(
    app: App,
    engine: Engine | None = None,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    log_level: str = "info",
    json_logs: bool = False,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it gracefully); `json_logs` sends
    uvicorn's records through the root logger's (JSON) handler too."""
    freeze_start_up_objects()
    uvicorn.Server(_config(app, engine, host, port, log_level, json_logs=json_logs)).run()


class BackgroundServer:
    """The same server on a thread, for tests and embedding: `port=0` picks a free port.

    with BackgroundServer(app, engine) as server:
        post(f"{server.url}/slack/events", ...)
    """

    def __init__(
        self,
        app: App,
        engine: Engine | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.server = uvicorn.Server(_config(app, engine, host, port, log_level))
        self.host = host
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_socket_mode(
    app: App,
    app_token: str,
    *,
    on_started: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Connect to Slack over a WebSocket and serve until interrupted (or `stop` is set).

    slack_sdk's client keeps the connection alive (pings) and reconnects on its own."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    freeze_start_up_objects()
    handler.connect()
    if on_started is not None:
        on_started()
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        handler.close()
