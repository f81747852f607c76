"""Digest delivery to Slack: post once, retry what is transient, never post twice.

`SlackPoster` is the `crmbot.digests.Poster` for Slack. Each digest goes out with
`chat.postMessage`, carrying Slack message metadata that names it, under the digest log's
claim (`crmbot.digests.ledger`): the row is written before posting and finished after.

Slack's transient errors (429 with Retry-After, 500/503, dropped connections, timeouts)
are retried with back-off by slack-sdk's retry handlers, a bounded number of times
(`SLACK_RETRIES` in all). Before a retry that might repeat a post Slack already
accepted (a 5xx, a dropped connection), and before re-posting a row a crash left
`pending`, the channel's latest messages are searched for the digest's metadata: if the
message is there, the row is marked posted with its ts instead of posting again.

That search needs the bot's `channels:history` scope (`groups:history` for private
channels, `im:history` for owner DMs). Without it:
* a retry after a 5xx or a dropped connection still happens (a digest is never silently
  lost); in the rare case that Slack had accepted the first attempt, the digest appears
  twice;
* a row a crash left `pending` (older than `STALE_PENDING`) is *not* re-posted: it is
  marked failed as "outcome unknown" and the admin channel is told, since posting again
  could duplicate it. An admin checks the channel and re-sends if it is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryIntervalCalculator,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy.engine import Engine

from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.privacy import mask_pii
from crmbot.digests import Digest, DigestOutcome, digest_key, ledger, looks_like_slack_user
from crmbot.slack.blocks import message as slack_message

log = logging.getLogger(__name__)

SLACK_RETRIES = 4
SLACK_TIMEOUT_SECONDS = 30
METADATA_EVENT = "crmbot_digest"

Clock = Callable[[], datetime]


class DeliveryCheck:
    """Looks in a channel's history for a digest's metadata: did that post land?"""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def find(self, channel: str, key: str) -> str | None:
        """The ts of the message carrying digest `key` among the channel's latest 200, or
        None when it is not there.

        Raises `SlackApiError` (or a connection error) when the history cannot be read,
        e.g. the bot lacks the channels:history scope.
        """
        if looks_like_slack_user(channel):
            opened = self.client.conversations_open(users=channel)
            channel = opened["channel"]["id"]
        history = self.client.conversations_history(
            channel=channel, include_all_metadata=True, limit=200
        )
        for message in history.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and payload.get("digest") == key:
                return str(message.get("ts"))
        return None

    def landed(self, request: HttpRequest) -> bool:
        """For a retry handler: did this chat.postMessage (a digest) land after all?"""
        if not request.url.endswith("/chat.postMessage"):
            return False
        try:
            body = json.loads(request.data or b"{}")
            key = body["metadata"]["event_payload"]["digest"]
            channel = body["channel"]
        except (ValueError, KeyError, TypeError):
            return False
        try:
            found = self.find(channel, key) is not None
        except Exception as exc:  # unreadable history: retry rather than lose the digest
            log.info("could not check whether digest %s landed (%s); retrying", key, exc)
            return False
        if found:
            log.warning("digest %s landed although Slack's answer was lost; not re-posting", key)
        return found


class _UnlessLanded(RetryHandler):
    """A retry handler that will not repeat a post Slack already accepted.

    Mixed in before one of slack-sdk's handlers, which decides what is retryable at all.
    """

    check: DeliveryCheck

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return super()._can_retry(
            state=state, request=request, response=response, error=error
        ) and not self.check.landed(request)


class _CheckedServerErrorRetry(_UnlessLanded, ServerErrorRetryHandler):
    """Retries 500/503 — unless the post it would repeat is already in the channel."""

    def __init__(self, check: DeliveryCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check


class _CheckedConnectionRetry(_UnlessLanded, ConnectionErrorRetryHandler):
    """Retries dropped connections and timeouts — unless the post already landed."""

    def __init__(self, check: DeliveryCheck, **kwargs: Any) -> None:
        super().__init__(
            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError],
            **kwargs,
        )
        self.check = check


def _slack_error(exc: Exception) -> tuple[str, bool]:
    """The error in words, and whether Slack might have acted on the request anyway."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)
        error = exc.response.get("error") if exc.response is not None else None
        words = f"Slack answered {status}" + (f" ({error})" if error else "")
        return words, bool(status and status >= 500)
    return f"connection to Slack failed: {type(exc).__name__}: {exc}", True


