"""What every digest shares: its kinds, its period, the content it carries, and the
`Poster` that delivers it (Slack's is `crmbot.slack.delivery.SlackPoster`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from crmbot.core.privacy import mask_pii
from crmbot.reply import Reply, Table
from crmbot.reply.people import SLACK_USER_ID

AT_RISK = "at-risk"
INFLUENCERS = "influencers"
AT_RISK_DM = "at-risk-dm"  # one per account owner, only their own accounts
KINDS = (AT_RISK, INFLUENCERS)

# Slack allows 25 buttons in one actions block.
MAX_BUTTONS = 25


def local_day(moment: datetime, timezone: str) -> date:
    """The calendar day of a naive-UTC `moment` in `timezone` (the scheduler's zone)."""
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone)).date()


def digest_period(kind: str, day: date) -> str:
    """The idempotency period: the ISO date (daily digests) or ISO week (weekly)."""
    if kind == INFLUENCERS:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def digest_key(kind: str, channel: str, period: str) -> str:
    return f"{kind}|{channel}|{period}"


def message_key(kind: str, channel: str, period: str, row: str | None = None) -> str:
    """What names one message of a digest in its metadata: the header's key is the
    digest's own, a row's adds the row's key (its customer id)."""
    key = digest_key(kind, channel, period)
    return f"{key}|{row}" if row else key


def looks_like_slack_user(owner: str | None) -> bool:
    return bool(owner and SLACK_USER_ID.match(owner.strip()))


def masked(table: Table) -> Table:
    """`table` as a channel may see it: emails and phone numbers masked in every cell."""
    return Table(columns=table.columns, rows=[[mask_pii(c) for c in row] for row in table.rows])


@dataclass(frozen=True)
class DigestRow:
    """One row of a digest, posted as a message of its own after the header, at the
    channel's top level, so that each row has a thread of its own (its buttons answer
    there). `key` names it within the digest (the customer id)."""

    key: str
    reply: Reply


@dataclass
class Digest:
    """What to post: the header (a Reply: title, what changed, footer), the rows that
    follow it as messages of their own (none for a digest of one message), and what it
    remembers for next time."""

    kind: str
    period: str
    reply: Reply
    summary: dict[str, Any]
    customer_ids: list[str] = field(default_factory=list)
    rows: list[DigestRow] = field(default_factory=list)

    def messages(self, channel: str) -> list[tuple[str, Reply]]:
        """Every message to post to `channel`, in order, each with its metadata key."""
        header = (message_key(self.kind, channel, self.period), self.reply)
        return [header] + [
            (message_key(self.kind, channel, self.period, row.key), row.reply) for row in self.rows
        ]


@dataclass
class DigestOutcome:
    """What happened to one digest: posted, already posted, failed, nothing to post..."""

    kind: str
    channel: str
    period: str
    # posted | already_posted | in_progress | failed | no_model | no_channel | dry_run
    status: str
    ts: str | None = None
    error: str | None = None
    reply: Reply | None = None
    # The row messages that follow the header (`Digest.rows`), for a dry run to show.
    rows: list[Reply] = field(default_factory=list)
    # How many messages of the digest are in the channel (the header and its rows).
    messages: int = 0
    attempts: int = 0
    owner_dms: list[DigestOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        failed_dm = any(not dm.ok for dm in self.owner_dms)
        return self.status not in ("failed",) and not failed_dm

    def describe(self) -> str:
        """One sentence for a person: the CLI, `/crm schedule run`, the admin channel."""
        what = f"The {self.kind} digest for {self.period}"
        where = self.channel or "no channel"
        rows = f", and {self.messages - 1} account rows after it" if self.messages > 1 else ""
        text = {
            "posted": f"{what} was posted to {where} (message {self.ts}{rows}).",
            "already_posted": f"{what} was already posted to {where} (message {self.ts}); "
            "not posting it twice.",
            "in_progress": f"{what} is being posted to {where} by another process right now.",
            "failed": f"{what} could not be posted to {where}: {self.error}",
            "no_model": f"{what} was not posted: no model has been trained yet.",
            "no_channel": f"{what} has no channel to go to: set one with "
            "`/crm schedule channel JOB #channel` or the CRMBOT_*_CHANNEL setting.",
            "dry_run": f"{what} (dry run, nothing posted).",
        }.get(self.status, f"{what}: {self.status}")
        if self.owner_dms:
            sent = sum(dm.status in ("posted", "already_posted") for dm in self.owner_dms)
            text += f" Owner DMs: {sent} of {len(self.owner_dms)} delivered."
            failed = [dm for dm in self.owner_dms if dm.status == "failed"]
            if failed:
                text += " Failed: " + "; ".join(f"{dm.channel}: {dm.error}" for dm in failed[:5])
        return text


class Poster(Protocol):
    """Delivers digests and notices. A digest is posted at most once per (kind, channel,
    period), whatever retries and crashes happen (`crmbot.digests.ledger`)."""

    def post_digest(
        self, digest: Digest, *, channel: str, clock: Callable[[], datetime]
    ) -> DigestOutcome: ...

    def post_notice(self, channel: str, text: str) -> None:
        """A one-line notice (the admin channel's), masked of PII; raises when it cannot."""
        ...

    def post_message(self, channel: str, reply: Reply, *, key: str, shared: bool) -> str:
        """One message (an alert, a follow-up reminder) to a channel or a user's DM with
        the bot (`channel` a user id), carrying `key` so a retry never posts it twice;
        `shared` masks it. Its id (Slack: ts); raises when it could not be posted."""
        ...

    def user_for(self, owner: str) -> str | None:
        """The chat user to message for an account owner or assignee as stored (a user
        id, an email); None when it names nobody the workspace knows."""
        ...
