"""Channel digests: the accounts at risk (daily) and the influencers (weekly).

A digest is built as a `Reply`, so the shell prints it (`crmbot digest send --dry-run`) and
Slack renders it as Block Kit; it is a channel post, so it is masked of PII.

Posting is idempotent. `DigestLog` is keyed by (kind, channel, period) — period is the ISO
date for the daily digest, the ISO week for the weekly one — and the row is written
*before* posting:

1. insert the row as `pending` (the unique key lets only one process through);
2. post with `chat.postMessage`, carrying Slack message metadata that names the digest;
3. mark the row `posted` with the message ts — or `failed` with the error.

Slack's transient errors (429 with Retry-After, 500/503, dropped connections, timeouts)
are retried with back-off by slack-sdk's retry handlers, a bounded number of times
(`SLACK_RETRIES` in all). Before a retry that might repeat a post Slack already
accepted (a 5xx, a dropped connection), and before re-posting a row a crash left
`pending`, the channel's latest messages are searched for the digest's metadata: if the message is
there, the row is marked posted with its ts instead of posting again.

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
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any
from urllib.error import URLError
from zoneinfo import ZoneInfo

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
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from crmbot import queries, runs
from crmbot.core.clock import utc_now
from crmbot.core.db import read_session, write_session
from crmbot.core.models import Customer, CustomerScore, DigestLog, ModelRun
from crmbot.core.privacy import mask_email, mask_pii
from crmbot.reply import Button, Reply, Table
from crmbot.slack.blocks import message as slack_message

if TYPE_CHECKING:
    from crmbot.core.config import Settings

log = logging.getLogger(__name__)

AT_RISK = "at-risk"
INFLUENCERS = "influencers"
AT_RISK_DM = "at-risk-dm"  # one per account owner, only their own accounts
KINDS = (AT_RISK, INFLUENCERS)

# A change in churn risk at least this large (in probability) is called "risk up".
RISK_CHANGE = 0.05
# A `pending` row older than this was left by a process that died while posting.
STALE_PENDING = timedelta(minutes=15)
# Retries of one Slack call, all causes together (slack-sdk counts them in one state).
SLACK_RETRIES = 4
SLACK_TIMEOUT_SECONDS = 30
METADATA_EVENT = "crmbot_digest"
# Slack allows 25 buttons in one actions block.
MAX_BUTTONS = 25

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

Clock = Callable[[], datetime]


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


# ---------------------------------------------------------------------------------------
# Building


@dataclass
class Digest:
    """One message to post: what it says (a Reply) and what it remembers for next time."""

    kind: str
    period: str
    reply: Reply
    summary: dict[str, Any]
    customer_ids: list[str]


@dataclass
class _Previous:
    period: str
    entries: dict[str, dict[str, Any]]


def _previous_digest(engine: Engine, kind: str, channel: str, period: str) -> _Previous | None:
    """The last digest of this kind actually posted to `channel` before `period`."""
    with read_session(engine) as session:
        row = session.execute(
            select(DigestLog)
            .where(
                col(DigestLog.kind) == kind,
                col(DigestLog.channel) == channel,
                col(DigestLog.status) == "posted",
                col(DigestLog.period) != period,
            )
            .order_by(col(DigestLog.posted_at).desc(), col(DigestLog.id).desc())
            .limit(1)
        ).scalar_one_or_none()
    if row is None or not row.summary:
        return None
    entries = {e["customer_id"]: e for e in row.summary.get("entries", []) if "customer_id" in e}
    return _Previous(period=row.period, entries=entries)


def _name(customer: Customer) -> str:
    return _clip(customer.name or customer.company or customer.customer_id, 28)


def _clip(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


def _owner(owner: str | None) -> str:
    if not owner:
        return "—"
    owner = owner.strip()
    if "@" in owner:
        return mask_email(owner)
    return _clip(owner, 20)


def _active_run(engine: Engine) -> ModelRun | None:
    with read_session(engine) as session:
        return runs.active_run(session=session)


def build_at_risk_digest(
    engine: Engine,
    settings: Settings,
    *,
    channel: str,
    period: str,
    owner: str | None = None,
) -> Digest | None:
    """The accounts with the most value at risk, and what changed since the last digest.

    With `owner`, only that account owner's accounts (their DM). None: no active model.
    """
    kind = AT_RISK_DM if owner else AT_RISK
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return None
        rows = queries.at_risk(
            session=session, run=run, limit=settings.digest_size, owners=[owner] if owner else None
        )
    previous = _previous_digest(engine, kind, channel, period)
    current_ids = [row.customer.customer_id for row in rows]
    new_ids: list[str] = []
    risk_up: dict[str, float] = {}
    if previous is not None:
        for row in rows:
            before = previous.entries.get(row.customer.customer_id)
            if before is None:
                new_ids.append(row.customer.customer_id)
            elif (row.score.churn_risk or 0.0) - (before.get("churn_risk") or 0.0) >= RISK_CHANGE:
                risk_up[row.customer.customer_id] = before.get("churn_risk") or 0.0
    recovered = _recovered(engine, run, previous, set(current_ids))

    table_rows = []
    for rank, row in enumerate(rows, start=1):
        cid = row.customer.customer_id
        if cid in new_ids:
            change = "new"
        elif cid in risk_up:
            change = f"▲ {((row.score.churn_risk or 0.0) - risk_up[cid]) * 100:.0f} pts"
        else:
            change = ""
        cells = [
            str(rank),
            f"{_name(row.customer)} ({cid})",
            _money(row.score.value_at_risk),
            _percent(row.score.churn_risk),
            change,
            _clip((row.score.churn_reasons or ["—"])[0], 60),
        ]
        if owner is None:
            cells.insert(2, _owner(row.customer.owner))
        table_rows.append(cells)
    columns = ["#", "Customer", "At risk", "Churn", "Change", "Top reason"]
    if owner is None:
        columns.insert(2, "Owner")

    total = sum(row.score.value_at_risk or 0.0 for row in rows)
    whose = "your" if owner else "the"
    if rows:
        lead = (
            f"*{len(rows)}* of {whose} accounts with the most value at risk: "
            f"*{_money(total)}* in all (CLV × churn risk)."
        )
    else:
        lead = f"No accounts at risk in {whose} book in the current model."
    left = [cid for cid in previous.entries if cid not in current_ids] if previous else []
    lines = [lead, _changes_line(previous, new_ids, left, risk_up, recovered)]
    reply = Reply(
        title=f"{'Your accounts' if owner else 'Accounts'} at risk · {period}",
        text=mask_pii("\n".join(line for line in lines if line)),
        table=Table(columns=columns, rows=[[mask_pii(c) for c in r] for r in table_rows])
        if rows
        else None,
        buttons=[
            Button(f"Why? {_clip(_name(row.customer), 40)}", "crm_why", row.customer.customer_id)
            for row in rows[:MAX_BUTTONS]
        ],
        private=False,
        customer_ids=current_ids,
        footer=(
            f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}. "
            f"`{settings.slash_command} why <customer>` gives every reason."
        ),
    )
    summary = {
        "run_id": run.id,
        "as_of": run.as_of.isoformat(),
        "entries": [
            {
                "customer_id": row.customer.customer_id,
                "rank": rank,
                "churn_risk": row.score.churn_risk,
                "value_at_risk": row.score.value_at_risk,
            }
            for rank, row in enumerate(rows, start=1)
        ],
        "changes": {
            "new": new_ids,
            "risk_up": sorted(risk_up),
            "recovered": [r[0] for r in recovered],
        },
    }
    return Digest(kind, period, reply, summary, current_ids)


def _recovered(
    engine: Engine, run: ModelRun, previous: _Previous | None, current: set[str]
) -> list[tuple[str, str, float, float]]:
    """Accounts on the last list that left it with their risk down: (id, name, before, now)."""
    if previous is None:
        return []
    gone = [cid for cid in previous.entries if cid not in current]
    if not gone:
        return []
    with read_session(engine) as session:
        found = session.execute(
            select(Customer, col(CustomerScore.churn_risk))
            .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
            .where(
                col(CustomerScore.run_id) == run.id,
                col(Customer.customer_id).in_(gone),
                col(Customer.erased_at).is_(None),
            )
        ).all()
    recovered = []
    for customer, risk_now in found:
        before = previous.entries[customer.customer_id].get("churn_risk") or 0.0
        if risk_now is not None and before - risk_now >= RISK_CHANGE:
            recovered.append((customer.customer_id, _name(customer), before, risk_now))
    return sorted(recovered, key=lambda r: r[2] - r[3], reverse=True)


def _changes_line(
    previous: _Previous | None,
    new_ids: list[str],
    left: list[str],
    risk_up: dict[str, float],
    recovered: list[tuple[str, str, float, float]],
) -> str:
    if previous is None:
        return "First digest here: changes are shown from the next one on."
    parts = [f"{len(new_ids)} new on the list", f"{len(risk_up)} with risk up"]
    parts.append(f"{len(recovered)} recovered")
    # The others that left the list were overtaken; their risk did not fall much.
    overtaken = len(left) - len(recovered)
    if overtaken > 0:
        parts.append(f"{overtaken} overtaken by others")
    line = f"Since the last digest ({previous.period}): " + ", ".join(parts) + "."
    if recovered:
        shown = [
            f"{name} ({cid}) {_percent(before)} → {_percent(now)}"
            for cid, name, before, now in recovered[:5]
        ]
        line += " Recovered: " + "; ".join(shown) + "."
    return line


def build_influencer_digest(
    engine: Engine, settings: Settings, *, channel: str, period: str
) -> Digest | None:
    """The top influencers, the newcomers to the list, and the communities they lead."""
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return None
        rows = queries.influencers(session=session, run=run, limit=settings.digest_size)
        communities = _community_regions(
            session, run, {r.score.community for r in rows if r.score.community is not None}
        )
    previous = _previous_digest(engine, INFLUENCERS, channel, period)
    ids = [row.customer.customer_id for row in rows]
    newcomers = [cid for cid in ids if previous is not None and cid not in previous.entries]
    table_rows = []
    for rank, row in enumerate(rows, start=1):
        score = row.score
        community = "—"
        if score.community is not None and score.community_size:
            region = communities.get(score.community)
            community = f"hub of {score.community_size:,}" + (f" ({region})" if region else "")
        table_rows.append(
            [
                str(score.influence_rank or rank),
                f"{_name(row.customer)} ({row.customer.customer_id})",
                f"{score.referred_customers:,}",
                f"{score.referred_active:,}",
                _money(score.referred_spend),
                community,
                "new" if row.customer.customer_id in newcomers else "",
            ]
        )
    if rows:
        lead = f"*{len(rows)}* customers whose referrals and purchases move others the most."
    else:
        lead = "No customer has measurable influence yet (no referrals in the data)."
    if previous is None:
        change = "First digest here: newcomers are shown from the next one on."
    elif newcomers:
        names = {row.customer.customer_id: _name(row.customer) for row in rows}
        change = f"New on the list since {previous.period}: " + ", ".join(
            f"{names[cid]} ({cid})" for cid in newcomers
        )
    else:
        change = f"No newcomers since {previous.period}."
    reply = Reply(
        title=f"Influencers · {period}",
        text=mask_pii(f"{lead}\n{change}"),
        table=Table(
            columns=[
                "#",
                "Customer",
                "Referred",
                "Still active",
                "Their spend",
                "Community",
                "Change",
            ],
            rows=[[mask_pii(c) for c in r] for r in table_rows],
        )
        if rows
        else None,
        buttons=[
            Button(
                f"Open {_clip(_name(row.customer), 40)}", "crm_customer", row.customer.customer_id
            )
            for row in rows[:MAX_BUTTONS]
        ],
        private=False,
        customer_ids=ids,
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}. "
        "Influence = PageRank over referrals and co-purchases.",
    )
    summary = {
        "run_id": run.id,
        "as_of": run.as_of.isoformat(),
        "entries": [
            {
                "customer_id": row.customer.customer_id,
                "rank": rank,
                "influence": row.score.influence,
                "community": row.score.community,
            }
            for rank, row in enumerate(rows, start=1)
        ],
        "newcomers": newcomers,
    }
    return Digest(INFLUENCERS, period, reply, summary, ids)


def _community_regions(session: Any, run: ModelRun, communities: set[int]) -> dict[int, str]:
    """ "mostly EMEA" for each community whose members are mostly in one region."""
    if not communities:
        return {}
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for community, region, members in session.execute(
        select(col(CustomerScore.community), col(Customer.region), func.count())
        .join(Customer, col(Customer.id) == col(CustomerScore.customer_pk))
        .where(
            col(CustomerScore.run_id) == run.id,
            col(CustomerScore.community).in_(sorted(communities)),
        )
        .group_by(col(CustomerScore.community), col(Customer.region))
    ).all():
        counts[int(community)][region or "no region"] += int(members)
    described = {}
    for community, regions in counts.items():
        region, members = regions.most_common(1)[0]
        if region != "no region" and members * 2 > sum(regions.values()):
            described[community] = f"mostly {region}"
    return described


def owners_to_message(engine: Engine, settings: Settings) -> list[str]:
    """Account owners with accounts at risk whose owner field is a Slack user id."""
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return []
        owners = session.execute(
            select(col(Customer.owner))
            .join(CustomerScore, col(CustomerScore.customer_pk) == col(Customer.id))
            .where(
                col(CustomerScore.run_id) == run.id,
                col(CustomerScore.value_at_risk) > 0,
                col(Customer.erased_at).is_(None),
                col(Customer.owner).is_not(None),
            )
            .distinct()
        ).scalars()
        # An email cannot be messaged without a users.lookupByEmail scope; skip it.
        return sorted({o.strip() for o in owners if looks_like_slack_user(o)})


# ---------------------------------------------------------------------------------------
# Slack: the client with retries, and finding a digest that already landed


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


def slack_client(
    settings: Settings,
    client: WebClient | None = None,
    *,
    retries: int = SLACK_RETRIES,
    interval: RetryIntervalCalculator | None = None,
    timeout: int = SLACK_TIMEOUT_SECONDS,
) -> WebClient:
    """A Web API client for posting digests: the bot's token and base URL (from `client`
    when given, else settings) with bounded retries of 429, 500/503 and connection errors.

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
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=retries),
            _CheckedServerErrorRetry(check, max_retry_count=retries, interval_calculator=backoff),
            _CheckedConnectionRetry(check, max_retry_count=retries, interval_calculator=backoff),
        ],
    )


