"""`/crm similar <customer>`: customers who behave like this one."""

from __future__ import annotations

from crmbot import queries, runs
from crmbot.chat.commandkit import Resolved, no_model_reply, reader_scope, resolve_customer
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Reply
from crmbot.reply.format import clip
from crmbot.reply.rows import SIMILAR_LIST, rfm
from crmbot.reply.rows import table as rows_table

USAGE = "similar <id | email | name>"


@command("similar", usage=USAGE, aliases=("lookalikes", "like"))
def similar_command(request: Request) -> Reply:
    """Customers who behave like this one: same behaviour cluster, nearest RFM scores.

    Useful to find look-alikes of a good account (who else to offer the same product)
    or of a lost one (who might follow).
    """
    with read_session(request.engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        found = resolve_customer(session, request, request.text, usage=USAGE)
        if not isinstance(found, Resolved):
            return found
        customer = found.customer
        own, rows = queries.similar_customers(
            session=session, run=run, scope=reader_scope(request), customer=customer, limit=8
        )
    name = clip(customer.name or customer.customer_id, 60)
    if own is None:
        return Reply(
            title=f"Similar to {name}",
            text="This customer is not in the active model yet.",
            customer_ids=[customer.customer_id],
        )
    basis = (
        f"cluster {own.cluster}" + (f" ({own.cluster_label})" if own.cluster_label else "")
        if own.cluster is not None
        else f"segment {own.segment}"
    )
    if not rows:
        return Reply(
            title=f"Similar to {name}",
            text=f"No other customer shares {basis}.",
            customer_ids=[customer.customer_id],
        )
    table = rows_table(rows, SIMILAR_LIST)
    return Reply(
        title=f"Customers similar to {name} ({customer.customer_id})",
        text=f"Same {basis}; closest RFM scores (theirs: {rfm(own)}), then closest CLV.",
        table=table,
        buttons=[Button("Customer card", "crm_customer", customer.customer_id)],
        customer_ids=[customer.customer_id] + [r.customer.customer_id for r in rows],
        footer=f"Model run {run.id}.",
    )
