"""`/crm audit [N]`: the latest audit log rows (admins only)."""

from __future__ import annotations

from crmbot import queries
from crmbot.chat.commandkit import count_arg, usage_reply
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Reply, Table
from crmbot.reply.format import clip

USAGE = "audit [N]"


@command("audit", usage=USAGE, admin_only=True, aliases=("log",))
def audit_command(request: Request) -> Reply:
    """The latest audit log rows: who asked what, where, about whom, and how it went.

    Arguments are stored with emails and phone numbers masked; customers are listed by
    their ids only.
    """
    count, rest = count_arg(request.args, default=20, maximum=100)
    if rest:
        return usage_reply(request, USAGE, f"I only take a number here, not '{clip(rest[0])}'.")
    with read_session(request.engine) as session:
        rows = queries.audit_rows(session=session, limit=count)
    if not rows:
        return Reply(title="Audit log", text="The audit log is empty.")
    table = Table(
        columns=[
            "When (UTC)",
            "User",
            "Where",
            "Command",
            "Arguments",
            "Outcome",
            "ms",
            "Customers",
        ],
        rows=[
            [
                f"{row.at:%m-%d %H:%M:%S}",
                clip(row.user_id, 12),
                clip(row.channel_id or row.transport, 12),
                clip(row.command, 14),
                clip(row.arguments, 24),
                row.outcome,
                f"{row.duration_ms:.0f}" if row.duration_ms is not None else "",
                clip(", ".join(row.customer_ids or []), 24),
            ]
            for row in rows
        ],
    )
    return Reply(title=f"Audit log — last {len(rows)}", table=table)