def has_retry_handlers(client: WebClient) -> bool:
    """Whether `client` came from `slack_client` (retries and the delivery check)."""
    return any(isinstance(getattr(h, "check", None), DeliveryCheck) for h in client.retry_handlers)


def _delivery_check(client: WebClient) -> DeliveryCheck:
    for handler in client.retry_handlers:
        check = getattr(handler, "check", None)
        if isinstance(check, DeliveryCheck):
            return check
    return DeliveryCheck(client)


# ---------------------------------------------------------------------------------------
# Posting exactly once


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
        text = {
            "posted": f"{what} was posted to {where} (message {self.ts}).",
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


@dataclass
class _Claim:
    row_id: int
    attempts: int
    # An earlier attempt exists: look for its message in the channel before posting.
    look_first: bool
    # That attempt's process died mid-post: post only if the look says it did not land.
    must_confirm: bool


def _claim(
    engine: Engine, kind: str, channel: str, period: str, now: datetime
) -> _Claim | DigestOutcome:
    """Take the right to post this digest, or say why not (posted, in progress...)."""
    try:
        with write_session(engine) as session:
            row = DigestLog(
                kind=kind,
                channel=channel,
                period=period,
                status="pending",
                attempts=1,
                created_at=now,
            )
            session.add(row)
            session.flush()
            assert row.id is not None
            return _Claim(row.id, 1, look_first=False, must_confirm=False)
    except IntegrityError:
        pass
    with read_session(engine) as session:
        existing = session.execute(
            select(DigestLog).where(
                col(DigestLog.kind) == kind,
                col(DigestLog.channel) == channel,
                col(DigestLog.period) == period,
            )
        ).scalar_one()
    outcome = DigestOutcome(
        kind, channel, period, existing.status, ts=existing.message_ts, attempts=existing.attempts
    )
    if existing.status == "posted":
        outcome.status = "already_posted"
        return outcome
    if existing.status == "pending" and existing.created_at > now - STALE_PENDING:
        outcome.status = "in_progress"
        return outcome
    # A failed row, or a pending one whose process died: take it over, exactly one taker
    # (the attempts count is the guard, as datetimes lose precision on some databases).
    assert existing.id is not None
    with write_session(engine) as session:
        taken = session.execute(
            update(DigestLog)
            .where(
                col(DigestLog.id) == existing.id,
                col(DigestLog.status) == existing.status,
                col(DigestLog.attempts) == existing.attempts,
            )
            .values(status="pending", attempts=existing.attempts + 1, created_at=now)
        )
    if not getattr(taken, "rowcount", 0):
        outcome.status = "in_progress"
        return outcome
    crashed = existing.status == "pending"
    if crashed:
        log.warning(
            "digest %s was left pending since %s (a crash while posting); recovering it",
            digest_key(kind, channel, period),
            existing.created_at,
        )
    return _Claim(existing.id, existing.attempts + 1, look_first=True, must_confirm=crashed)


def _finish(
    engine: Engine,
    row_id: int,
    *,
    status: str,
    now: datetime,
    ts: str | None = None,
    error: str | None = None,
    digest: Digest | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "error": (error or "")[:500] or None}
    if status == "posted":
        values.update(posted_at=now, message_ts=ts)
        if digest is not None:
            values.update(summary=digest.summary, customer_ids=digest.customer_ids[:200])
    with write_session(engine) as session:
        session.execute(update(DigestLog).where(col(DigestLog.id) == row_id).values(**values))


def _slack_error(exc: Exception) -> tuple[str, bool]:
    """The error in words, and whether Slack might have acted on the request anyway."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", None)
        error = exc.response.get("error") if exc.response is not None else None
        words = f"Slack answered {status}" + (f" ({error})" if error else "")
        return words, bool(status and status >= 500)
    return f"connection to Slack failed: {type(exc).__name__}: {exc}", True


def post_once(
    engine: Engine,
    client: WebClient,
    digest: Digest,
    *,
    channel: str,
    clock: Clock = utc_now,
) -> DigestOutcome:
    """Post `digest` to `channel` unless this (kind, channel, period) was posted already."""
    kind, period = digest.kind, digest.period
    key = digest_key(kind, channel, period)
    claim = _claim(engine, kind, channel, period, clock())
    if isinstance(claim, DigestOutcome):
        log.info("digest %s not posted: %s", key, claim.status)
        return claim
    outcome = DigestOutcome(kind, channel, period, "pending", attempts=claim.attempts)
    check = _delivery_check(client)
    if claim.look_first:
        try:
            found = check.find(channel, key)
        except Exception as exc:
            if claim.must_confirm:
                error = (
                    "outcome unknown: an earlier attempt stopped while posting and the "
                    f"channel's history cannot be read ({_slack_error(exc)[0]}), so it is "
                    "not re-posted to avoid a duplicate; check the channel and re-send "
                    "if it is missing"
                )
                _finish(engine, claim.row_id, status="failed", now=clock(), error=error)
                outcome.status, outcome.error = "failed", error
                return outcome
            # An earlier attempt that Slack refused: posting again is the lesser risk.
            log.info("digest %s: channel history unreadable (%s); posting again", key, exc)
            found = None
        if found is not None:
            _finish(engine, claim.row_id, status="posted", now=clock(), ts=found, digest=digest)
            outcome.status, outcome.ts = "already_posted", found
            return outcome
    # A channel post: rendered as Block Kit with PII masked and Slack markup escaped.
    rendered = slack_message(digest.reply, shared=True)
    try:
        response = client.chat_postMessage(
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
                found = check.find(channel, key)
            except Exception:
                found = None
        if found is not None:
            _finish(engine, claim.row_id, status="posted", now=clock(), ts=found, digest=digest)
            outcome.status, outcome.ts = "posted", found
            return outcome
        error = f"{words} (after up to {SLACK_RETRIES} retries)"
        log.error("digest %s failed: %s", key, error)
        _finish(engine, claim.row_id, status="failed", now=clock(), error=error)
        outcome.status, outcome.error = "failed", error
        return outcome
    ts = str(response.get("ts"))
    _finish(engine, claim.row_id, status="posted", now=clock(), ts=ts, digest=digest)
    log.info("digest %s posted (ts %s)", key, ts)
    outcome.status, outcome.ts = "posted", ts
    return outcome


def send_digest(
    engine: Engine,
    settings: Settings,
    client: WebClient | None,
    kind: str,
    channel: str,
    *,
    clock: Clock = utc_now,
    period: str | None = None,
    dry_run: bool = False,
) -> DigestOutcome:
    """Build and post one digest (and, for at-risk with CRMBOT_DIGEST_DM_OWNERS, one DM per
    account owner), each exactly once per period. `dry_run` builds without posting."""
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
        return DigestOutcome(kind, channel, period, "dry_run", reply=digest.reply)
    if client is None:
        raise ValueError("posting a digest needs a Slack client")
    outcome = post_once(engine, client, digest, channel=channel, clock=clock)
    outcome.reply = digest.reply
    if kind == AT_RISK and settings.digest_dm_owners:
        for owner in owners_to_message(engine, settings):
            owner_digest = build_at_risk_digest(
                engine, settings, channel=owner, period=period, owner=owner
            )
            if owner_digest is not None:
                outcome.owner_dms.append(
                    post_once(engine, client, owner_digest, channel=owner, clock=clock)
                )
    return outcome