class SlackPoster:
    """Posts digests (exactly once per kind, channel and period) and admin notices."""

    def __init__(self, engine: Engine, client: WebClient, check: DeliveryCheck) -> None:
        self.engine = engine
        self.client = client
        self.check = check

    def post_notice(self, channel: str, text: str) -> None:
        """A one-line notice to a channel, masked of PII (raises when Slack refuses it)."""
        self.client.chat_postMessage(
            channel=channel, text=mask_pii(text), unfurl_links=False, unfurl_media=False
        )

    def post_digest(self, digest: Digest, *, channel: str, clock: Clock = utc_now) -> DigestOutcome:
        """Post `digest` to `channel` unless this (kind, channel, period) was posted already."""
        kind, period = digest.kind, digest.period
        key = digest_key(kind, channel, period)
        claim = ledger.claim(self.engine, kind, channel, period, clock())
        if isinstance(claim, DigestOutcome):
            log.info("digest %s not posted: %s", key, claim.status)
            return claim
        outcome = DigestOutcome(kind, channel, period, "pending", attempts=claim.attempts)
        if claim.look_first:
            found = self._look_for_earlier_post(claim, outcome, channel, key, clock)
            if outcome.status == "failed":
                return outcome
            if found is not None:
                self._finish_posted(claim, outcome, "already_posted", found, digest, clock)
                return outcome
        return self._post(digest, claim, outcome, channel, key, clock)

    def _look_for_earlier_post(
        self,
        claim: ledger.Claim,
        outcome: DigestOutcome,
        channel: str,
        key: str,
        clock: Clock,
    ) -> str | None:
        try:
            return self.check.find(channel, key)
        except Exception as exc:
            if not claim.must_confirm:
                # An earlier attempt that Slack refused: posting again is the lesser risk.
                log.info("digest %s: channel history unreadable (%s); posting again", key, exc)
                return None
            error = (
                "outcome unknown: an earlier attempt stopped while posting and the "
                f"channel's history cannot be read ({_slack_error(exc)[0]}), so it is "
                "not re-posted to avoid a duplicate; check the channel and re-send "
                "if it is missing"
            )
            ledger.finish(self.engine, claim.row_id, status="failed", now=clock(), error=error)
            outcome.status, outcome.error = "failed", error
            return None

    def _post(
        self,
        digest: Digest,
        claim: ledger.Claim,
        outcome: DigestOutcome,
        channel: str,
        key: str,
        clock: Clock,
    ) -> DigestOutcome:
        # A channel post: rendered as Block Kit with PII masked and Slack markup escaped.
        rendered = slack_message(digest.reply, shared=True)
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=rendered["text"],
                blocks=rendered["blocks"],
                metadata={"event_type": METADATA_EVENT, "event_payload": {"digest": key}},
                unfurl_links=False,
                unfurl_media=False,
            )
        except Exception as exc:
            words, ambiguous = _slack_error(exc)
            found = None
            if ambiguous:
                # The retry handlers gave up, or saw the post land: look once more.
                try:
                    found = self.check.find(channel, key)
                except Exception:
                    found = None
            if found is not None:
                self._finish_posted(claim, outcome, "posted", found, digest, clock)
                return outcome
            error = f"{words} (after up to {SLACK_RETRIES} retries)"
            log.error("digest %s failed: %s", key, error)
            ledger.finish(self.engine, claim.row_id, status="failed", now=clock(), error=error)
            outcome.status, outcome.error = "failed", error
            return outcome
        ts = str(response.get("ts"))
        self._finish_posted(claim, outcome, "posted", ts, digest, clock)
        log.info("digest %s posted (ts %s)", key, ts)
        return outcome

    def _finish_posted(
        self,
        claim: ledger.Claim,
        outcome: DigestOutcome,
        status: str,
        ts: str,
        digest: Digest,
        clock: Clock,
    ) -> None:
        ledger.finish(self.engine, claim.row_id, status="posted", now=clock(), ts=ts, digest=digest)
        outcome.status, outcome.ts = status, ts


def slack_poster(
    engine: Engine,
    settings: Settings,
    client: WebClient | None = None,
    *,
    retries: int = SLACK_RETRIES,
    interval: RetryIntervalCalculator | None = None,
    timeout: int = SLACK_TIMEOUT_SECONDS,
) -> SlackPoster:
    """The poster for digests and notices: the bot's token and base URL (from `client` when
    given, else settings) with bounded retries of 429, 500/503 and connection errors.

    `interval` is the back-off between retries of 5xx and connection errors (default
    exponential with jitter: 0.5, 1, 2, 4 s plus up to 1 s); a 429 waits for its Retry-After.
    """
    token = (client.token if client is not None else None) or settings.slack_bot_token
    base_url = client.base_url if client is not None else settings.slack_api_base_url
    backoff = interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    lookup = WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    check = DeliveryCheck(lookup)
    posting = WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=retries),
            _CheckedServerErrorRetry(check, max_retry_count=retries, interval_calculator=backoff),
            _CheckedConnectionRetry(check, max_retry_count=retries, interval_calculator=backoff),
        ],
    )
    return SlackPoster(engine, posting, check)


def configured_poster(engine: Engine, settings: Settings) -> SlackPoster | None:
    """The poster SLACK_BOT_TOKEN gives, or None when no token is set (nothing can post)."""
    return slack_poster(engine, settings) if settings.slack_bot_token else None
