"""`/crm ask <question>`: account managers' questions in their own words.

The question is read into a structured query (`crmbot.ask.parse`; optionally a language
model for what the rules cannot place), run with bound parameters through the active
model run (`crmbot.ask.execute`), and answered with the line saying how it was understood,
a table, and — for "compare X by Y" — a bar chart.
"""

from __future__ import annotations

from crmbot import queries, runs
from crmbot.ask.answer import Answer, AskError
from crmbot.ask.execute import execute, load_vocabulary
from crmbot.ask.explain import explanation
from crmbot.ask.llm import LLMUnavailable, translate
from crmbot.ask.parse import MAX_QUESTION_CHARS, Vocabulary, parse_question
from crmbot.ask.query import ENTITY_LABELS, GROUP_LABELS, StructuredQuery, field_label
from crmbot.ask.suggest import EXAMPLES, not_understood
from crmbot.chat.commandkit import (
    Resolved,
    no_model_reply,
    owner_identities,
    reader_scope,
    resolve_customer,
)
from crmbot.chat.registry import Request, command
from crmbot.core.clock import utc_now
from crmbot.core.db import read_session
from crmbot.reply import Button, Chart, Reply, Table
from crmbot.reply.export import MAX_EXPORT_ROWS, export_button, exported_text, write_csv
from crmbot.reply.format import clip, percent

USAGE = "ask <question in your own words>"


@command("ask", usage=USAGE, aliases=("q", "question"))
def ask_command(request: Request) -> Reply:
    """Ask about customers, orders, tickets, satisfaction and products in your own words.

    For example:
    • `ask which champions in EMEA have churn risk over 50%?`
    • `ask top 10 customers by CLV in EMEA`
    • `ask how many customers moved to At risk since last week?`
    • `ask average order value of Hibernating customers`
    • `ask customers of @maria with no order in 60 days`
    • `ask who referred the most new customers this quarter?`
    • `ask compare churn risk by region` (a table and a bar chart)
    • `ask what should I offer customer 123?`
    Every answer starts with how the question was understood, e.g. "Customers · segment =
    Champions · region = EMEA · churn risk > 50% · 12 found", so a misreading shows at once.
    A list longer than a message comes with "Export all N as CSV" (`--csv` does the same).
    """
    question = " ".join(request.text.split())
    prefix = request.settings.slash_command
    if not question:
        examples = "\n".join(f"• `{prefix} ask {e}`" for e in EXAMPLES[:6])
        return Reply.usage(f"Ask a question in your own words, for example:\n{examples}")
    if len(question) > MAX_QUESTION_CHARS:
        return Reply.usage(
            f"That question is {len(question):,} characters; ask it in fewer than "
            f"{MAX_QUESTION_CHARS} (one question at a time), e.g. "
            f"`{prefix} ask compare churn risk by region`."
        )
    scope = reader_scope(request)
    vocab = load_vocabulary(request.engine, scope)
    parsed = parse_question(question, vocab, today=request.today, askers=owner_identities(request))
    query = parsed.query if parsed.ok else None
    via = ""
    if query is None and request.settings.llm_url and not parsed.final:
        query, via = _ask_language_model(request, question, vocab), "language model"
    if query is None:
        return Reply.usage(
            not_understood(question, parsed.unplaced, parsed.problems, prefix=prefix)
        )
    if query.entity == "offer" and (query.customer or query.customer_name):
        return _offer_reply(request, query)
    try:
        answer = execute(
            request.engine,
            query,
            scope=scope,
            row_limit=MAX_EXPORT_ROWS if request.export else None,
        )
    except AskError as error:
        return Reply.error(error.message, outcome=error.outcome)
    if request.export:
        return _export_reply(request, query, answer, via=via)
    reply = _answer_reply(query, answer, via=via)
    if (
        answer.rows
        and not (query.group_by or query.compare_range)
        and len(answer.rows) < answer.found
    ):
        reply.buttons.append(export_button("crm_ask", question, answer.found))
    return reply


