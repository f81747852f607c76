"""The daily at-risk digest: the accounts with the most value at risk, and what changed
since the last digest in the same place (new on the list, risk up, recovered).

It is posted as a header (the title, what changed, the footer) followed by one message per
account, each at the channel's top level: a row's buttons (Why?, Log a touch, Follow-up,
Follow, Snooze) answer in that row's own thread, and each account is discussed apart."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.actions.follows import snoozed_customers
from crmbot.core.db import read_session
from crmbot.core.models import ModelRun
from crmbot.core.privacy import mask_pii
from crmbot.digests.base import AT_RISK, AT_RISK_DM, Digest, DigestRow
from crmbot.digests.ledger import Previous, previous_digest
from crmbot.queries.scope import EVERYONE, Scope
from crmbot.reply import Button, Reply
from crmbot.reply.acting import account_buttons
from crmbot.reply.format import money, percent, points
from crmbot.reply.rows import AT_RISK_DIGEST, customer_cells, display_name, top_reason

if TYPE_CHECKING:
    from crmbot.core.config import Settings

# A change in churn risk at least this large (in probability) is called "risk up".
RISK_CHANGE = 0.05
# The cells of `AT_RISK_DIGEST` a row message shows in its heading; the others follow.
ROW_HEADING = ("#", "Customer", "Owner")
ROW_REASON_CHARS = 200


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
    # An owner's DM covers their book only, also for the accounts that left the list.
    scope = Scope.book([owner]) if owner else EVERYONE
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return None
        # An owner's snoozed accounts are left out of their DM (`crmbot.actions.follows`).
        snoozed = (
            snoozed_customers(session=session, user_id=owner, as_of=_day(period))
            if owner
            else set()
        )
        rows = queries.at_risk(
            session=session, run=run, scope=scope, limit=settings.digest_size + len(snoozed)
        )
        rows = [row for row in rows if row.customer.id not in snoozed][: settings.digest_size]
    previous = previous_digest(engine, kind, channel, period)
    current_ids = [row.customer.customer_id for row in rows]
    new_ids, risk_up = _changes(rows, previous)
    recovered = _recovered(engine, run, scope, previous, set(current_ids))
    changes = {
        row.customer.customer_id: "new"
        if row.customer.customer_id in new_ids
        else points(risk_up[row.customer.customer_id], row.score.churn_risk or 0.0)
        if row.customer.customer_id in risk_up
        else ""
        for row in rows
    }
    total = sum(row.score.value_at_risk or 0.0 for row in rows)
    whose = "your" if owner else "the"
    if rows:
        lead = (
            f"*{len(rows)}* of {whose} accounts with the most value at risk: "
            f"*{money(total)}* in all (CLV × churn risk). One message per account follows: "
            "discuss each in its thread."
        )
    else:
        lead = f"No accounts at risk in {whose} book in the current model."
    left = [cid for cid in previous.entries if cid not in current_ids] if previous else []
    lines = [lead, _changes_line(previous, new_ids, left, risk_up, recovered)]
    # The header: what the list is and what changed; each account follows as a message of
    # its own (`DigestRow`), so its buttons answer in its own thread.
    reply = Reply(
        title=f"{'Your accounts' if owner else 'Accounts'} at risk · {period}",
        text=mask_pii("\n".join(line for line in lines if line)),
        private=False,
        customer_ids=current_ids,
        footer=(
            f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}. "
            f"`{settings.slash_command} why <customer>` gives every reason."
        ),
    )
    digest_rows = [
        DigestRow(
            row.customer.customer_id,
            row_message(row, rank, changes[row.customer.customer_id], with_owner=not owner),
        )
        for rank, row in enumerate(rows, start=1)
    ]
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
    return Digest(kind, period, reply, summary, current_ids, rows=digest_rows)


def row_message(row: queries.ScoredCustomer, rank: int, change: str, *, with_owner: bool) -> Reply:
    """One account of the digest as a message of its own: its rank, name and owner (by
    name, in the heading, so nobody is notified), the other cells of `AT_RISK_DIGEST`
    ("Change": new on the list, or how far its risk rose), and the buttons that explain
    it and act on it. Masked: it is a channel post."""
    # A message of its own has room for the whole top reason (a table's cell is clipped).
    cells = {
        **customer_cells(row, rank),
        "Change": change,
        "Top reason": top_reason(row.score, row.raised, limit=ROW_REASON_CHARS),
    }
    customer_id = row.customer.customer_id
    title = f"{cells['#']}. {cells['Customer']}"
    if with_owner and "Owner" in AT_RISK_DIGEST:
        title += f" · {cells['Owner']}"
    facts = [
        f"*{name}:* {cells[name]}"
        for name in AT_RISK_DIGEST
        if name not in ROW_HEADING and cells[name]
    ]
    return Reply(
        title=mask_pii(title),
        text=mask_pii(" · ".join(facts)),
        buttons=[Button("Why?", "crm_why", customer_id), *account_buttons(customer_id)],
        private=False,
        customer_ids=[customer_id],
    )


def _day(period: str) -> date:
    """The day a daily digest's period names (its ISO date). A period typed otherwise
    (`crmbot digest send --period`) gives the earliest day: every snooze counts."""
    try:
        return date.fromisoformat(period)
    except ValueError:
        return date.min


def _changes(
    rows: list[queries.ScoredCustomer], previous: Previous | None
) -> tuple[list[str], dict[str, float]]:
    """Who is new on the list, and whose risk rose (with the risk they had before)."""
    new_ids: list[str] = []
    risk_up: dict[str, float] = {}
    if previous is None:
        return new_ids, risk_up
    for row in rows:
        before = previous.entries.get(row.customer.customer_id)
        if before is None:
            new_ids.append(row.customer.customer_id)
        elif (row.score.churn_risk or 0.0) - (before.get("churn_risk") or 0.0) >= RISK_CHANGE:
            risk_up[row.customer.customer_id] = before.get("churn_risk") or 0.0
    return new_ids, risk_up


def _recovered(
    engine: Engine, run: ModelRun, scope: Scope, previous: Previous | None, current: set[str]
) -> list[tuple[str, str, float, float]]:
    """Accounts on the last list that left it with their risk down: (id, name, before, now)."""
    if previous is None:
        return []
    gone = [cid for cid in previous.entries if cid not in current]
    if not gone:
        return []
    with read_session(engine) as session:
        found = queries.churn_risks(session=session, run=run, scope=scope, customer_ids=gone)
    recovered = []
    for customer, risk_now in found:
        before = previous.entries[customer.customer_id].get("churn_risk") or 0.0
        if risk_now is not None and before - risk_now >= RISK_CHANGE:
            recovered.append((customer.customer_id, display_name(customer), before, risk_now))
    return sorted(recovered, key=lambda r: r[2] - r[3], reverse=True)


def _changes_line(
    previous: Previous | None,
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
            f"{name} ({cid}) {percent(before)} → {percent(now)}"
            for cid, name, before, now in recovered[:5]
        ]
        line += " Recovered: " + "; ".join(shown) + "."
    return line
