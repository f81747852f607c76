"""The one retry policy for every Slack Web API call the bot makes, digests and replies
alike: 429 after its Retry-After, 500/503 and dropped connections with back-off, and never
a repeat of a post that can be found already landed (`DeliveryCheck`: the message metadata
each digest message and reply carries, looked for in the channel or thread).

Its own module so that digest delivery (`delivery`), the app's replies (`app`) and the
workspace directory (`people`) all take their clients from here and not from each other.
"""

from __future__ import annotations

import json
import logging
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
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
from slack_sdk.webhook import WebhookClient

from crmbot.digests import looks_like_slack_user

log = logging.getLogger(__name__)

SLACK_RETRIES = 4
SLACK_TIMEOUT_SECONDS = 30
METADATA_EVENT = "crmbot_digest"
# The metadata of a reply the bot posts for a user; its payload's "reply" names the request.
REPLY_EVENT = "crmbot_reply"
# The metadata payload key that identifies each kind of post.
_POST_KEYS = {METADATA_EVENT: "digest", REPLY_EVENT: "reply"}
# Calls that would show something twice if repeated after a connection dropped mid-call,
# and that cannot be looked for first: they are not retried after a lost answer.
UNREPEATABLE = ("chat.postEphemeral", "files.completeUploadExternal")


class DeliveryCheck:
    """Looks in a channel's history for a digest's metadata: did that post land?"""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def find(
        self,
        channel: str,
        key: str,
        *,
        event_type: str = METADATA_EVENT,
        thread_ts: str | None = None,
    ) -> str | None:
        """The ts of the message carrying `key` (a digest's, or with `event_type`
        REPLY_EVENT a reply's) among the channel's latest 200 — or the thread's, with
        `thread_ts` — or None when it is not there.

        Raises `SlackApiError` (or a connection error) when the history cannot be read,
        e.g. the bot lacks the channels:history scope.
        """
        return self.find_all(channel, [key], event_type=event_type, thread_ts=thread_ts).get(key)

    def find_all(
        self,
        channel: str,
        keys: list[str],
        *,
        event_type: str = METADATA_EVENT,
        thread_ts: str | None = None,
    ) -> dict[str, str]:
        """Those of `keys` whose message is among the channel's (or thread's) latest 200,
        each with its ts: one read of the history for all the messages of a digest."""
        if looks_like_slack_user(channel):
            opened = self.client.conversations_open(users=channel)
            channel = opened["channel"]["id"]
        if thread_ts:
            history = self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            history = self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=200
            )
        field = _POST_KEYS[event_type]
        wanted = set(keys)
        found: dict[str, str] = {}
        for message in history.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            key = payload.get(field)
            if metadata.get("event_type") == event_type and key in wanted and key not in found:
                found[str(key)] = str(message.get("ts"))
        return found

    def landed(self, request: HttpRequest) -> bool:
        """For a retry handler: did this chat.postMessage (a digest or a reply) land after
        all? False for any other call, and when the post names nothing to look for."""
        if not request.url.endswith("/chat.postMessage"):
            return False
        try:
            body = json.loads(request.data or b"{}")
            metadata = body["metadata"]
            event_type = metadata["event_type"]
            key = metadata["event_payload"][_POST_KEYS[event_type]]
            channel = body["channel"]
        except (ValueError, KeyError, TypeError):
            return False
        try:
            found = (
                self.find(channel, key, event_type=event_type, thread_ts=body.get("thread_ts"))
                is not None
            )
        except Exception as exc:  # unreadable history: retry rather than lose the post
            log.info("could not check whether %s landed (%s); retrying", key, exc)
            return False
        if found:
            log.warning("%s landed although Slack's answer was lost; not re-posting", key)
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
    """Retries dropped connections and timeouts — unless the post already landed, or the
    call is one that cannot be looked for (UNREPEATABLE, or a response_url answer)."""

    def __init__(self, check: DeliveryCheck, *, repeat_unknown: bool = True, **kwargs: Any) -> None:
        super().__init__(
            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError],
            **kwargs,
        )
        self.check = check
        self.repeat_unknown = repeat_unknown

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not self.repeat_unknown or request.url.endswith(
            tuple(f"/{method}" for method in UNREPEATABLE)
        ):
            return False
        return super()._can_retry(state=state, request=request, response=response, error=error)


class RetryingWebClient(WebClient):
    """A WebClient under the one retry policy, holding the `DeliveryCheck` it uses."""

    check: DeliveryCheck


def retry_handlers(
    check: DeliveryCheck,
    *,
    retries: int = SLACK_RETRIES,
    interval: RetryIntervalCalculator | None = None,
    repeat_unknown: bool = True,
) -> list[RetryHandler]:
    """The one retry policy: 429 after its Retry-After; 500/503 and dropped connections
    with back-off, unless `check` finds the post already landed. `repeat_unknown=False`
    (response_url answers, which cannot be looked for) never retries a lost answer."""
    backoff = interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        RateLimitErrorRetryHandler(max_retry_count=retries),
        _CheckedServerErrorRetry(check, max_retry_count=retries, interval_calculator=backoff),
        _CheckedConnectionRetry(
            check,
            repeat_unknown=repeat_unknown,
            max_retry_count=retries,
            interval_calculator=backoff,
        ),
    ]


def retrying_client(
    *,
    token: str | None,
    base_url: str,
    retries: int = SLACK_RETRIES,
    interval: RetryIntervalCalculator | None = None,
    timeout: int = SLACK_TIMEOUT_SECONDS,
) -> RetryingWebClient:
    """A Web API client that retries what is transient and never repeats a post it can
    find already landed (digests, and replies carrying REPLY_EVENT metadata)."""
    lookup = WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    check = DeliveryCheck(lookup)
    client = RetryingWebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=retry_handlers(check, retries=retries, interval=interval),
    )
    client.check = check
    return client


def retrying_webhook(
    url: str,
    check: DeliveryCheck,
    *,
    retries: int = SLACK_RETRIES,
    interval: RetryIntervalCalculator | None = None,
    timeout: int = SLACK_TIMEOUT_SECONDS,
) -> WebhookClient:
    """A response_url client under the same policy; a lost answer is not repeated."""
    return WebhookClient(
        url=url,
        timeout=timeout,
        retry_handlers=retry_handlers(
            check, retries=retries, interval=interval, repeat_unknown=False
        ),
    )
