"""The daily at-risk digest: the accounts with the most value at risk, and what changed
since the last digest in the same place (new on the list, risk up, recovered)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.actions.follows import snoozed_customers
from crmbot.core.db import read_session
from crmbot.core.models import ModelRun
from crmbot.core.privacy import mask_pii
from crmbot.digests.base import AT_RISK, AT_RISK_DM, MAX_BUTTONS, Digest, masked
from crmbot.digests.ledger import Previous, previous_digest
from crmbot.queries.scope import EVERYONE, Scope
from crmbot.reply import Button, Reply
from crmbot.reply.acting import act_on_rows
from crmbot.reply.format import money, percent, points
from crmbot.reply.rows import AT_RISK_DIGEST, customer_label, display_name
from crmbot.reply.rows import table as rows_table

if TYPE_CHECKING:
    from crmbot.core.config import Settings

# A change in churn risk at least this large (in probability) is called "risk up".
RISK_CHANGE = 0.05


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
    columns = [c for c in AT_RISK_DIGEST if not (owner and c == "Owner")]
    changes = [
        "new"
        if row.customer.customer_id in new_ids
        else points(risk_up[row.customer.customer_id], row.score.churn_risk or 0.0)
        if row.customer.customer_id in risk_up
        else ""
        for row in rows
    ]
    table = rows_table(rows, columns, extra={"Change": changes})
    total = sum(row.score.value_at_risk or 0.0 for row in rows)
    whose = "your" if owner else "the"
    if rows:
        lead = (
            f"*{len(rows)}* of {whose} accounts with the most value at risk: "
            f"*{money(total)}* in all (CLV × churn risk)."
        )
    else:
        lead = f"No accounts at risk in {whose} book in the current model."
    left = [cid for cid in previous.entries if cid not in current_ids] if previous else []
    lines = [lead, _changes_line(previous, new_ids, left, risk_up, recovered)]
    reply = Reply(
        title=f"{'Your accounts' if owner else 'Accounts'} at risk · {period}",
        text=mask_pii("\n".join(line for line in lines if line)),
        table=masked(table) if rows else None,
        buttons=[
            Button(f"Why? {display_name(row.customer)}", "crm_why", row.customer.customer_id)
            for row in rows[:MAX_BUTTONS]
        ],
        # Log a touch, follow-up, follow, snooze for the first rows (personal: a form or
        # an answer only the clicker sees, also under a channel's digest).
        sections=act_on_rows(
            [(row.customer.customer_id, customer_label(row.customer)) for row in rows]
        ),
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
