"""When a question cannot be placed: say which words were not understood, and offer the
example questions closest to what was asked — never a bare "I don't understand"."""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from crmbot.ask.explain import sanitize

# Questions the parser answers; also the help text's examples.
EXAMPLES: tuple[str, ...] = (
    "which champions in EMEA have churn risk over 50%?",
    "top 10 customers by CLV in EMEA",
    "how many customers moved to At risk since last week?",
    "average order value of Hibernating customers",
    "customers of @maria with no order in 60 days",
    "who referred the most new customers this quarter?",
    "compare churn risk by region",
    "what should I offer customer 123?",
    "revenue by month this year",
    "how many orders last month?",
    "unhappy customers in APAC",
    "which segment has the lowest satisfaction?",
    "customers with more than 5 orders and CLV over 5k",
    "5 riskiest customers in LATAM",
    "customers who moved from Loyal to At risk",
    "how many new customers since March?",
    "total spend of Champions",
    "customers who ordered in the last 30 days",
    "how many open tickets in EMEA?",
    "average time to close tickets by channel",
    "customers with more than 3 tickets",
    "tickets by status",
    "what is our NPS by region?",
    "how many detractors in the Champions segment?",
    "unhappy customers with high CLV",
    "top 5 products by revenue in Q2",
    "who bought the Descaler but not the Milk Frother?",
    "next best product for Champions",
    "orders in June vs May",
    "customers whose churn risk went up",
    "champions not in EMEA",
    "who are my best customers?",
)


def closest_examples(question: str, *, count: int = 3) -> list[str]:
    """The `count` example questions nearest in wording to `question`."""
    matches = process.extract(
        question,
        EXAMPLES,
        scorer=fuzz.token_set_ratio,
        processor=utils.default_process,
        limit=len(EXAMPLES),
    )
    # Ties keep the examples' own order, so the answer is the same every time.
    ranked = sorted(matches, key=lambda m: (-m[1], m[2]))
    return [choice for choice, _score, _index in ranked[:count]]


def not_understood(
    question: str,
    unplaced: Sequence[str],
    problems: Sequence[str] = (),
    *,
    prefix: str = "/crm",
) -> str:
    """The reply to a question that cannot be answered as asked."""
    lines: list[str] = []
    if unplaced:
        words = ", ".join(f"“{sanitize(w, 40)}”" for w in list(unplaced)[:8])
        more = len(unplaced) - 8
        extra = f" and {more} more" if more > 0 else ""
        lines.append(f"I couldn't place {words}{extra} in that question.")
    for problem in problems:
        lines.append(problem[:1].upper() + problem[1:] + ("" if problem.endswith(".") else "."))
    if not lines:
        lines.append("I couldn't work out what to look up.")
    lines.append("Questions I can answer that look close to yours:")
    lines += [f"• `{prefix} ask {example}`" for example in closest_examples(question)]
    return "\n".join(lines)
