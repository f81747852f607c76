"""What came of acting on a past at-risk list (`crmbot.runs.outcomes`), in words for
`/crm model`."""

from __future__ import annotations

from datetime import date
from typing import Any

from crmbot.reply.format import clip, count, day, percent, points

CAVEAT = "observational, not causal: who gets a call is chosen, not random"
REASONS_SHOWN = 3


def touched_text(document: dict[str, Any]) -> str:
    """'run 1's at-risk list (2026-03-31, risk ≥ 50%): 416 of 1,044 accounts touched
    within 30 days; 73% of them churned, against 83% of untouched accounts of the same
    predicted risk (▼ 10 pts, ± 5) — observational, not causal: …'."""
    as_of = date.fromisoformat(document["as_of"])
    head = (
        f"run {document['run']}'s at-risk list ({day(as_of)}, risk ≥ "
        f"{percent(document['from_risk'])}): {count(document['touched'], 'account')} of "
        f"{document['accounts']:,} touched within {count(document['window_days'], 'day')}"
    )
    touched, untouched = document.get("touched_churn"), document.get("untouched_churn")
    if touched is None or untouched is None:
        return head + "; too few touched and untouched accounts of the same risk to compare."
    margin = round(float(document.get("margin") or 0.0) * 100)
    clear = abs(float(document["difference"])) > float(document.get("margin") or 0.0)
    verdict = "" if clear else ", within the noise"
    return (
        f"{head}; {percent(touched)} of them churned within {document['horizon_days']} days, "
        f"against {percent(untouched)} of untouched accounts of the same predicted risk "
        f"({points(untouched, touched)}, ± {margin}{verdict}) — {CAVEAT}."
    )


def false_alarm_text(document: dict[str, Any]) -> str | None:
    """'4% of 354 logged outcomes were false alarms; by top reason: "…" 29% of 7, …';
    None when no outcome was logged."""
    alarms = document.get("false_alarms") or {}
    if not alarms.get("outcomes"):
        return None
    text = (
        f"{percent(alarms['rate'])} of {count(alarms['outcomes'], 'logged outcome')} said "
        '"not at risk"'
    )
    reasons = alarms.get("by_reason") or []
    if reasons:
        text += "; by the account's top reason: " + ", ".join(
            f"“{clip(row['reason'], 60)}” {percent(row['rate'])} of {row['outcomes']:,}"
            for row in reasons[:REASONS_SHOWN]
        )
    return text + "."
