"""Digest delivery to Slack: post once, retry what is transient, never post twice.

`SlackPoster` is the `crmbot.digests.Poster` for Slack. Each digest goes out with
`chat.postMessage` under the digest log's claim (`crmbot.digests.ledger`): the row is
written before posting and finished after. A digest is a header and, for the at-risk
digest, one message per account after it, each at the channel's top level so that it has
a thread of its own; every message carries Slack message metadata that names it (the
digest's key, and a row's customer id after it), so each is looked for, and posted, once.

Slack's transient errors (429 with Retry-After, 500/503, dropped connections, timeouts)
are retried with back-off by slack-sdk's retry handlers, a bounded number of times
(`SLACK_RETRIES` in all). Before a retry that might repeat a post Slack already
accepted (a 5xx, a dropped connection), and before re-posting a row a crash left
`pending`, the channel's latest messages are searched for the digest's metadata: if the
message is there, the row is marked posted with its ts instead of posting again.

The same policy (`crmbot.slack.retries`: `retrying_client`, `retry_handlers`) serves
every call the bot makes on a user's behalf — replies, ephemeral answers, views,
unfurls, chart uploads and response_url answers: a 429 always waits for its Retry-After
and is retried (Slack did nothing); a 500/503 is retried; a dropped connection is
retried only where a repeat cannot show anything twice (reads, views.publish,
chat.unfurl, the upload itself) or where the channel can be searched first. A reply
posted with `chat.postMessage` carries `crmbot_reply` metadata naming its request, so it
is searched for exactly like a digest (in its thread, through conversations.replies). An
ephemeral answer, a response_url answer and the step that shares an uploaded file cannot
be searched for: after a dropped connection they are not repeated.

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

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    RetryIntervalCalculator,
)
from sqlalchemy.engine import Engine

from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.privacy import mask_pii
from crmbot.digests import Digest, DigestOutcome, digest_key, ledger, looks_like_slack_user
from crmbot.reply import Reply
from crmbot.reply.people import People
from crmbot.slack.blocks import message as slack_message
from crmbot.slack.people import SlackDirectory
from crmbot.slack.retries import (
    METADATA_EVENT,
    SLACK_RETRIES,
    SLACK_TIMEOUT_SECONDS,
    DeliveryCheck,
    retrying_client,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        check: DeliveryCheck,
        people: People | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.check = check
        # Account owners in a digest shown by name (crmbot.slack.people.SlackDirectory).
        self.people = people

    def post_notice(self, channel: str, text: str) -> None:
        """A one-line notice to a channel, masked of PII (raises when Slack refuses it)."""
        self.client.chat_postMessage(
            channel=channel, text=mask_pii(text), unfurl_links=False, unfurl_media=False
        )

    def post_message(self, channel: str, reply: Reply, *, key: str, shared: bool) -> str:
        """An alert or a follow-up reminder: posted with `key` in its metadata, so a retry
        after a 5xx or a dropped connection first looks whether it landed (as digests do);
        `channel` may be a user id (their DM with the bot). Raises when Slack refuses it
        after the retries; the caller's claim decides whether it is tried again."""
        return self._send(channel, slack_message(reply, shared=shared, people=self.people), key)

    def _send(self, channel: str, rendered: dict[str, Any], key: str) -> str:
        """Post a rendered message with `key` in its metadata (what `DeliveryCheck.find`
        looks for): its ts. Raises when Slack refuses it after the retries."""
        response = self.client.chat_postMessage(
            channel=channel,
            text=rendered["text"],
            blocks=rendered["blocks"],
            metadata={"event_type": METADATA_EVENT, "event_payload": {"digest": key}},
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response.get("ts"))

    def user_for(self, owner: str) -> str | None:
        """The Slack user to DM for an owner or assignee as stored: a user id as it is, an
        email through users.lookupByEmail (cached); None when it names nobody."""
        owner = (owner or "").strip()
        if looks_like_slack_user(owner):
            return owner
        person = self.people.person(owner) if self.people is not None and owner else None
        return person.user_id if person is not None else None

    def post_digest(self, digest: Digest, *, channel: str, clock: Clock = utc_now) -> DigestOutcome:
        """Post `digest` to `channel` unless this (kind, channel, period) was posted already:
        its header, then each of its rows as a message of its own, every message once."""
        kind, period = digest.kind, digest.period
        key = digest_key(kind, channel, period)
        claim = ledger.claim(self.engine, kind, channel, period, clock())
        if isinstance(claim, DigestOutcome):
            log.info("digest %s not posted: %s", key, claim.status)
            return claim
        outcome = DigestOutcome(kind, channel, period, "pending", attempts=claim.attempts)
        messages = digest.messages(channel)
        # What an earlier attempt posted: from the digest log, then from the channel.
        sent = {k: ts for k, ts in claim.sent.items() if k in dict(messages)}
        if claim.look_first:
            missing = [k for k, _ in messages if k not in sent]
            found = self._look_for_earlier_posts(claim, outcome, channel, key, missing, clock)
            if outcome.status == "failed":
                return outcome
            sent.update(found)
        already = len(sent) == len(messages)
        for message_key, reply in messages:
            if message_key in sent:
                continue
            ts = self._post(reply, channel, message_key)
            if isinstance(ts, Exception):
                error = f"{_slack_error(ts)[0]} (after up to {SLACK_RETRIES} retries)"
                if sent:
                    error += f"; {len(sent)} of its {len(messages)} messages went out"
                log.error("digest %s failed: %s", message_key, error)
                ledger.finish(
                    self.engine, claim.row_id, status="failed", now=clock(), error=error, sent=sent
                )
                outcome.status, outcome.error = "failed", error
                outcome.ts, outcome.messages = sent.get(key), len(sent)
                return outcome
            sent[message_key] = ts
        ledger.finish(
            self.engine,
            claim.row_id,
            status="posted",
            now=clock(),
            ts=sent[key],
            digest=digest,
            sent=sent if digest.rows else None,
        )
        outcome.status = "already_posted" if already else "posted"
        outcome.ts, outcome.messages = sent[key], len(sent)
        log.info("digest %s %s (ts %s, %d messages)", key, outcome.status, outcome.ts, len(sent))
        return outcome

    def _look_for_earlier_posts(
        self,
        claim: ledger.Claim,
        outcome: DigestOutcome,
        channel: str,
        key: str,
        keys: list[str],
        clock: Clock,
    ) -> dict[str, str]:
        """Those of the digest's messages (`keys`) already in the channel. When the history
        cannot be read after a crash mid-post, the digest is marked failed instead."""
        if not keys:
            return {}
        try:
            return self.check.find_all(channel, keys)
        except Exception as exc:
            if not claim.must_confirm:
                # An earlier attempt that Slack refused: posting again is the lesser risk.
                log.info("digest %s: channel history unreadable (%s); posting again", key, exc)
                return {}
            error = (
                "outcome unknown: an earlier attempt stopped while posting and the "
                f"channel's history cannot be read ({_slack_error(exc)[0]}), so it is "
                "not re-posted to avoid a duplicate; check the channel and re-send "
                "if it is missing"
            )
            ledger.finish(
                self.engine,
                claim.row_id,
                status="failed",
                now=clock(),
                error=error,
                sent=claim.sent,
            )
            outcome.status, outcome.error = "failed", error
            return {}

    def _post(self, reply: Reply, channel: str, key: str) -> str | Exception:
        """One message of a digest, with `key` in its metadata: its ts, or why it failed.
        A lost answer is retried only once the channel shows it did not land
        (`DeliveryCheck.landed`), and looked for once more when the retries give up."""
        # A channel post: rendered as Block Kit with PII masked and Slack markup escaped.
        rendered = slack_message(reply, shared=True, people=self.people)
        try:
            return self._send(channel, rendered, key)
        except Exception as exc:
            if _slack_error(exc)[1]:
                # The retry handlers gave up, or saw the post land: look once more.
                try:
                    found = self.check.find(channel, key)
                except Exception:
                    found = None
                if found is not None:
                    return found
            return exc


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
    posting = retrying_client(
        token=token, base_url=base_url, retries=retries, interval=interval, timeout=timeout
    )
    return SlackPoster(engine, posting, posting.check, SlackDirectory(posting))


def configured_poster(engine: Engine, settings: Settings) -> SlackPoster | None:
    """The poster SLACK_BOT_TOKEN gives, or None when no token is set (nothing can post)."""
    return slack_poster(engine, settings) if settings.slack_bot_token else None
