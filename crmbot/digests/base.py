"""What every digest shares: its kinds, its period, the content it carries, and the
`Poster` that delivers it (Slack's is `crmbot.slack.delivery.SlackPoster`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from crmbot.core.privacy import mask_pii
from crmbot.reply import Reply, Table

if TYPE_CHECKING:
    from crmbot.digests.ledger import DigestOutcome

AT_RISK = "at-risk"
INFLUENCERS = "influencers"
AT_RISK_DM = "at-risk-dm"  # one per account owner, only their own accounts
KINDS = (AT_RISK, INFLUENCERS)

# Slack allows 25 buttons in one actions block.
MAX_BUTTONS = 25

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


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


def looks_like_slack_user(owner: str | None) -> bool:
    return bool(owner and SLACK_USER_ID.match(owner.strip()))


def masked(table: Table) -> Table:
    """`table` as a channel may see it: emails and phone numbers masked in every cell."""
    return Table(columns=table.columns, rows=[[mask_pii(c) for c in row] for row in table.rows])


@dataclass
class Digest:
    """One message to post: what it says (a Reply) and what it remembers for next time."""

    kind: str
    period: str
    reply: Reply
    summary: dict[str, Any]
    customer_ids: list[str] = field(default_factory=list)


class Poster(Protocol):
    """Delivers digests and notices. A digest is posted at most once per (kind, channel,
    period), whatever retries and crashes happen (`crmbot.digests.ledger`)."""

    def post_digest(
        self, digest: Digest, *, channel: str, clock: Callable[[], datetime]
    ) -> DigestOutcome: ...

    def post_notice(self, channel: str, text: str) -> None:
        """A one-line notice (the admin channel's), masked of PII; raises when it cannot."""
        ...
