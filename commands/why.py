"""`/crm why <customer>`: why the model sees a customer the way it does, in full."""

from __future__ import annotations

from crmbot import queries, runs
from crmbot.chat.commandkit import Resolved, no_model_reply, resolve_customer
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Reply
from crmbot.reply.format import clip, money, number, percent

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
    reasons = score.churn_reasons or []
    lines = [f"*Churn risk {percent(score.churn_risk)}*"]
    if reasons:
        lines += [f"{i}. {reason}" for i, reason in enumerate(reasons, start=1)]
    else:
        lines.append("The model gave no specific reason (risk close to the base rate).")
    if score.value_at_risk is not None:
        lines.append(f"Value at risk: {money(score.value_at_risk)} = CLV × churn risk.")
    segment_lines = [f"*Segment {score.segment}*"]
    if score.r_score is not None:
        segment_lines.append(
            f"Recency score {score.r_score}/5 (last purchase {number(score.recency_days, 0)} "
            f"days before the data cut-off), frequency {score.f_score}/5 "
            f"({score.frequency} purchase days), monetary {score.m_score}/5 "
            f"({money(score.monetary)} per purchase day)."
        )
    if score.previous_segment and score.previous_segment != score.segment:
        segment_lines.append(f"Moved from {score.previous_segment} since the previous model.")
    if score.cluster_label:
        segment_lines.append(f"Behaviour cluster {score.cluster}: {score.cluster_label}.")
    value_lines = [f"*CLV {money(score.clv)}*"]
    value_lines.append(
        f"Expected purchases {number(score.expected_purchases)}, "
        f"expected spend per purchase {money(score.expected_spend)}, "
        f"probability still active {percent(score.p_alive)}."
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
