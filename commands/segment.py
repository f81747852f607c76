"""`/crm segment [name]`: segment sizes, value and migration; one segment's top customers."""

from __future__ import annotations

from rapidfuzz import fuzz, process, utils

from crmbot import queries, runs
from crmbot.chat.commandkit import (
    count_arg,
    list_export_reply,
    no_model_reply,
    reader_scope,
    usage_reply,
)
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Chart, Reply, Table
from crmbot.reply.export import export_button
from crmbot.reply.format import clip, money, percent
from crmbot.reply.rows import SEGMENT_MEMBERS
from crmbot.reply.rows import table as rows_table

USAGE = "segment [name] [N]"
TOP_CUSTOMERS = 10
MAX_MIGRATIONS = 8


@command("segment", usage=USAGE, aliases=("segments", "seg"))
def segment_command(request: Request) -> Reply:
    """Segment sizes, value and migration since the last model, or one segment's best.

    Without a name: every RFM segment with its size, total CLV, average churn risk and the
    change since the previous model run, the largest moves between segments, and a bar
    chart. With a name (`segment champions`): that segment's most valuable customers;
    `--csv` (or the "Export all as CSV" button) sends every customer of it as a CSV file.
    """
    count, words = count_arg(request.args, default=TOP_CUSTOMERS, maximum=50)
    name = " ".join(words)
    with read_session(request.engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        scope = reader_scope(request)
        if name:
            names = queries.segment_names(session=session, run=run)
            segment = _match(name, names)
            if segment is None:
                return usage_reply(
                    request,
                    USAGE,
                    f"There is no segment '{clip(name, 40)}'. Segments: {', '.join(names)}.",
                )
            if request.export:
                return list_export_reply(
                    request,
                    session,
                    run,
                    scope,
                    title=f"Segment {segment}",
                    kind="top_value",
                    segment=segment,
                )
            members = queries.top_value(
                session=session,
                run=run,
                limit=count,
                scope=scope,
                segment=segment,
            )
            moved_in, moved_out = queries.segment_flows(
                session=session, run=run, scope=scope, segment=segment
            )
            reply = _one_segment(request, run.id, segment, members, moved_in, moved_out)
            if len(members) == count:  # a full list: the segment may hold more
                reply.buttons.insert(0, export_button("crm_segment", segment))
            return reply
        summary = queries.segment_summary(session=session, run=run, scope=scope)
    return _overview(summary, own_book=not scope.is_everyone)


def _match(name: str, names: list[str]) -> str | None:
    for candidate in names:
        if candidate.lower() == name.lower():
            return candidate
    best = process.extractOne(
        name, names, scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=75
    )
    return str(best[0]) if best else None


def _overview(summary: queries.SegmentSummary, *, own_book: bool) -> Reply:
    total = summary.total_customers or 1
    has_previous = summary.has_previous
    columns = ["Segment", "Customers", "Share", "Total CLV", "Avg churn", "At risk"]
    if has_previous:
        columns.append("Change")
    rows = []
    for row in summary.rows:
        cells = [
            clip(row.segment, 20),
            f"{row.customers:,}",
            percent(row.customers / total),
            money(row.total_clv),
            percent(row.average_churn_risk),
            money(row.value_at_risk),
        ]
        if has_previous:
            change = row.customers - (row.previous_customers or 0)
            cells.append(f"{change:+,}")
        rows.append(cells)
    moves = [
        f"• {m.from_segment} → {m.to_segment}: {m.customers:,}"
        for m in summary.migrations[:MAX_MIGRATIONS]
    ]
    if moves:
        text = "Largest moves since the previous model:\n" + "\n".join(moves)
    elif has_previous:
        text = "No customer changed segment since the previous model."
    else:
        text = "This is the first model, so there is no migration to show yet."
    return Reply(
        title=f"Segments — {summary.total_customers:,} customers"
        + (" in your book" if own_book else ""),
        text=text,
        table=Table(columns=columns, rows=rows),
        chart=Chart(
            kind="bar",
            title="Customers per segment",
            labels=[row.segment for row in summary.rows],
            values=[float(row.customers) for row in summary.rows],
            y_label="customers",
        ),
        buttons=[
            Button(f"{clip(row.segment, 30)}", "crm_segment", row.segment)
            for row in summary.rows[:5]
        ],
        footer=f"Model run {summary.run.id}, data as of {summary.run.as_of:%Y-%m-%d}.",
    )


def _one_segment(
    request: Request,
    run_id: int | None,
    segment: str,
    members: list[queries.ScoredCustomer],
    moved_in: int,
    moved_out: int,
) -> Reply:
    table = rows_table(members, SEGMENT_MEMBERS)
    valued = any(m.score.clv is not None for m in members)
    title = f"Segment {segment} — " + (
        f"top {len(members)} by CLV" if valued else f"{len(members)} customers (no purchase yet)"
    )
    return Reply(
        title=title,
        text=f"Since the previous model: {moved_in:,} moved in, {moved_out:,} moved out.",
        table=table if members else None,
        buttons=[Button("All segments", "crm_segment", "")],
        customer_ids=[m.customer.customer_id for m in members],
        footer=f"Model run {run_id}.",
    )