def _export_reply(request: Request, query: StructuredQuery, answer: Answer, *, via: str) -> Reply:
    """Every row of the answer (up to the export's limit) as a CSV file."""
    understood = explanation(query, answer.found, note=answer.note)
    if not answer.rows:
        return Reply(
            title=_title(query),
            text=f"{understood}\nNo rows to export: the answer is one number or nothing.",
            footer=f"Read by the {via}." if via else "",
        )
    attachment = write_csv(
        title=_title(query),
        columns=answer.columns,
        rows=answer.rows,
        shared=request.share,
        stamp=utc_now().strftime("%Y%m%d-%H%M%S-%f"),
    )
    found = answer.found if not query.group_by else len(answer.rows)
    return Reply(
        title=_title(query),
        text=f"{understood}\n{exported_text(attachment, found, shared=request.share)}",
        attachment=attachment,
        footer=f"Read by the {via}." if via else "",
    )


def _ask_language_model(
    request: Request, question: str, vocab: Vocabulary
) -> StructuredQuery | None:
    settings = request.settings
    try:
        return translate(
            question,
            vocab,
            today=request.today,
            url=settings.llm_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout_seconds,
        )
    except LLMUnavailable:
        # The rules' own explanation (words not placed, close examples) is the answer.
        return None


def _title(query: StructuredQuery) -> str:
    if query.group_by:
        what = field_label(query.measure) if query.measure else ENTITY_LABELS[query.entity]
        return f"{what[:1].upper()}{what[1:]} by {GROUP_LABELS[query.group_by]}"
    return ENTITY_LABELS[query.entity]


def _answer_reply(query: StructuredQuery, answer: Answer, *, via: str) -> Reply:
    lines = [explanation(query, answer.found, note=answer.note)]
    if answer.value is not None:
        label = answer.value_label[:1].upper() + answer.value_label[1:]
        lines.append(f"{label}: *{answer.value}*")
    shown = len(answer.rows)
    # Grouped answers and two periods compared count the rows behind their figures.
    if answer.rows and not (query.group_by or query.compare_range) and shown < answer.found:
        lines.append(f"Showing the first {shown:,} of {answer.found:,}.")
    if not answer.rows and answer.value is None:
        lines.append("Nothing matches. Loosen a filter or check the names above.")
    chart = None
    if query.chart and answer.chart_labels:
        measure = field_label(query.measure) if query.measure else "count"
        title = _title(query)
        chart = Chart(
            kind="bar",
            title=title,
            labels=answer.chart_labels,
            values=answer.chart_values,
            x_label=GROUP_LABELS.get(query.group_by or "", ""),
            y_label=f"average {measure}" if query.metric == "avg" else measure,
        )
    return Reply(
        title=_title(query),
        text="\n".join(lines),
        table=Table(columns=answer.columns, rows=answer.rows) if answer.rows else None,
        chart=chart,
        customer_ids=answer.customer_ids[:200],
        footer=f"Read by the {via}." if via else "",
    )


def _offer_reply(request: Request, query: StructuredQuery) -> Reply:
    """The customer card's next best products, for "what should I offer customer 123?"."""
    reference = query.customer or query.customer_name or ""
    with read_session(request.engine) as session:
        found = resolve_customer(session, request, reference, usage=USAGE)
        if not isinstance(found, Resolved):
            return found
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        card = queries.customer_card(session=session, customer=found.customer, run=run)
    customer = card.customer
    name = clip(customer.name or customer.customer_id, 60)
    understood = explanation(
        query.with_changes(customer=customer.customer_id, customer_name=None), None
    )
    products = card.offers
    buttons = [Button("Customer card", "crm_customer", customer.customer_id, style="primary")]
    if not products:
        return Reply(
            title=f"What to offer {name}",
            text=f"{understood}\nNo product stands out for {name} yet: nothing they have not "
            "bought is bought often enough alongside what they have.",
            buttons=buttons,
            customer_ids=[customer.customer_id],
        )
    rows = []
    for rank, product in enumerate(products, start=1):
        confidence = product.get("confidence")
        lift = product.get("lift")
        rows.append(
            [
                str(rank),
                clip(str(product.get("name") or product.get("product_id") or "?"), 40),
                percent(float(confidence)) if confidence is not None else "–",
                f"{float(lift):.1f}" if lift is not None else "–",
                clip(str(product.get("reason") or ""), 90) or "–",
            ]
        )
    return Reply(
        title=f"What to offer {name} ({clip(customer.customer_id, 40)})",
        text=understood,
        table=Table(columns=["#", "Product", "Confidence", "Lift", "Why"], rows=rows),
        buttons=buttons,
        customer_ids=[customer.customer_id],
    )
