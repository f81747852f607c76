"""`/crm why <customer>`: why the model sees a customer the way it does, in full."""

from __future__ import annotations

from crmbot import queries, runs
from crmbot.chat.commandkit import Resolved, no_model_reply, resolve_customer
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Reply
from crmbot.reply.card import p_alive_text, since_text, verdict
from crmbot.reply.format import clip, count, day, money, number, percent

USAGE = "why <id | email | name>"


@command("why", usage=USAGE, aliases=("reasons", "explain"))
def why_command(request: Request) -> Reply:
    """The reasons behind a customer's churn risk, segment and value, in full.

    Lists every churn reason the model gave, the recency, frequency and spend behind the
    RFM segment, and the pieces of the CLV estimate.
    """
    with read_session(request.engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        found = resolve_customer(session, request, request.text, usage=USAGE)
        if not isinstance(found, Resolved):
            return found
        card = queries.customer_card(session=session, customer=found.customer, run=run)
    customer, score = card.customer, card.score
    title = f"Why: {clip(customer.name or customer.customer_id, 100)} ({customer.customer_id})"
    if score is None:
        return Reply(
            title=title,
            text="This customer is not in the active model yet (added after its data cut-off).",
            customer_ids=[customer.customer_id],
        )
    facts = card.facts
    reasons = score.churn_reasons or []
    typical = ""
    if facts.typical_risk is not None and score.churn_risk is not None:
        typical = f" (typical customer {percent(facts.typical_risk)})"
    lines = [f"*Churn risk {percent(score.churn_risk)}*{typical}"]
    way = verdict(score, facts)
    if reasons:
        if way is not None:
            lines.append("What keeps it low:" if way == "kept low by" else "What raises it:")
        lines += [f"{i}. {reason}" for i, reason in enumerate(reasons, start=1)]
    else:
        lines.append(
            "No single factor stands out: the risk is close to the typical customer's."
            if way is not None
            else "The model gave no specific reason (risk close to the base rate)."
        )
    if score.value_at_risk is not None:
        lines.append(f"Value at risk: {money(score.value_at_risk)} = CLV × churn risk.")
    segment_lines = [f"*Segment {score.segment}*"]
    if score.r_score is not None:
        # M scores total spend (what the segment is cut on), not the repeat-purchase mean
        # CLV uses, which is 0 for a one-time buyer.
        segment_lines.append(
            f"Recency score {score.r_score}/5 (last purchase "
            f"{count(round(score.recency_days or 0), 'day')} before the data cut-off), "
            f"frequency {score.f_score}/5 ({count(score.frequency, 'purchase day')}), "
            f"monetary {score.m_score}/5 ({money(score.total_spend)} spent in all)."
        )
    if score.previous_segment and score.previous_segment != score.segment:
        segment_lines.append(f"Moved from {score.previous_segment} since the previous model.")
    if score.cluster_label:
        segment_lines.append(f"Behaviour cluster {score.cluster}: {score.cluster_label}.")
    clv = money(score.clv) + (
        " if they keep buying" if not facts.dropout_estimated and score.clv is not None else ""
    )
    value_lines = [f"*CLV {clv}*"]
    value_lines.append(
        f"Expected purchases {number(score.expected_purchases)}, "
        f"expected spend per purchase {money(score.expected_spend)}; "
        f"{p_alive_text(score, facts)}."
    )
    if not facts.dropout_estimated:
        value_lines.append(
            "Dropout could not be estimated on this book, so CLV assumes the customer keeps "
            "buying; churn risk is the measure of whether they are leaving."
        )
    satisfaction = []
    if score.csat_latest is not None or score.nps_latest is not None:
        satisfaction.append(
            f"*Satisfaction* latest CSAT {number(score.csat_latest)}, "
            f"latest NPS {score.nps_latest if score.nps_latest is not None else '—'}"
            + (f" ({score.nps_category})" if score.nps_category else "")
            + (f", text sentiment {score.sentiment:+.2f}" if score.sentiment is not None else "")
            + "."
        )
    text = "\n".join(lines) + "\n\n" + "\n".join(segment_lines) + "\n\n" + "\n".join(value_lines)
    if satisfaction:
        text += "\n\n" + "\n".join(satisfaction)
    since = since_text(card.since)
    if since is not None:
        text += f"\n\n*Since the model's day ({day(run.as_of)})*: {since} — not in these scores."
    return Reply(
        title=title,
        text=text,
        buttons=[
            Button("Customer card", "crm_customer", customer.customer_id),
            Button("Similar customers", "crm_similar", customer.customer_id),
        ],
        customer_ids=[customer.customer_id],
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}.",
    )
