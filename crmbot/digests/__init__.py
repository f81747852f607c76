"""Channel digests as content: the accounts at risk (daily) and the influencers (weekly).

A digest is built as a `Reply` (its header) plus its rows (the at-risk digest: one message
per account, each in a thread of its own) and its identity (`Digest`: kind, period, what
it remembers for next time), so the shell prints it (`crmbot digest send --dry-run`) and a
transport renders it; it is a channel post, so it is masked of PII. Nothing here imports
Slack: a `Poster` delivers (Slack's is `crmbot.slack.delivery.SlackPoster`), and the digest
log (`crmbot.digests.ledger`) makes sure each digest is posted exactly once per period.

    at_risk       the at-risk digest (and one per account owner, in their DM)
    influencers   the influencer digest
    ledger        the digest log: claim, finish, the previous digest in a channel
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.core import metrics
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.digests.at_risk import RISK_CHANGE, build_at_risk_digest
from crmbot.digests.base import (
    AT_RISK,
    AT_RISK_DM,
    INFLUENCERS,
    KINDS,
    Digest,
    DigestOutcome,
    DigestRow,
    Poster,
    digest_key,
    digest_period,
    local_day,
    looks_like_slack_user,
    message_key,
)
from crmbot.digests.influencers import build_influencer_digest
from crmbot.digests.ledger import STALE_PENDING

__all__ = [
    "AT_RISK",
    "AT_RISK_DM",
    "INFLUENCERS",
    "KINDS",
    "RISK_CHANGE",
    "STALE_PENDING",
    "Digest",
    "DigestOutcome",
    "DigestRow",
    "Poster",
    "build_at_risk_digest",
    "build_influencer_digest",
    "digest_key",
    "digest_period",
    "local_day",
    "looks_like_slack_user",
    "message_key",
    "owners_to_message",
    "send_digest",
]


Clock = Callable[[], datetime]


def owners_to_message(engine: Engine, settings: Settings) -> list[str]:
    """Account owners with accounts at risk whose owner field is a Slack user id."""
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return []
        owners = queries.owners_with_value_at_risk(session=session, run=run)
    # An email cannot be messaged without a users.lookupByEmail scope; skip it.
    return [o for o in owners if looks_like_slack_user(o)]


def send_digest(
    engine: Engine,
    settings: Settings,
    poster: Poster | None,
    kind: str,
    channel: str,
    *,
    clock: Clock = utc_now,
    period: str | None = None,
    dry_run: bool = False,
) -> DigestOutcome:
    """Build and post one digest (and, for at-risk with CRMBOT_DIGEST_DM_OWNERS, one DM per
    account owner), each exactly once per period. `dry_run` builds without posting.
    Each outcome is counted in `crmbot.core.metrics` (kind, status)."""
    outcome = _send_digest(
        engine, settings, poster, kind, channel, clock=clock, period=period, dry_run=dry_run
    )
    metrics.digest_sent(outcome.kind, outcome.status)
    for dm in outcome.owner_dms:
        metrics.digest_sent(dm.kind, dm.status)
    return outcome


def _send_digest(
    engine: Engine,
    settings: Settings,
    poster: Poster | None,
    kind: str,
    channel: str,
    *,
    clock: Clock,
    period: str | None,
    dry_run: bool,
) -> DigestOutcome:
    if kind not in KINDS:
        raise ValueError(f"unknown digest '{kind}'; choose one of {', '.join(KINDS)}")
    period = period or digest_period(kind, local_day(clock(), settings.timezone))
    if not channel and not dry_run:
        return DigestOutcome(kind, channel, period, "no_channel")
    build = build_at_risk_digest if kind == AT_RISK else build_influencer_digest
    digest = build(engine, settings, channel=channel, period=period)
    if digest is None:
        return DigestOutcome(kind, channel, period, "no_model")
    if dry_run:
        return DigestOutcome(
            kind,
            channel,
            period,
            "dry_run",
            reply=digest.reply,
            rows=[row.reply for row in digest.rows],
        )
    if poster is None:
        raise ValueError("posting a digest needs a poster (SLACK_BOT_TOKEN)")
    outcome = poster.post_digest(digest, channel=channel, clock=clock)
    outcome.reply, outcome.rows = digest.reply, [row.reply for row in digest.rows]
    if kind == AT_RISK and settings.digest_dm_owners:
        for owner in owners_to_message(engine, settings):
            owner_digest = build_at_risk_digest(
                engine, settings, channel=owner, period=period, owner=owner
            )
            if owner_digest is not None:
                outcome.owner_dms.append(
                    poster.post_digest(owner_digest, channel=owner, clock=clock)
                )
    return outcome
